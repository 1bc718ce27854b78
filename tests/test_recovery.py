"""flask_dashboard_ws/recovery.py: the event log and the pids (the replay itself is live:
integration/test_recovery.py, with the official client)."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY

import flask_socketio.test_client
import pytest
from flask import Flask
from flask_jwt_extended import JWTManager
from redis.crc import key_slot

from flask_dashboard_ws import ConfigError, DashboardRealtime
from flask_dashboard_ws.queue import DashboardRedisManager
from flask_dashboard_ws.recovery import EventLog, RedisEventLog
from tests.conftest import NS
from tests.redis_server import private_channel


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def log_with_clock(window: float = 120.0, max_events: int = 100) -> tuple[EventLog, Clock]:
    clock = Clock()
    return EventLog(window, max_events, clock=clock), clock


def test_each_event_gets_a_later_offset_sent_after_its_envelope():
    log, _ = log_with_clock()
    # three in the same millisecond
    entries = [log.append("user:a", "dashboard:error", {"n": n}, "/dashboard") for n in range(3)]
    assert [entry.args[0] for entry in entries] == [{"n": 0}, {"n": 1}, {"n": 2}]
    offsets = [entry.args[1] for entry in entries]
    assert offsets == sorted(offsets, key=lambda o: tuple(map(int, o.split("-")))) and len(set(offsets)) == 3


def test_a_closed_connections_pid_resumes_once_with_the_events_after_its_offset():
    log, _ = log_with_clock()
    pid = log.issue("user:a")
    first = log.append("user:a", "e", 1, "/dashboard")
    log.append("user:b", "e", "not hers", "/dashboard")
    second, third = log.append("user:a", "e", 2, "/dashboard"), log.append("user:a", "e", 3, "/dashboard")
    assert log.missed(pid, first.args[1], "user:a") is None  # its connection is still open
    log.closed(pid)
    assert [entry.args for entry in log.missed(pid, first.args[1], "user:a")] == [second.args, third.args]
    assert log.missed(pid, first.args[1], "user:a") is None  # resumed: it belongs to the new connection now


def test_without_an_offset_the_events_since_the_pid_was_issued_are_missed():
    log, _ = log_with_clock()
    log.append("user:a", "e", "before", "/dashboard")
    pid = log.issue("user:a")
    after = log.append("user:a", "e", "after", "/dashboard")
    log.closed(pid)
    assert [entry.args for entry in log.missed(pid, None, "user:a")] == [after.args]


@pytest.mark.parametrize("pid_room, offset", [("user:b", None), ("user:a", "not-an-offset"), ("user:a", 12)])
def test_another_users_pid_or_a_bad_offset_recovers_nothing(pid_room, offset):
    log, _ = log_with_clock()
    pid = log.issue(pid_room)
    log.append("user:a", "e", 1, "/dashboard")
    log.closed(pid)
    assert log.missed(pid, offset, "user:a") is None
    assert log.missed("unknown", None, "user:a") is None


def test_once_an_event_after_the_offset_is_dropped_nothing_is_recovered():
    log, clock = log_with_clock(window=60.0, max_events=2)
    pid = log.issue("user:a")
    seen = log.append("user:a", "e", 0, "/dashboard")
    log.closed(pid)
    log.append("user:a", "e", 1, "/dashboard")
    log.append("user:a", "e", 2, "/dashboard")  # the log keeps two: the first event after the offset is kept still
    assert log.missed(pid, seen.args[1], "user:a") is not None
    pid = log.issue("user:a")
    log.closed(pid)
    log.append("user:a", "e", 3, "/dashboard")  # now event 1 is dropped
    assert log.missed(pid, seen.args[1], "user:a") is None

    pid = log.issue("user:a")
    recent = log.append("user:a", "e", 4, "/dashboard")
    log.closed(pid)
    clock.now += 61  # past the window: the pid has expired, and so have the events
    assert log.missed(pid, recent.args[1], "user:a") is None


def recovery_app(**config) -> Flask:
    app = Flask("recovery_test")
    app.config.update(JWT_SECRET_KEY="recovery-test-secret-that-is-long-enough-for-hs256-0123456789",
                      DASHBOARD_WS_ASYNC_MODE="threading", DASHBOARD_WS_RECOVERY=True, **config)
    JWTManager(app)
    DashboardRealtime(app)
    return app


def test_recovery_needs_its_log_in_this_process_or_in_redis_and_says_why():
    with pytest.raises(ConfigError, match="DASHBOARD_WS_RECOVERY .*amqp://"):
        recovery_app(DASHBOARD_WS_MESSAGE_QUEUE="amqp://guest@127.0.0.1//")
    with pytest.raises(ConfigError, match="DASHBOARD_WS_CHANNEL cannot hold braces on a Redis Cluster"):
        recovery_app(DASHBOARD_WS_MESSAGE_QUEUE="redis+cluster://127.0.0.1:7000", DASHBOARD_WS_CHANNEL="app{1}")
    with pytest.raises(ConfigError, match="DASHBOARD_WS_QUEUE_CHANNELS = 'user'"):
        recovery_app(DASHBOARD_WS_MESSAGE_QUEUE="redis://127.0.0.1:6379/0", DASHBOARD_WS_QUEUE_CHANNELS="shared")
    with pytest.raises(ConfigError, match="DASHBOARD_WS_RECOVERY_MAX_EVENTS"):
        recovery_app(DASHBOARD_WS_RECOVERY_MAX_EVENTS=0)
    assert isinstance(recovery_app().extensions["dashboard_ws"].recovery.log, EventLog)
    for queue in ("redis://127.0.0.1:6379/0", "redis+cluster://127.0.0.1:7000"):
        on_redis = recovery_app(DASHBOARD_WS_MESSAGE_QUEUE=queue)
        assert isinstance(on_redis.extensions["dashboard_ws"].recovery.log, RedisEventLog)


@pytest.mark.parametrize("user", ["42", "a}b", "{x}", "é:1", "a{b}c"])
def test_a_users_channel_log_and_pids_share_one_cluster_slot(user):
    """The logging script writes the stream and publishes on the channel, the resume reads the pid and the
    stream: on a Redis Cluster each script's keys and channel must hash to one slot."""
    manager = DashboardRedisManager("redis+cluster://127.0.0.1:7000", channel="app")
    log = RedisEventLog(manager, 120.0, 100)
    room = f"user:{user}"
    names = [manager.user_channel(room), manager.log_key(room), log._pid_key("some-pid", room)]
    assert len({key_slot(name.encode()) for name in names}) == 1, names


