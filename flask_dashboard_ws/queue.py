"""The Redis message queue that lets several processes share delivery, and how its outages are reported.

Flask-SocketIO builds python-socketio's ``RedisManager`` from ``message_queue``. That manager publishes every
event on one channel that every process reads, so each process decodes the whole cluster's events and drops
those of rooms it does not hold; it waits as long as the Redis client lets it; and when a publish fails it
logs the failure and returns, so an emit cannot tell its caller that the event went nowhere.
:class:`DashboardRedisManager` is that manager with these changes, and the same message format and host ids:

* Per-user channels (``DASHBOARD_WS_QUEUE_CHANNELS = "user"``, the default): an event or a ``close_room`` for a
  user's room is published on that user's channel, ``<channel>:{user:<id>}``, and each process subscribes to the
  channels of the users who have a socket in it: on the first one, confirmed by Redis before the connection
  is acknowledged, and unsubscribes after the last. A process then reads only its own users' events. Every
  process also reads the shared channel, where the rest goes (disconnects by sid, callbacks) and where
  python-socketio's own managers, and this one with ``"shared"``, publish everything: either mode's
  publishers reach either mode's servers.
* Publishing uses short socket timeouts and no retry loop of the Redis client, so an emit waits about
  ``DASHBOARD_WS_QUEUE_TIMEOUT`` at most, then raises :class:`QueueUnavailable`.
* The listener has a connection of its own without a read timeout (a quiet channel is not an error), and
  PINGs Redis after ``DASHBOARD_WS_QUEUE_HEALTH_INTERVAL`` seconds without a message: a connection that
  silently stopped delivering (a NAT drop, a failover) is noticed within that and ``DASHBOARD_WS_QUEUE_TIMEOUT``
  rather than after TCP keepalive's hours. When Redis goes away it retries with a short, capped backoff and
  logs ``queue_listen_failed``, then ``queue_listening`` once it has subscribed again to the shared channel and
  to every current user's.
* As in python-socketio, the listener starts with the process's first connection: a worker, cron job or CLI
  that accepts no socket only publishes (a write-only emitter), even on eventlet without monkey patching.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import socketio
from socketio.pubsub_manager import PubSubManager

from .config import REDIS_SCHEMES, Settings
from .emitter import DeliveryUnavailable
from .log import describe, logger
from .rooms import DashboardManager, RoomIndexMixin, is_user_room
from .subscriptions import Subscription

# The listener's waits between attempts to subscribe again: the first, doubled up to the last.
LISTEN_RETRY_FIRST = 0.5
LISTEN_RETRY_MAX = 5.0

# What the listener's own PINGs carry, so that their replies are told from anyone else's.
PING_MESSAGE = "dashboard-ws"
# Connections one client (per Redis node) keeps for commands: emits, and recovery's reads and writes on connect
# and disconnect. Past it, a command waits for a free one, within the queue's timeout.
POOL_SIZE = 100

# Connection state recovery's publish: append the message to the user's stream, then drop the entries past
# ARGV[2] or older than ARGV[3] ms with XDEL, which (unlike trimming) records the newest id dropped in the
# stream's max-deleted-entry-id, where a resume looks; the key itself goes ARGV[3] ms after its last event.
# Then publish it on the user's channel (ARGV[4]: PUBLISH, or SPUBLISH on a cluster) behind the entry's id,
# which becomes the event's offset.
# KEYS: the stream, the channel.
LOGGED_PUBLISH = """
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local doomed = {}
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)) do doomed[#doomed + 1] = entry[1] end
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', tostring(oldest - 1), 'COUNT', 100)) do
  doomed[#doomed + 1] = entry[1]
end
if #doomed > 0 then redis.call('XDEL', KEYS[1], unpack(doomed)) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call(ARGV[4], KEYS[2], id .. ' ' .. ARGV[1])
return id
"""
LOGGED_PUBLISH_SHA = hashlib.sha1(LOGGED_PUBLISH.encode()).hexdigest()


class QueueUnavailable(DeliveryUnavailable):
    """The message queue did not take an event: Redis is down, unreachable or did not answer in time.

    The event reached at most the sockets of the emitting process itself, and is not retried. When Redis
    timed out rather than refused, it may still deliver the event once it recovers. ``envelope`` is the
    event's envelope when the emit came through ``DashboardRealtime``.
    """

    reason = "queue_unavailable"


def is_redis_url(url: str | None) -> bool:
    return url is not None and urlsplit(url).scheme in REDIS_SCHEMES


def redacted(url: str) -> str:
    """``url`` without its user name and password, for logs and messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


class DashboardRedisManager(RoomIndexMixin, socketio.RedisManager):
    """python-socketio's ``RedisManager`` with bounded waits, reported publish failures and a sturdier listener.

    ``timeout`` (seconds) bounds connecting to Redis and each reply to a publish.
    """

    def __init__(
        self,
        url: str,
        channel: str = "flask-socketio",
        write_only: bool = False,
        timeout: float = 1.0,
        logger: Any = None,
        per_user: bool = True,
        health_interval: float = 5.0,
    ) -> None:
        # python-socketio 5.14 builds a redis-py client from the URL at once, and redis-py knows no "+cluster".
        super().__init__(_without_cluster(url), channel=channel, write_only=write_only, logger=logger)
        self.redis_url = url
        self.timeout = timeout
        self.sharded = urlsplit(url).scheme.endswith("+cluster")
        self.per_user = per_user
        self.health_interval = health_interval
        self.where = redacted(url)
        self._publisher: Any = None
        self._listener: Subscription | None = None  # while subscribed
        self._early: list[dict[str, Any]] = []  # messages that arrived with the subscription's confirmations
        # The user channels this process must hear (a user with a socket here), and the subscriptions that
        # Redis has not confirmed yet. The lock also keeps two writers off the listener's connection.
        self._user_channels: set[str] = set()
        self._unconfirmed: dict[str, Any] = {}
        self._channels_lock = threading.Lock()
        # Called in the listener once it has subscribed (recovery's catch-up from the log after an outage).
        self.on_subscribed: Callable[[], None] | None = None
        self.metrics: Any = None  # the app's Metrics, when it has some (set by init_app)
        # time.monotonic() of the first failure since Redis last answered (a publish or the listener), and of
        # the listener's first failure since it last subscribed: the unreachable gauge and readiness read them.
        self.unreachable_since: float | None = None
        self.listener_down_since: float | None = None

    # Publishing

    def _publish(self, data: Any) -> Any:
        channel = (self.user_channel(data.get("room")) if self.per_user else None) or self.channel
        message = self._dumps(data)
        return self._timed(channel, lambda client: self._publish_on(client, channel, message))

    def _publish_on(self, client: Any, channel: str, message: str) -> Any:
        return (client.spublish if self.sharded else client.publish)(channel, message)

    def publish_logged(self, data: dict[str, Any], max_events: int, window: float) -> str:
        """Publish an emit to a user's room and append it to that user's log (connection state recovery), in one
        script: the offset (the log entry's id) comes first in the message, which this manager's listeners read."""
        channel = self.user_channel(data["room"])
        assert channel is not None
        message = self._dumps(data)
        keys = [self.log_key(data["room"]), channel]
        args = (*keys, message, max_events, int(window * 1000), "SPUBLISH" if self.sharded else "PUBLISH")
        offset = self._timed(channel, lambda client: run_script(client, LOGGED_PUBLISH, LOGGED_PUBLISH_SHA, 2, args))
        return offset.decode() if isinstance(offset, bytes) else offset

    def log_key(self, room: str) -> str:
        """The stream that logs ``room``'s recent events (connection state recovery), in its channel's slot."""
        return f"{self.channel}:log:{{{room}}}"

    def client(self) -> Any:
        """This manager's Redis client for commands (the publisher's), connected lazily."""
        if self._publisher is None:
            self._publisher = self._client(socket_timeout=self.timeout)
        return self._publisher

    def user_channel(self, room: Any) -> str | None:
        """The channel of ``room`` if it is a user's room (``<channel>:{user:<id>}``), else None. The braces are a
        Redis Cluster hash tag: the user's channel, log and pids share a slot, so one script can use them all."""
        return f"{self.channel}:{{{room}}}" if is_user_room(room) else None

    def _dumps(self, data: Any) -> str:
        # JSON, as python-socketio's managers publish it (older ones published pickles, and their listeners
        # read JSON too): the server's JSON module once set up with one, else the standard library's.
        return str(getattr(self, "json", json).dumps(data))

    def _timed(self, channel: str, command: Callable[[Any], Any]) -> Any:
        """``command(client)`` with :meth:`_command`'s bounds, counted in the metrics and the outage time."""
        started = time.perf_counter()
        try:
            result = self._command(channel, command)
        except QueueUnavailable:
            self._unreachable()
            if self.metrics is not None:
                self.metrics.publish_failures.inc()
            raise
        else:
            self.unreachable_since = None
            return result
        finally:
            if self.metrics is not None:
                self.metrics.publish_seconds.observe(time.perf_counter() - started)

    def _command(self, channel: str, command: Callable[[Any], Any]) -> Any:
        error: Exception | None = None
        # A second attempt only after a quick failure: a pooled connection that Redis closed (it restarted)
        # fails once, and the client then connects anew. After a timeout, trying again would double the wait.
        for _attempt in range(2):
            try:
                return command(self.client())
            except Exception as exc:  # any failure of the queue, from the Redis client or the socket
                error = exc
                if self._is_timeout(exc):
                    break
        raise QueueUnavailable(
            f"the message queue at {self.where} (channel {channel!r}) did not take the event: "
            f"{type(error).__name__}: {error}"
        ) from error

    def end_room(self, room: str, namespace: str) -> None:
        """Disconnect ``room``'s sockets here and in every process: a ``close_room`` message marked to end them.

        A process with python-socketio's plain manager reads it as ``close_room``: its sockets leave the room
        and get no more events, though they stay connected.
        """
        message = {"method": "close_room", "room": room, "namespace": namespace, "host_id": self.host_id,
                   "end_sockets": True}
        super().end_room(room, namespace)  # this process
        self._publish(message)  # the others

    def _handle_close_room(self, message: dict[str, Any]) -> None:
        if message.get("end_sockets"):
            super().end_room(message.get("room"), message.get("namespace"))
        else:
            super()._handle_close_room(message)

    # Listening

    def initialize(self) -> None:
        """Called by python-socketio on the process's first connection: subscribe, then start the listener."""
        mode = self.server.async_mode
        if not _socket_monkey_patched(mode):
            # python-socketio calls this once, on the first connection, and would accept the next ones with no
            # listener at all: ask it to call again, so that every connection is refused until this is fixed.
            self.server.manager_initialized = False
            raise RuntimeError(
                f"the Redis message queue needs the socket module monkey patched in {mode} mode: call "
                "eventlet.monkey_patch() (or gevent.monkey.patch_all()) first thing in the server's entry point"
            )
        if not self.write_only:
            try:
                self._subscribe()
            except Exception as exc:  # Redis is down right now: the listener keeps trying
                self._listener_failed()
                logger.warning("queue_listen_failed", queue=self.where, channel=self.channel, error=describe(exc),
                               retry_in=0)
        PubSubManager.initialize(self)  # starts self._thread, which reads self._listen()

    def _listen(self) -> Any:
        delay = LISTEN_RETRY_FIRST
        while True:
            try:
                if self._listener is None:
                    self._subscribe()
                delay = LISTEN_RETRY_FIRST
                yield from self._messages(self._listener)  # type: ignore[arg-type]
            except Exception as exc:
                self._close_listener()
                self._listener_failed()
                logger.warning("queue_listen_failed", queue=self.where, channel=self.channel, error=describe(exc),
                               retry_in=delay)
                self.server.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX)

    def _messages(self, subscription: Subscription) -> Any:
        """The data of every message on a subscribed channel, until a connection fails or falls silent.

        After ``health_interval`` seconds without a word on one of its connections (one, or one per cluster
        shard), the listener PINGs Redis on it; no reply within ``timeout`` means that the connection no longer
        delivers (ConnectionError).
        """
        heard: dict[str, float] = {}
        pinged: dict[str, float] = {}
        wait = min(self.health_interval, self.timeout) / 2
        early, self._early = self._early, []
        arrived = (("", message) for message in early)
        while True:
            for name, message in arrived:
                heard[name] = time.monotonic()
                pinged.pop(name, None)
                kind = message.get("type")
                if kind == "message":
                    yield _with_offset(message["data"])
                elif kind == "subscribe":
                    self._confirmed(message["channel"])
            now = time.monotonic()
            for name in subscription.connections():
                if now - heard.setdefault(name, now) < self.health_interval:
                    continue
                if name not in pinged:
                    with self._channels_lock:
                        subscription.ping(name, PING_MESSAGE)
                    pinged[name] = now
                elif now - pinged[name] >= self.timeout:
                    raise ConnectionError(f"Redis did not answer a PING on the subscription within {self.timeout}s")
            arrived = subscription.messages(wait)

    def _subscribe(self) -> Subscription:
        """The listener's subscription, on connections of its own, to the shared channel and to every current
        user's: Redis has confirmed them before this returns.

        Its client never reconnects by itself: redis-py would otherwise reconnect and subscribe again while
        raising the error, and a message published to that connection would be lost when it is replaced.
        """
        subscription = Subscription(self._client(socket_timeout=None, reconnect=False), self.sharded)
        try:
            with self._channels_lock:
                channels = {self.channel, *self._user_channels}
                subscription.subscribe(*channels)
            self._await_confirmations(subscription, len(channels))
            with self._channels_lock:
                # Users who connected meanwhile are confirmed by the listener, as any later subscription.
                joined = self._user_channels - channels
                if joined:
                    subscription.subscribe(*joined)
                self._listener = subscription
        except BaseException:
            subscription.close()
            raise
        self.unreachable_since = self.listener_down_since = None
        logger.info("queue_listening", queue=self.where, channel=self.channel, user_channels=len(channels) - 1)
        if self.on_subscribed is not None:
            self.on_subscribed()
        return subscription

    def _await_confirmations(self, subscription: Subscription, count: int) -> None:
        """Read the ``subscribe`` replies to the ``count`` channels just subscribed, within the timeout and a
        millisecond per channel. On a cluster, a shard that has confirmed may deliver a message meanwhile: it is
        kept for the listener."""
        deadline = time.monotonic() + self.timeout + count / 1000
        while count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Redis did not confirm the subscriptions within {self.timeout}s")
            for _, reply in subscription.messages(remaining):
                if reply.get("type") == "subscribe":
                    count -= 1
                else:
                    self._early.append(reply)

    # The subscriptions that follow the sockets

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        first = room not in self.rooms.get(namespace, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        channel = self.user_channel(room)
        if channel is not None and not self.write_only:
            self._hear(channel, first)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        channel = self.user_channel(room)
        if channel is not None and room not in self.rooms.get(namespace, {}):
            self._stop_hearing(channel)

    def _hear(self, channel: str, first: bool) -> None:
        """Subscribe to a user's channel on their first socket here, and wait, within the timeout, until Redis
        has confirmed it (for the first socket and any that joins before then), so that every event published
        once the connection is acknowledged reaches it. Without a listener right now (Redis is away), the
        listener subscribes to it with the rest when it is back."""
        with self._channels_lock:
            listener = self._listener
            confirmed = self._unconfirmed.get(channel)
            if first:
                self._user_channels.add(channel)
                if listener is not None:
                    confirmed = self._unconfirmed[channel] = self.server.eio.create_event()
                    try:
                        listener.subscribe(channel)
                    except Exception as exc:  # the listener sees the failure too, and subscribes again
                        del self._unconfirmed[channel]
                        logger.warning("queue_subscribe_failed", queue=self.where, error=describe(exc))
                        return
        if confirmed is not None and not confirmed.wait(self.timeout):
            logger.warning("queue_subscribe_slow", queue=self.where, timeout=self.timeout)

    def _stop_hearing(self, channel: str) -> None:
        with self._channels_lock:
            self._user_channels.discard(channel)
            listener = self._listener
            if listener is not None:
                try:
                    listener.unsubscribe(channel)
                except Exception:  # the listener sees the failure, and subscribes again without this channel
                    pass

    def _confirmed(self, channel: bytes | str) -> None:
        name = channel.decode("utf-8") if isinstance(channel, bytes) else channel
        event = self._unconfirmed.pop(name, None)
        if event is not None:
            event.set()

    def unreachable_for(self) -> float:
        """Seconds since Redis stopped answering this process (0.0 while it answers)."""
        since = self.unreachable_since
        return 0.0 if since is None else time.monotonic() - since

    def listener_down_for(self) -> float:
        """Seconds the listener has been without a subscription (0.0 while subscribed, or before it starts)."""
        since = self.listener_down_since
        return 0.0 if since is None else time.monotonic() - since

    def _unreachable(self) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = time.monotonic()

    def _listener_failed(self) -> None:
        self._unreachable()
        if self.listener_down_since is None:
            self.listener_down_since = time.monotonic()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    # Helpers

    def _client(self, socket_timeout: float | None, reconnect: bool = True) -> Any:
        """A Redis (or Redis Cluster) client that fails within ``timeout`` and leaves retrying to this class."""
        redis = _import_redis()
        no_backoff = redis.backoff.NoBackoff()
        # With no retries, redis-py still runs its failure handler once (it drops or reconnects the connection);
        # with no supported errors at all, it does not even do that.
        retry = redis.retry.Retry(no_backoff, 0) if reconnect else redis.retry.Retry(no_backoff, 0, supported_errors=())
        options = {"socket_connect_timeout": self.timeout, "socket_timeout": socket_timeout, "socket_keepalive": True,
                   "retry": retry, "max_connections": POOL_SIZE}
        # A blocking pool: redis-py 8's default pool fails a command at once when all its connections are busy
        # (thousands of sockets connecting at a deploy), and older ones open connections without a bound.
        if self.sharded:
            pool_class = functools.partial(redis.BlockingConnectionPool, timeout=self.timeout)
            return redis.cluster.RedisCluster.from_url(_without_cluster(self.redis_url), connection_pool_class=pool_class,
                                                       **options)
        client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            self.redis_url, timeout=self.timeout, **options))
        client.auto_close_connection_pool = True  # close() closes the pool, as for a client from_url
        return client

    def _is_timeout(self, exc: Exception) -> bool:
        return isinstance(exc, (TimeoutError, _import_redis().exceptions.TimeoutError))


