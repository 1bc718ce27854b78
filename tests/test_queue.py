"""The Redis message queue manager, its set-up by the extension, and how emits report an unavailable queue.

Tests marked ``live`` use a real Redis: the machine's, on a channel of their own, or a private
``redis-server`` that they stop and restart. The rest need no Redis.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import socketio
from flask import Flask
from flask_jwt_extended import JWTManager
from flask_socketio import SocketIO
from structlog.testing import capture_logs

import flask_dashboard_ws.queue
from flask_dashboard_ws import ConfigError, DashboardRealtime, QueueUnavailable
from flask_dashboard_ws.config import load_settings
from flask_dashboard_ws.queue import LISTEN_RETRY_MAX, DashboardRedisManager, redacted
from flask_dashboard_ws.rooms import DashboardManager, RoomIndexMixin
from tests.redis_server import (
    PrivateRedis,
    free_port,
    private_channel,
)

SECRET = "queue-test-secret-that-is-long-enough-for-hs256-0123456789abcdef"
DEADLINE = 15.0


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def queue_app(url: str | None, channel: str = "flask-socketio", socketio: SocketIO | None = None, **config: Any) -> Flask:
    """An app that serves no sockets (a worker, a script): it only emits through the queue."""
    app = Flask("queue_test_app")
    app.config.update(JWT_SECRET_KEY=SECRET, DASHBOARD_WS_ASYNC_MODE="threading", DASHBOARD_WS_MESSAGE_QUEUE=url,
                      DASHBOARD_WS_CHANNEL=channel, **config)
    JWTManager(app)
    DashboardRealtime(app, socketio)
    return app


def manager_of(app: Flask) -> Any:
    return app.extensions["dashboard_ws"].socketio.server.manager


def close_connections(manager: DashboardRedisManager) -> None:
    """Close the Redis connections a test's manager opened (python-socketio's managers have no close())."""
    manager._close_listener()
    if manager._publisher is not None:
        manager._publisher.close()




@contextmanager
def subscribed(url: str, channel: str) -> Iterator[Any]:
    """A plain redis-py subscriber on ``channel`` and its users' channels, subscribed (confirmed) on entry."""
    client = redis.Redis.from_url(url, socket_timeout=DEADLINE)
    pubsub = client.pubsub()
    pubsub.psubscribe(f"{channel}*")
    assert pubsub.get_message(timeout=DEADLINE)["type"] == "psubscribe"
    try:
        yield pubsub
    finally:
        pubsub.close()
        client.close()


def next_message(pubsub: Any) -> dict[str, Any]:
    """The next message python-socketio published, its emitted data as ``envelope``, its channel as ``channel``."""
    message = pubsub.get_message(timeout=DEADLINE)
    assert message is not None and message["type"] == "pmessage", message
    published = json.loads(message["data"])
    published["channel"] = message["channel"].decode()
    data = published["data"]  # the list of the event's arguments (recent python-socketio), or the one argument
    published["envelope"] = data[0] if isinstance(data, list) and len(data) == 1 else data
    return published