def test_users_spread_over_the_cluster_slots():
    manager = DashboardRedisManager("redis+cluster://127.0.0.1:7000", channel="app")
    assert len({key_slot(manager.user_channel(f"user:{index}").encode()) for index in range(100)}) > 90


def test_the_events_of_users_who_get_no_more_are_dropped_once_past_the_window():
    log, clock = log_with_clock(window=60.0)
    log.append("user:quiet", "e", 1, "/dashboard")
    clock.now += 61
    log.append("user:busy", "e", 2, "/dashboard")  # the once-a-window sweep
    assert "user:quiet" not in log._entries and list(log._entries) == ["user:busy"]


def test_the_pids_of_tabs_that_never_come_back_are_dropped_once_past_the_window():
    log, clock = log_with_clock(window=60.0)
    gone = log.issue("user:a")
    log.closed(gone)
    clock.now += 61
    assert log.missed(gone, None, "user:a") is None  # expired, whether swept or not
    log.closed(log.issue("user:b"))  # a later disconnect sweeps
    assert gone not in log._pids


def test_an_event_the_replay_sent_before_the_listener_heard_it_is_not_sent_again(make_app, shared_redis, monkeypatch):
    """On a busy process the reconnecting socket's replay can read the log ahead of the process's own listener:
    the listener's later delivery of the same offsets must skip that socket, and it gets what follows."""
    h = make_app(DASHBOARD_WS_RECOVERY=True, DASHBOARD_WS_MESSAGE_QUEUE=shared_redis,
                 DASHBOARD_WS_CHANNEL=private_channel())
    recovery, manager = h.state.recovery, h.socketio.server.manager
    # No listener: this test hands the process what its listener would hear, when it chooses (Flask-SocketIO's
    # test client, which would start one, refuses a message queue for want of a listener of its own).
    monkeypatch.setattr(manager, "initialize", lambda: None)
    monkeypatch.setattr(flask_socketio.test_client, "PubSubManager", type("NoQueue", (), {}))
    room = "user:alice"

    def logged(code: str) -> dict:
        """An event in alice's log that no listener has heard (XADD only, as if its PUBLISH were still on its way)."""
        message = {"method": "emit", "event": "dashboard:error", "data": [{"code": code}], "namespace": NS,
                   "room": room, "skip_sid": None, "callback": None, "host_id": "another-process"}
        offset = manager.client().xadd(manager.log_key(room), {"m": json.dumps(message)}).decode()
        return {**message, "data": [{"code": code}, offset]}

    other_tab = h.client(h.token())  # alice's tab that stays: this process hears her channel throughout
    pid = recovery.log.issue(room)
    recovery.log.closed(pid)  # another tab of alice's closed its connection: its pid may be resumed
    missed = logged("MISSED")
    client = h.client(auth={"token": h.token(), "pid": pid})
    assert [args[0]["code"] for _, args in raw_received(client)] == ["MISSED"]  # the replay

    recovery.handle_emit(missed)  # the listener hears it now
    recovery.handle_emit(logged("NEXT"))
    assert [(args[0]["code"], args[1]) for _, args in raw_received(client)] == [("NEXT", ANY)]
    assert [args[0]["code"] for _, args in raw_received(other_tab)] == ["MISSED", "NEXT"]


