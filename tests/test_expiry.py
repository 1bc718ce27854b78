from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from flask_dashboard_ws import expiry
from flask_dashboard_ws.expiry import CHECK_INTERVAL, ExpiryWatcher
from flask_dashboard_ws.extension import TOKEN_EXPIRED_MESSAGE

NS = "/dashboard"
FAR_FUTURE = 4_102_444_800  # 2100-01-01: an exp claim that the real clock never reaches


class Clock:
    """Stands in for ``time.time`` in the expiry module; ``sleep`` moves it forward instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep = None

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds <= CHECK_INTERVAL
        assert len(self.sleeps) < 1000, "the watcher does not stop"
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(1000.0)
    monkeypatch.setattr(expiry, "time", SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
def watcher(clock):
    expired, tasks = [], []
    watcher = ExpiryWatcher(lambda sid, at: expired.append((sid, at, clock.now)), tasks.append, clock.sleep)
    return SimpleNamespace(watcher=watcher, expired=expired, tasks=tasks)


def run_tasks(tasks):
    while tasks:
        tasks.pop(0)()


def test_tokens_are_ended_in_expiry_order_soon_after_they_expire(watcher):
    watcher.watcher.watch("late", 1005.0)
    watcher.watcher.watch("soon", 1002.0)
    watcher.watcher.watch("first", 1000.5)
    assert len(watcher.tasks) == 1  # one task for all of them
    run_tasks(watcher.tasks)
    assert [(sid, at) for sid, at, _ in watcher.expired] == [("first", 1000.5), ("soon", 1002.0), ("late", 1005.0)]
    for _, expires_at, ended_at in watcher.expired:
        assert expires_at <= ended_at <= expires_at + CHECK_INTERVAL


def test_an_already_expired_token_is_ended_at_once(watcher, clock):
    watcher.watcher.watch("gone", 999.0)
    run_tasks(watcher.tasks)
    assert watcher.expired == [("gone", 999.0, 1000.0)]


def test_the_task_stops_when_nothing_is_left_and_restarts_on_watch(watcher, clock):
    watcher.watcher.watch("a", 1001.0)
    watcher.tasks.pop()()  # returns: the heap is empty
    assert [sid for sid, _, _ in watcher.expired] == ["a"]
    watcher.watcher.watch("b", clock.now + 1)
    assert len(watcher.tasks) == 1
    watcher.tasks.pop()()
    assert [sid for sid, _, _ in watcher.expired] == ["a", "b"]


def test_no_second_task_while_one_is_running(watcher, clock):
    watcher.watcher.watch("a", 1003.0)
    clock.on_sleep = lambda: watcher.watcher.watch("b", 1001.5) if clock.now == 1001.0 else None
    watcher.tasks.pop()()
    assert watcher.tasks == []
    assert [sid for sid, _, _ in watcher.expired] == ["b", "a"]  # the newcomer expires first and is ended first


def test_a_token_watched_during_a_sleep_is_ended_at_most_one_interval_late(watcher, clock):
    watcher.watcher.watch("long", 1100.0)
    clock.on_sleep = lambda: watcher.watcher.watch("short", clock.now + 0.2) if len(clock.sleeps) == 1 else None
    watcher.tasks.pop()()
    sid, expires_at, ended_at = watcher.expired[0]
    assert sid == "short" and ended_at - expires_at <= CHECK_INTERVAL


def test_the_watcher_keeps_running_when_on_expired_raises(clock):
    ended, tasks = [], []

    def on_expired(sid, at):
        if sid == "broken":
            raise RuntimeError("disconnect failed")
        ended.append(sid)

    watcher = ExpiryWatcher(on_expired, tasks.append, clock.sleep)
    watcher.watch("broken", 1001.0)
    watcher.watch("fine", 1002.0)
    with capture_logs() as logs:
        run_tasks(tasks)
    assert ended == ["fine"]
    [failure] = [entry for entry in logs if entry["event"] == "expiry_failed"]
    assert failure["sid"] == "broken" and failure["log_level"] == "error"


# --- DashboardState.end_expired, through the test client ---------------------------------------------------

def test_end_expired_tells_the_socket_then_disconnects_it(harness):
    client = harness.client(harness.token())
    other_tab = harness.client(harness.token())
    sid = harness.sid(client)
    with capture_logs() as logs:
        harness.state.end_expired(sid, harness.state.connections[sid].expires_at)

    assert not client.is_connected(NS)
    [packet] = client.queue  # get_received() refuses a disconnected client
    assert packet["name"] == "dashboard:error" and packet["namespace"] == NS
    envelope = packet["args"][0]
    assert envelope["type"] == "dashboard:error"
    assert envelope["payload"] == {"code": "TOKEN_EXPIRED", "message": TOKEN_EXPIRED_MESSAGE}
    assert sid not in harness.state.connections
    assert harness.room("user:alice") == {harness.sid(other_tab)}
    assert harness.received(other_tab) == []  # only the expired socket is told
    [expired] = [entry for entry in logs if entry["event"] == "token_expired"]
    assert (expired["sid"], expired["user_id"], expired["event_id"]) == (sid, "alice", envelope["eventId"])


def test_end_expired_ignores_a_socket_whose_token_changed(harness):
    client = harness.client(harness.token())
    sid = harness.sid(client)
    harness.state.end_expired(sid, harness.state.connections[sid].expires_at - 60)
    assert client.is_connected(NS)
    assert harness.received(client) == []


def test_end_expired_ignores_a_socket_that_is_gone(harness):
    client = harness.client(harness.token())
    sid = harness.sid(client)
    expires_at = harness.state.connections[sid].expires_at
    client.disconnect(NS)
    harness.state.end_expired(sid, expires_at)
    harness.state.end_expired("never-connected", expires_at)
    assert client.queue == []


def test_an_expiring_connection_is_ended_by_the_watcher(harness, mint, monkeypatch):
    clock = Clock(1000.0)
    monkeypatch.setattr(expiry, "time", SimpleNamespace(time=clock.time))
    tasks = []
    harness.state.expiry = ExpiryWatcher(harness.state.end_expired, tasks.append, clock.sleep)
    # exp claims in the past of the real clock would be refused at connect, so use future ones and fake "now".
    short = harness.client(mint(exp=FAR_FUTURE))
    long = harness.client(mint(exp=FAR_FUTURE + 3, sub="bob"))
    clock.now = FAR_FUTURE - 0.5

    run_tasks(tasks)

    assert not short.is_connected(NS) and not long.is_connected(NS)
    assert [packet["args"][0]["payload"]["code"] for packet in short.queue + long.queue] == ["TOKEN_EXPIRED"] * 2
    assert harness.state.connections == {}
    assert harness.user_rooms() == set()


def test_an_unwatched_socket_is_never_ended_and_leaves_no_entry(watcher):
    watcher.watcher.watch("gone", 1001.0)
    watcher.watcher.watch("stays", 1002.0)
    watcher.watcher.unwatch("gone")
    watcher.watcher.unwatch("never-watched")  # a socket without an exp claim
    assert len(watcher.watcher) == 1
    run_tasks(watcher.tasks)
    assert [sid for sid, _, _ in watcher.expired] == ["stays"]
    assert len(watcher.watcher) == 0


def test_reconnect_churn_does_not_grow_the_heap(watcher):
    for number in range(10_000):  # each reconnect watches a new sid and unwatches the old one
        watcher.watcher.watch(f"sid-{number}", FAR_FUTURE)
        watcher.watcher.unwatch(f"sid-{number - 1}")
    assert len(watcher.watcher) == 1
    assert len(watcher.watcher._heap) <= 2 + expiry._STALE_SLACK


def test_a_disconnect_unwatches_the_socket(harness, mint):
    client = harness.client(mint(exp=FAR_FUTURE))
    assert len(harness.state.expiry) == 1
    client.disconnect(namespace=NS)
    assert len(harness.state.expiry) == 0