@contextmanager
def black_hole() -> Iterator[int]:
    """A port where TCP connects succeed (the kernel's backlog) but nothing is ever read or answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# Set-up


def test_a_redis_queue_gets_the_managers_that_report_outages():
    app = queue_app("redis://127.0.0.1:6379/3", channel="private", DASHBOARD_WS_QUEUE_TIMEOUT=0.25)
    manager = manager_of(app)
    assert type(manager) is DashboardRedisManager
    assert (manager.redis_url, manager.channel, manager.timeout) == ("redis://127.0.0.1:6379/3", "private", 0.25)


def test_without_a_queue_the_in_memory_manager_indexes_rooms():
    manager = manager_of(queue_app(None))
    assert type(manager) is DashboardManager and isinstance(manager, socketio.Manager)


def test_the_redis_manager_indexes_rooms_too():
    assert issubclass(DashboardRedisManager, RoomIndexMixin)


def test_an_unbound_socketio_gets_the_manager_and_keeps_its_own_channel():
    app = queue_app("redis://127.0.0.1:6379/0", channel="config", socketio=SocketIO(async_mode="threading", channel="own"))
    manager = manager_of(app)
    assert type(manager) is DashboardRedisManager and manager.channel == "own"


def test_an_apps_own_socketio_with_a_message_queue_is_adopted():
    app = Flask("own")
    app.config.update(JWT_SECRET_KEY=SECRET, DASHBOARD_WS_QUEUE_TIMEOUT=0.5)
    JWTManager(app)
    own = SocketIO(app, async_mode="threading", message_queue="redis://127.0.0.1:6379/2", channel="own")
    DashboardRealtime(app, own)
    manager = own.server.manager
    assert type(manager) is DashboardRedisManager and manager.server is own.server
    assert (manager.redis_url, manager.channel, manager.timeout, manager.write_only) == (
        "redis://127.0.0.1:6379/2", "own", 0.5, False)


def test_a_write_only_socketio_is_adopted_as_write_only():
    own = SocketIO(message_queue="redis://127.0.0.1:6379/0", channel="own")  # Flask-SocketIO's external-process form
    queue_app(None, socketio=own)
    assert type(own.server.manager) is DashboardRedisManager and own.server.manager.write_only


def test_an_apps_own_manager_is_left_alone():
    mine = socketio.RedisManager("redis://127.0.0.1:6379/0", redis_options={"socket_timeout": 9})
    own = SocketIO(async_mode="threading", client_manager=mine)
    app = queue_app(None, socketio=own)
    assert manager_of(app) is mine
    app = queue_app("redis://127.0.0.1:6379/0", DASHBOARD_WS_SOCKETIO_OPTIONS={"client_manager": mine})
    assert manager_of(app) is mine


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DASHBOARD_WS_CHANNEL", ""),
        ("DASHBOARD_WS_CHANNEL", "  "),
        ("DASHBOARD_WS_CHANNEL", None),
        ("DASHBOARD_WS_CHANNEL", 7),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", 0),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", -1),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", "1"),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", True),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", float("inf")),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", float("nan")),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", None),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", {"channel": "x"}),
    ],
)
def test_invalid_queue_settings_raise_config_error_naming_the_key(key: str, value: Any):
    app = Flask("invalid")
    app.config[key] = value
    with pytest.raises(ConfigError, match=key):
        load_settings(app)


def test_queue_setting_defaults():
    settings = load_settings(Flask("defaults"))
    assert (settings.channel, settings.queue_timeout) == ("flask-socketio", 1.0)
    app = Flask("integer")
    app.config["DASHBOARD_WS_QUEUE_TIMEOUT"] = 3
    assert load_settings(app).queue_timeout == 3.0


def test_passwords_are_kept_out_of_the_queues_name():
    assert redacted("redis://user:s3cret@cache.internal:6380/1") == "redis://***@cache.internal:6380/1"
    assert redacted("rediss://:s3cret@cache.internal/0") == "rediss://***@cache.internal/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_listener_refuses_an_unpatched_eventlet_server():
    manager = DashboardRedisManager("redis://127.0.0.1:6379/0")
    # This test process is not monkey patched. python-socketio sets manager_initialized, then calls initialize().
    manager.server = types.SimpleNamespace(async_mode="eventlet", manager_initialized=True)
    for _connection in range(2):  # every connection is refused, not only the first
        with pytest.raises(RuntimeError, match=r"eventlet.monkey_patch\(\)"):
            manager.initialize()
        assert manager.server.manager_initialized is False


# Reporting an unavailable queue


def test_an_emit_at_once_to_a_refused_queue_raises_quickly_and_is_logged():
    port = free_port()  # nothing listens there
    app = queue_app(f"redis://:s3cret@127.0.0.1:{port}/0", channel="chan")
    started = time.monotonic()
    with capture_logs() as logs, app.app_context(), pytest.raises(QueueUnavailable) as raised:
        DashboardRealtime().emit_error("alice", "X", "m")
    assert time.monotonic() - started < 1.0
    error = raised.value
    assert isinstance(error, ConnectionError)
    assert f"redis://***@127.0.0.1:{port}/0" in str(error) and "'chan:{user:alice}'" in str(error) and "s3cret" not in str(error)
    [dropped] = events(logs, "event_dropped")
    assert dropped["reason"] == "queue_unavailable" and dropped["event_id"] == error.envelope["eventId"]
    assert dropped["user_id"] == "alice" and "s3cret" not in dropped["error"]
    assert events(logs, "event_emitted") == []


def test_a_queue_that_never_answers_fails_the_emit_after_the_timeout():
    with black_hole() as port:
        app = queue_app(f"redis://127.0.0.1:{port}/0", DASHBOARD_WS_QUEUE_TIMEOUT=0.3)
        started = time.monotonic()
        with app.app_context(), pytest.raises(QueueUnavailable, match="TimeoutError"):
            DashboardRealtime().emit_error("alice", "X", "m")
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 0.6 + 0.5, elapsed  # one timeout: no second attempt after a timeout


def test_commands_past_the_pool_wait_for_a_connection_instead_of_failing(shared_redis: str, monkeypatch):
    """More concurrent commands than the pool holds (sockets connecting at a deploy, emits of many requests)
    queue for a connection within the timeout; redis-py 8's own pool would fail them at once."""
    monkeypatch.setattr(flask_dashboard_ws.queue, "POOL_SIZE", 2)
    manager = DashboardRedisManager(shared_redis, channel=private_channel(), timeout=10.0)
    results: queue.Queue[Any] = queue.Queue()

    def hold_a_connection() -> None:
        try:
            results.put(manager.client().blpop(f"{manager.channel}:nothing", timeout=0.3))
        except Exception as exc:
            results.put(exc)

    threads = [threading.Thread(target=hold_a_connection) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert [results.get_nowait() for _ in threads] == [None] * 6
    manager.client().close()


def test_deferred_emits_are_logged_as_dropped_and_the_response_is_kept(harness, monkeypatch):
    attempts = []

    def unavailable(*args: Any, **kwargs: Any) -> None:
        attempts.append(args[0])
        raise QueueUnavailable("the message queue at redis://q did not take the event: ConnectionError: refused")

    monkeypatch.setattr(harness.socketio, "emit", unavailable)

    @harness.app.post("/mocs")
    def add_moc() -> Any:
        first = harness.dashboard.emit_error("alice", "X", "first")
        second = harness.dashboard.emit_error("alice", "X", "second")
        return {"ids": [first["eventId"], second["eventId"]]}

    with capture_logs() as logs:
        response = harness.app.test_client().post("/mocs")

    assert response.status_code == 200
    assert len(attempts) == 1  # the rest of the request's events do not wait on the queue again
    dropped = events(logs, "event_dropped")
    assert [entry["event_id"] for entry in dropped] == response.json["ids"]
    assert {entry["reason"] for entry in dropped} == {"queue_unavailable"}
    assert all("did not take the event" in entry["error"] for entry in dropped)


def test_an_emit_at_once_in_a_request_raises_to_the_view(harness, monkeypatch):
    monkeypatch.setattr(harness.socketio, "emit", lambda *a, **k: (_ for _ in ()).throw(QueueUnavailable("down")))

    @harness.app.post("/imports")
    def run_import() -> Any:
        try:
            harness.dashboard.emit_error("alice", "X", "progress", defer=False)
        except QueueUnavailable as exc:
            return {"lost": exc.envelope["eventId"]}, 503
        return {}, 200

    response = harness.app.test_client().post("/imports")
    assert response.status_code == 503 and response.json["lost"]


# With a real Redis


@pytest.mark.live
def test_a_write_only_emitter_publishes_the_envelope_to_the_users_room(shared_redis: str):
    channel = private_channel()
    app = queue_app(shared_redis, channel=channel)
    with subscribed(shared_redis, channel) as subscriber, app.app_context():
        envelope = DashboardRealtime().emit_error(42, "X", "from a worker")
        message = next_message(subscriber)
    close_connections(manager_of(app))
    assert message["method"] == "emit" and message["event"] == "dashboard:error"
    assert (message["room"], message["namespace"], message["envelope"]) == ("user:42", "/dashboard", envelope)
    assert message["host_id"] == manager_of(app).host_id
    assert message["channel"] == f"{channel}:{{user:42}}"  # the user's own channel (DASHBOARD_WS_QUEUE_CHANNELS)


@pytest.mark.live
def test_with_shared_channels_an_emit_is_published_on_the_one_channel(shared_redis: str):
    channel = private_channel()
    app = queue_app(shared_redis, channel=channel, DASHBOARD_WS_QUEUE_CHANNELS="shared")
    with subscribed(shared_redis, channel) as subscriber, app.app_context():
        DashboardRealtime().emit_error(42, "X", "from a worker")
        message = next_message(subscriber)
    close_connections(manager_of(app))
    assert (message["channel"], message["room"]) == (channel, "user:42")


@pytest.mark.live
def test_an_adopted_socketio_publishes_on_its_own_channel(shared_redis: str):
    channel = private_channel()
    app = Flask("own")
    app.config.update(JWT_SECRET_KEY=SECRET)
    JWTManager(app)
    own = SocketIO(app, async_mode="threading", message_queue=shared_redis, channel=channel)
    dashboard = DashboardRealtime(app, own)
    with subscribed(shared_redis, channel) as subscriber, app.app_context():
        envelope = dashboard.emit_error("alice", "X", "m")
        assert next_message(subscriber)["envelope"] == envelope
    close_connections(own.server.manager)


def manager_without_thread(url: str, channel: str, **options: Any) -> tuple[DashboardRedisManager, socketio.Server, list[Any]]:
    """A manager on a real threading server whose listener thread is recorded, not started: the test reads
    ``manager._listen()`` itself, so no thread outlives it."""
    manager = DashboardRedisManager(url, channel=channel, timeout=1.0, **options)
    server = socketio.Server(client_manager=manager, async_mode="threading")
    started: list[Any] = []
    server.start_background_task = lambda target, *args, **kwargs: started.append(target)  # type: ignore[method-assign]
    return manager, server, started


def publish_once_heard(client: Any, channel: str, message: str) -> None:
    """Publish ``message`` as soon as a listener has subscribed to ``channel`` again (PUBLISH counts who heard)."""
    deadline = time.monotonic() + LISTEN_RETRY_MAX + DEADLINE
    while client.publish(channel, message) == 0:
        assert time.monotonic() < deadline, f"the listener did not subscribe to {channel} again"
        time.sleep(0.05)  # polling for the condition, bounded by the deadline


def read_until(messages: Iterator[Any], wanted: bytes) -> queue.Queue[Any]:
    """Read the listener's messages in a thread that ends once it has read ``wanted`` (the listener also
    yields this process's own messages, which python-socketio's listening thread skips)."""
    received: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        for message in messages:
            if message == wanted:
                received.put(message)
                return

    threading.Thread(target=read, daemon=True).start()
    return received


@pytest.mark.live
def test_the_listener_is_subscribed_before_the_first_connection_completes(shared_redis: str):
    channel = private_channel()
    manager, _, started = manager_without_thread(shared_redis, channel)
    manager.initialize()  # what python-socketio calls on the process's first connection
    assert started == [manager._thread]
    publisher = redis.Redis.from_url(shared_redis)
    try:
        # PUBLISH answers with the number of subscribers that got the message: the listener already is one.
        assert publisher.publish(channel, "already subscribed") == 1
        assert read_until(manager._listen(), b"already subscribed").get(timeout=DEADLINE)
    finally:
        close_connections(manager)
        publisher.close()


@pytest.mark.live
def test_after_a_redis_restart_publishing_and_listening_resume(private_redis: PrivateRedis):
    channel = private_channel()
    manager, server, _ = manager_without_thread(private_redis.url, channel)
    manager.initialize()
    server.emit("warm-up", {}, to="user:nobody")  # the publisher now holds a pooled connection
    messages = manager._listen()

    private_redis.stop()
    with pytest.raises(QueueUnavailable, match="ConnectionError"):
        server.emit("lost", {}, to="user:nobody")
    private_redis.start()  # the same port; the publisher's pooled connection is stale

    # The first emit after the restart succeeds: the stale connection fails once and a new one is made.
    server.emit("first-after-restart", {}, to="user:nobody")

    # The listener notices that its connection is gone and subscribes again by itself.
    with capture_logs() as logs:
        received = read_until(messages, b"after the restart")
        publisher = redis.Redis.from_url(private_redis.url)
        try:
            publish_once_heard(publisher, channel, "after the restart")
            assert received.get(timeout=DEADLINE)
        finally:
            close_connections(manager)
            publisher.close()
    [failed] = events(logs, "queue_listen_failed")
    assert failed["retry_in"] == 0.5 and failed["queue"] == private_redis.url
    assert len(events(logs, "queue_listening")) == 1


# Per-user channels: the subscriptions follow the sockets


def connect_to_room(manager: DashboardRedisManager, room: str) -> str:
    """A socket of this process in /dashboard, joined to ``room`` as the namespace's connect handler does."""
    sid = manager.connect(f"eio-{time.monotonic_ns()}", "/dashboard")
    manager.enter_room(sid, "/dashboard", room)
    return sid


def subscribers(client: Any, channel: str) -> int:
    return dict(client.pubsub_numsub(channel))[channel.encode()]


def wait_for_subscribers(client: Any, channel: str, count: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while subscribers(client, channel) != count:
        assert time.monotonic() < deadline, f"{channel} did not get {count} subscribers"
        time.sleep(0.02)  # polling for the condition, bounded by the deadline


@pytest.mark.live
def test_a_users_channel_is_heard_from_their_first_socket_confirmed_until_their_last_leaves(shared_redis: str):
    channel = private_channel()
    manager, _, _ = manager_without_thread(shared_redis, channel)
    manager.initialize()
    received = read_until(manager._listen(), b"the end")  # the listener reads, and confirms subscriptions
    client = redis.Redis.from_url(shared_redis)
    alice = f"{channel}:{{user:alice}}"
    try:
        with capture_logs() as logs:
            first = connect_to_room(manager, "user:alice")
        # Redis confirmed the subscription before the join returned: nothing published from now on is lost.
        assert subscribers(client, alice) == 1 and not events(logs, "queue_subscribe_slow")
        second = connect_to_room(manager, "user:alice")
        assert subscribers(client, alice) == 1  # one subscription per process, however many sockets
        assert subscribers(client, f"{channel}:{{user:bob}}") == 0  # nobody hears users they have no socket of
        manager.disconnect(first, "/dashboard", ignore_queue=True)
        assert subscribers(client, alice) == 1
        manager.disconnect(second, "/dashboard", ignore_queue=True)
        wait_for_subscribers(client, alice, 0)
        client.publish(channel, "the end")
        assert received.get(timeout=DEADLINE)
    finally:
        close_connections(manager)
        client.close()


@pytest.mark.live
@pytest.mark.parametrize("outage", ["restart", "freeze"])
def test_the_listener_subscribes_every_current_users_channel_again_after_an_outage(private_redis: PrivateRedis,
                                                                                   outage: str):
    """A restart closes the listener's connection; a freeze (SIGSTOP) leaves it open and silent, as a NAT drop
    or a failover does: its PING goes unanswered within the health interval and the timeout."""
    channel = private_channel()
    manager, _, _ = manager_without_thread(private_redis.url, channel, health_interval=0.5)
    manager.initialize()
    messages = manager._listen()
    reader = read_until(messages, b"warm")
    connect_to_room(manager, "user:alice")  # unconfirmed until the reader reads: it waits up to the timeout
    client = redis.Redis.from_url(private_redis.url, socket_timeout=DEADLINE)
    client.publish(f"{channel}:{{user:alice}}", "warm")
    assert reader.get(timeout=DEADLINE)

    with capture_logs() as logs:
        received = read_until(messages, b"after the outage")
        if outage == "restart":
            private_redis.stop()
            private_redis.start()
        else:
            private_redis.freeze()
            deadline = time.monotonic() + DEADLINE
            while not events(logs, "queue_listen_failed"):
                assert time.monotonic() < deadline, "the silent subscription went unnoticed"
                time.sleep(0.02)  # polling for the condition, bounded by the deadline
            private_redis.thaw()
        client = redis.Redis.from_url(private_redis.url, socket_timeout=DEADLINE)
        try:
            publish_once_heard(client, f"{channel}:{{user:alice}}", "after the outage")
            assert received.get(timeout=DEADLINE)
        finally:
            close_connections(manager)
            client.close()
    [listening] = events(logs, "queue_listening")
    assert listening["user_channels"] == 1
    if outage == "freeze":
        assert "PING" in events(logs, "queue_listen_failed")[0]["error"]


# On a Redis Cluster: sharded pub/sub


@pytest.mark.live
def test_on_a_cluster_each_channel_is_heard_on_its_shard_and_emits_reach_it(redis_cluster: Any):
    channel = private_channel()
    manager, _, _ = manager_without_thread(redis_cluster.url, channel)
    manager.initialize()
    arrived: queue.Queue[Any] = queue.Queue()

    users = [f"user-{index}" for index in range(6)]

    def read() -> None:  # until the users' events are in: a listener read on would subscribe again once closed
        for count, message in enumerate(manager._listen(), start=1):
            arrived.put(json.loads(message))
            if count == len(users):  # not arrived.qsize(): the test takes them out as they come
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()  # it confirms the subscriptions as they come
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url.replace("+cluster", ""))
    channels = [f"{channel}:{{user:{user}}}" for user in users]
    try:
        for user in users:
            connect_to_room(manager, f"user:{user}")
        assert len({client.get_node_from_key(name).name for name in [channel, *channels]}) > 1  # several shards
        for name in [channel, *channels]:
            counts = client.pubsub_shardnumsub(name, target_nodes=client.get_node_from_key(name))
            assert dict(counts)[name.encode()] == 1, name

        app = queue_app(redis_cluster.url, channel=channel)  # a worker: publishes with SPUBLISH
        with app.app_context():
            for user in users:
                DashboardRealtime().emit_error(user, "X", "sharded")
        rooms = {arrived.get(timeout=DEADLINE)["room"] for _ in users}
        assert rooms == {f"user:{user}" for user in users}
        reader.join(timeout=DEADLINE)
        assert not reader.is_alive()  # else it would go on listening, and retrying, once the cluster is gone
        close_connections(manager_of(app))
    finally:
        close_connections(manager)
        client.close()