def raw_received(client: Any) -> list[tuple[str, list[Any]]]:
    return [(packet["name"], packet["args"]) for packet in client.get_received(NS)]


def test_closed_connections_pids_are_written_later_many_per_round_trip(make_app, shared_redis, monkeypatch):
    """A disconnect only queues its pid: one background task writes what has queued in one pipeline, so that a
    drain or a mass disconnect neither waits on Redis per socket nor runs out of pooled connections."""
    h = make_app(DASHBOARD_WS_RECOVERY=True, DASHBOARD_WS_MESSAGE_QUEUE=shared_redis,
                 DASHBOARD_WS_CHANNEL=private_channel())
    log, manager = h.state.recovery.log, h.socketio.server.manager
    tasks: list[Any] = []
    monkeypatch.setattr(manager.server, "start_background_task", lambda target, *args: tasks.append(target))
    pids = {f"user:u{index}": log.issue(f"user:u{index}") for index in range(300)}
    for pid in pids.values():
        log.closed(pid)
    keys = [log._pid_key(pid, room) for room, pid in pids.items()]
    assert len(tasks) == 1 and manager.client().exists(*keys) == 0  # queued, not written

    executed: list[int] = []
    pipeline = manager.client().pipeline
    monkeypatch.setattr(manager.client(), "pipeline", lambda **options: counted(pipeline(**options), executed))
    tasks[0]()
    assert executed == [300] and manager.client().exists(*keys) == 300
    assert 0 < manager.client().pttl(keys[0]) <= 120_000
    assert log.missed(pids["user:u7"], None, "user:u7") == []  # resumable, by its own user only
    assert log.missed(pids["user:u8"], None, "user:u9") is None
    assert not log._writing  # the task ended once nothing was left to write


def counted(pipeline: Any, executed: list[int]) -> Any:
    """``pipeline``, recording how many commands each ``execute()`` sends."""
    execute = pipeline.execute
    pipeline.execute = lambda: executed.append(len(pipeline.command_stack)) or execute()
    return pipeline


def test_a_drain_writes_a_batchs_pids_before_it_closes_them(make_app, shared_redis, monkeypatch):
    """So that a tab finds its pid on whichever process it reconnects to, even if this one is too busy to run its
    writer before the tab is back."""
    h = make_app(DASHBOARD_WS_RECOVERY=True, DASHBOARD_WS_MESSAGE_QUEUE=shared_redis,
                 DASHBOARD_WS_CHANNEL=private_channel())
    recovery, manager = h.state.recovery, h.socketio.server.manager
    monkeypatch.setattr(manager, "initialize", lambda: None)  # no listener: as in the test above
    monkeypatch.setattr(flask_socketio.test_client, "PubSubManager", type("NoQueue", (), {}))
    clients = [h.client(h.token(user)) for user in ("alice", "bob")]
    sids = [h.sid(client) for client in clients]
    keys = [recovery.log._pid_key(recovery._pids[sid], recovery._rooms[sid]) for sid in sids]
    assert manager.client().exists(*keys) == 0  # open connections have no pid key

    recovery.closing([manager.eio_sid_from_sid(sid, NS) for sid in sids])
    assert manager.client().exists(*keys) == 2 and all(client.is_connected(NS) for client in clients)
    for client in clients:
        client.disconnect(NS)
    assert not recovery.log._writing and recovery.log._closing == []  # nothing written twice