def queue_options(
    message_queue: str | None, channel: str, settings: Settings, socketio_options: dict[str, Any]
) -> dict[str, Any]:
    """The ``SocketIO`` keyword arguments that set up the client manager, besides ``message_queue`` itself.

    No queue gets a :class:`~.rooms.DashboardManager`, a Redis URL a :class:`DashboardRedisManager` (both
    leave a disconnecting socket's rooms without scanning every room); another queue (Kombu, Kafka, ZeroMQ)
    is built by Flask-SocketIO on ``channel``. An app's own ``client_manager`` is left alone.
    """
    if "client_manager" in socketio_options:
        return {}
    if message_queue is None:
        return {"client_manager": DashboardManager()}
    if is_redis_url(message_queue):
        return {"client_manager": redis_manager(message_queue, channel, settings)}
    return {"channel": channel}


def redis_manager(
    url: str, channel: str, settings: Settings, write_only: bool = False, logger: Any = None
) -> DashboardRedisManager:
    """A :class:`DashboardRedisManager` with the app's ``DASHBOARD_WS_QUEUE_*`` settings."""
    return DashboardRedisManager(url, channel=channel, write_only=write_only, timeout=settings.queue_timeout,
                                 logger=logger, per_user=settings.queue_channels == "user",
                                 health_interval=settings.queue_health_interval)


