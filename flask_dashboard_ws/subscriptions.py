"""The Redis connections a process's listener reads: one PUB/SUB connection, or one per shard of a Redis Cluster.

On a single Redis the listener subscribes on one connection (SUBSCRIBE). On a Redis Cluster
(``redis+cluster://`` or ``rediss+cluster://``) it uses sharded pub/sub (SSUBSCRIBE, Redis 7 and later): each
channel lives on the shard that owns its slot, so a publish reaches one shard rather than every node, and
redis-py's ``ClusterPubSub`` holds a connection to each shard that has one of the process's channels. Both
kinds are read the same way here: :meth:`Subscription.messages` waits on every connection at once and returns
what has arrived, each message with the connection it came on, so that the listener can tell a silent
connection from a quiet channel, one connection at a time.
"""

from __future__ import annotations

import selectors
from collections.abc import Iterator
from typing import Any

# The message types of sharded pub/sub, as plain pub/sub names them.
_PLAIN_TYPES = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}


class Subscription:
    """The listener's subscriptions on one Redis (plain pub/sub) or on a Redis Cluster (sharded pub/sub)."""

    def __init__(self, client: Any, sharded: bool) -> None:
        self.client = client  # a Redis or RedisCluster client of its own, closed with the subscription
        self.pubsub = client.pubsub()
        self.sharded = sharded

    def subscribe(self, *channels: str) -> None:
        if self.sharded:
            self.pubsub.ssubscribe(*channels)
        else:
            self.pubsub.subscribe(*channels)

    def unsubscribe(self, *channels: str) -> None:
        if self.sharded:
            self.pubsub.sunsubscribe(*channels)
        else:
            self.pubsub.unsubscribe(*channels)

    def connections(self) -> dict[str, Any]:
        """Each connection's own PubSub, by name (one, or one per shard that holds a channel of ours)."""
        if self.sharded:
            return dict(self.pubsub.node_pubsub_mapping)
        return {"redis": self.pubsub}

    def messages(self, timeout: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """What has arrived on any connection, waiting up to ``timeout`` seconds for the first of it."""
        connections = self.connections()
        if len(connections) == 1:
            [(name, pubsub)] = connections.items()
            message = pubsub.get_message(timeout=timeout)
            if message is not None:
                yield name, _plain(message)
                yield from _drained(name, pubsub)
            return
        arrived = False
        for name, pubsub in connections.items():  # what redis-py has read already is not on the socket any more
            for item in _drained(name, pubsub):
                arrived = True
                yield item
        if arrived or not connections:
            return
        with selectors.DefaultSelector() as selector:
            for name, pubsub in connections.items():
                selector.register(pubsub.connection._sock, selectors.EVENT_READ, name)
            ready = [key.data for key, _ in selector.select(timeout)]
        for name in ready:
            yield from _drained(name, connections[name])

    def ping(self, name: str, message: str) -> None:
        self.connections()[name].ping(message)

    def close(self) -> None:
        for resource in (self.pubsub, self.client):
            try:
                resource.close()
            except Exception:  # the connections are already gone
                pass


def _drained(name: str, pubsub: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    while (message := pubsub.get_message(timeout=0)) is not None:
        yield name, _plain(message)


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    kind = message.get("type")
    if isinstance(kind, bytes):
        kind = kind.decode()
    return {**message, "type": _PLAIN_TYPES.get(kind, kind)}
