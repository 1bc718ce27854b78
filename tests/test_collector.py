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


def make(freeze_interval=10.0, reclaim_interval=60.0, tasks=None):
    tasks = [] if tasks is None else tasks
    return Collector(freeze_interval, reclaim_interval, tasks.append, lambda seconds: None)


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