def adopt(flask_socketio: Any, settings: Settings) -> None:
    """Give an app's own, already set-up ``SocketIO`` a :class:`DashboardRedisManager` in place of the plain
    ``RedisManager`` that Flask-SocketIO built from its ``message_queue``, so its emits report outages too.

    Done only before the server has accepted a connection (the manager holds no socket yet) and only for a
    manager exactly as Flask-SocketIO builds it; any other manager is left as it is.
    """
    server = flask_socketio.server
    old = server.manager
    if type(old) is not socketio.RedisManager or old.redis_options or server.manager_initialized:
        return
    new = redis_manager(old.redis_url, old.channel, settings, write_only=old.write_only, logger=old.logger)
    new.set_server(server)
    server.manager = new
    flask_socketio.server_options["client_manager"] = new


def _socket_monkey_patched(async_mode: str) -> bool:
    if async_mode == "eventlet":
        from eventlet.patcher import is_monkey_patched

        return bool(is_monkey_patched("socket"))
    if "gevent" in async_mode:
        from gevent.monkey import is_module_patched

        return bool(is_module_patched("socket"))
    return True


def _import_redis() -> ModuleType:
    """redis-py, an optional dependency (the ``redis`` extra), imported when a Redis queue is first used."""
    try:
        import redis
        import redis.backoff
        import redis.cluster
        import redis.retry
    except ImportError:
        raise RuntimeError('a redis:// message queue needs the redis package: pip install "flask-dashboard-ws[redis]"') from None
    return redis


def _without_cluster(url: str) -> str:
    """``url`` with ``redis+cluster`` or ``rediss+cluster`` as redis-py names them (``redis``, ``rediss``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.removesuffix("+cluster")))


def run_script(client: Any, script: str, sha: str, keys: int, args: tuple[Any, ...]) -> Any:
    """EVALSHA, so that the script is not sent with every event; EVAL once Redis says it does not know it."""
    try:
        return client.evalsha(sha, keys, *args)
    except _import_redis().exceptions.NoScriptError:
        return client.eval(script, keys, *args)


def _with_offset(data: Any) -> Any:
    """A logged publish's ``<offset> <message>`` (LOGGED_PUBLISH) as the message, with the offset as the emit's
    last argument; anything else as it came (python-socketio's listener decodes it)."""
    if not isinstance(data, bytes) or not data[:1].isdigit():
        return data
    offset, _, body = data.partition(b" ")
    message = json.loads(body)
    message["data"].append(offset.decode())
    return message
