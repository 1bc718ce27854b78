import gc
import weakref

import pytest
from structlog.testing import capture_logs

from flask_dashboard_ws import collector
from flask_dashboard_ws.collector import Collector


class Cycle:
    """A garbage cycle: only the collector frees it, never reference counting."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test starts as a process whose collector task has not started; the heap is unfrozen after."""
    monkeypatch.setattr(collector, "_started", False)
    yield
    gc.unfreeze()


def make(freeze_interval=10.0, reclaim_interval=60.0, tasks=None, open_sockets=0):
    tasks = [] if tasks is None else tasks
    return Collector(freeze_interval, reclaim_interval, tasks.append, lambda seconds: None, lambda: open_sockets)


def test_tick_freezes_what_is_alive():
    gc.unfreeze()
    kept = [Cycle() for _ in range(100)]
    make().tick()
    assert gc.get_freeze_count() >= len(kept)


def test_tick_collects_young_garbage_before_freezing():
    gc.unfreeze()
    gc.collect()
    alive = Cycle()
    dead = weakref.ref(Cycle())  # garbage at once, but only a collection frees a cycle
    assert dead() is not None
    make().tick()
    assert dead() is None
    assert not any(o is alive for o in gc.get_objects())  # frozen: no generation holds it any more


def test_tick_collects_garbage_that_an_automatic_collection_promoted_since_the_last_tick():
    """A short-lived connection's cycle, promoted to the oldest generation while alive and dead by the tick, is
    freed at the tick rather than frozen until the next reclaim (most of eventlet's refused handshakes)."""
    gc.unfreeze()
    gc.freeze()
    cycle = Cycle()
    dead = weakref.ref(cycle)
    gc.collect(1)  # what CPython's automatic collections do between ticks: the survivor moves to generation 2
    del cycle
    make().tick()
    assert dead() is None


def test_reclaim_frees_cycles_that_died_while_frozen():
    gc.unfreeze()
    garbage = [Cycle() for _ in range(1000)]
    gc.freeze()
    del garbage  # the cycles are now garbage, but frozen: no collection can see them
    assert gc.collect() < 1000
    with capture_logs() as logs:
        make().reclaim()
    [line] = logs
    assert line["event"] == "gc_reclaimed" and line["unreachable"] >= 1000 and line["frozen"] >= 1000
    assert gc.get_freeze_count() == 0


def test_tick_reclaims_only_when_the_interval_has_passed(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(collector.time, "monotonic", lambda: now[0])
    c = make(reclaim_interval=60.0)
    with capture_logs() as logs:
        c.tick()
        now[0] += 59.0
        c.tick()
        assert logs == []
        now[0] += 1.0
        c.tick()
    assert [line["event"] for line in logs] == ["gc_reclaimed"]
    assert gc.get_freeze_count() > 0  # frozen again after the reclaim


@pytest.mark.parametrize(
    ("open_sockets", "threshold"),
    [(20_000, 5_000), (100, collector.RECLAIM_AFTER_DISCONNECTS)],
    ids=["a quarter of the open sockets", "at least the floor"],
)
def test_tick_reclaims_once_enough_sockets_disconnected(open_sockets, threshold):
    c = make(reclaim_interval=3600.0, open_sockets=open_sockets)
    with capture_logs() as logs:
        for _ in range(threshold - 1):
            c.disconnected()
        c.tick()
        assert logs == []
        c.disconnected()
        c.tick()  # due, but a session ended since the last tick: they may still be ending
        assert logs == []
        c.tick()  # none since: reclaim
        c.disconnected()
        c.tick()
        c.tick()  # the count starts again after a reclaim
    [line] = logs
    assert line["event"] == "gc_reclaimed" and line["disconnects"] == threshold


def test_a_disconnect_storm_gets_one_reclaim_after_it_or_one_every_storm_wait(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(collector.time, "monotonic", lambda: now[0])
    c = make(reclaim_interval=3600.0, open_sockets=100)
    with capture_logs() as logs:
        for _ in range(10):  # 2,500 sessions ending over ten ticks: past the threshold, still going
            for _ in range(250):
                c.disconnected()
            c.tick()
            now[0] += 0.25
        assert logs == []
        c.tick()  # the storm is over
        assert [line["disconnects"] for line in logs] == [2500]
        while now[0] < 1002.5 + collector.STORM_WAIT + 1:  # a storm that does not stop
            for _ in range(250):
                c.disconnected()
            c.tick()
            now[0] += 0.25
    # Due from the fourth tick of the second storm, reclaimed STORM_WAIT later, whatever the count by then.
    assert len(logs) == 2 and logs[1]["disconnects"] == 250 * (4 + int(collector.STORM_WAIT / 0.25))


def test_start_runs_one_task_per_process():
    tasks = []
    first, second = make(tasks=tasks), make(tasks=tasks)
    first.start()
    first.start()
    second.start()
    assert len(tasks) == 1


def test_no_interval_no_task():
    tasks = []
    make(freeze_interval=None, tasks=tasks).start()
    assert tasks == [] and collector._started is False


def test_the_first_connection_starts_it(make_app, monkeypatch):
    started = []
    h = make_app(DASHBOARD_WS_GC_FREEZE_INTERVAL=5)
    monkeypatch.setattr(h.state.collector, "_start_task", started.append)
    assert started == []
    client = h.socketio.test_client(h.app, namespace="/dashboard", auth={"token": h.token()})
    assert client.is_connected("/dashboard")
    assert started == [h.state.collector._run]


def test_every_engineio_session_that_ends_is_counted_authenticated_or_not(make_app):
    h = make_app(DASHBOARD_WS_GC_FREEZE_INTERVAL=5)
    h.state.collector._start_task = lambda task: None
    # The session guard reports each engine.io session's end; a session that never authenticated leaves
    # garbage that a freeze holds back too.
    for eio_sid in ("an-authenticated-session", "a-session-that-never-connected"):
        h.state.guard.on_disconnect(eio_sid, "transport close")
    assert h.state.collector._disconnects == 2
