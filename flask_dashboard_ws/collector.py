"""Short garbage-collection pauses with thousands of sockets (opt-in: ``DASHBOARD_WS_GC_FREEZE_INTERVAL``).

CPython's full collection walks every tracked object, and each socket keeps ~150 of them (eventlet), so
with 5,000 sockets a full collection stops the whole server for about half a second (measured in
``BENCHMARKS.md``). With an interval set, one background task per process collects what is not frozen
and then calls ``gc.freeze()`` that often: whatever is alive by then (the app's modules, the open sockets'
state) moves to the permanent generation, which collections skip, so no automatic collection walks more
than about one interval's worth of objects. Garbage cycles among frozen objects, such as the state of
sockets that have disconnected since, are then only found after ``gc.unfreeze()``. So the task unfreezes and
collects everything every ``DASHBOARD_WS_GC_RECLAIM_INTERVAL``, and sooner once the sockets that disconnected
since the last reclaim number a quarter of those still open (and at least ``RECLAIM_AFTER_DISCONNECTS``):
CPython's own rule for full collections, counted in the garbage that freezing holds back (disconnected
sockets) rather than in all new objects (which, while sockets connect, are mostly new live sockets). Held
garbage stays bounded under reconnect churn, and a server whose sockets stay connected sees one long pause
per reclaim interval. The price is paid in disconnect storms, where the rule fires several times as the open
sockets dwindle (19,500 sockets leaving took ~15 s against ~7.5 s with freezing off; spacing the reclaims
out made storms as fast but let held garbage and pauses grow: BENCHMARKS.md). So a reclaim that the
disconnects made due waits until a tick finds that no session ended since the previous one, for at most
``STORM_WAIT``: one reclaim after a storm of a few thousand disconnects, not one per quarter of the sockets
left. ``gc.freeze()`` itself only splices lists.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from .log import logger

_lock = threading.Lock()
_started = False  # the collector is one per process, like the garbage collector it tunes

# Disconnects that always wait for the reclaim interval: ~10 MB of held garbage at most (~9 KB per
# disconnected socket in BENCHMARKS.md's churn run), while with few sockets open a reclaim's pause is mostly
# the app's start-up heap (~40 ms for the benchmark's app), which a small server should not pay every minute.
RECLAIM_AFTER_DISCONNECTS = 1000

# Longest a reclaim that the disconnects made due waits for them to stop (a disconnect storm): one reclaim
# after the storm instead of one every quarter of the sockets left (each pauses the whole process), with the
# garbage held meanwhile bounded by this many seconds of disconnects.
STORM_WAIT = 5.0


class Collector:
    """Freezes the heap every ``freeze_interval`` seconds and reclaims it every ``reclaim_interval``."""

    def __init__(
        self,
        freeze_interval: float | None,
        reclaim_interval: float,
        start_task: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        open_sockets: Callable[[], int],
        on_reclaim: Callable[[float], None] | None = None,
    ) -> None:
        self.freeze_interval = freeze_interval
        self._on_reclaim = on_reclaim  # given each reclaim's pause, in seconds (the metrics' histogram)
        self.reclaim_interval = reclaim_interval
        self._start_task = start_task
        self._sleep = sleep
        self._open_sockets = open_sockets
        self._last_reclaim = time.monotonic()
        self._disconnects = 0  # since the last reclaim
        self._disconnects_at_tick = 0  # as the last tick saw them
        self._due_since: float | None = None  # when the disconnects made a reclaim due

    def start(self) -> None:
        """Start the process's task on the first call after start-up (a socket's connect); later calls return."""
        global _started
        if self.freeze_interval is None or _started:
            return
        with _lock:
            if _started:
                return
            _started = True
        self._start_task(self._run)

    def _run(self) -> None:
        while True:
            self.tick()
            self._sleep(self.freeze_interval)  # type: ignore[arg-type]

    def disconnected(self) -> None:
        """Count an engine.io session that ended, authenticated or not: its state, frozen while it was open, may
        now be garbage that only a reclaim frees."""
        self._disconnects += 1

    def reclaim_due(self, now: float) -> bool:
        """The interval has passed, or enough sessions ended and they have stopped ending (or STORM_WAIT passed)."""
        if now - self._last_reclaim >= self.reclaim_interval:
            return True
        if self._disconnects < max(RECLAIM_AFTER_DISCONNECTS, self._open_sockets() // 4):
            return False
        if self._due_since is None:
            self._due_since = now
        still_ending = self._disconnects != self._disconnects_at_tick
        return not still_ending or now - self._due_since >= STORM_WAIT

    def tick(self) -> None:
        """Collect what is not frozen (or everything, when a reclaim is due), then freeze what is alive."""
        due = self.reclaim_due(time.monotonic())
        self._disconnects_at_tick = self._disconnects
        if due:
            self.reclaim()
        else:
            # Every generation, but they hold only what was allocated since the last freeze: young garbage is
            # collected rather than frozen, including what CPython's automatic collections promoted to the oldest
            # generation meanwhile (a collection of the young ones alone froze a fifth of the refused
            # handshakes of a flood on eventlet, whose connections are cycles, against 4% with this). Its pause
            # grows with the interval: at 19,500 sockets and 1,000 events/s, ~40 ms at 1 s and under 10 ms at
            # 0.2 s (BENCHMARKS.md).
            gc.collect(2)
        gc.freeze()

    def reclaim(self) -> None:
        started = time.perf_counter()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        found = gc.collect()
        self._last_reclaim = time.monotonic()
        disconnects, self._disconnects = self._disconnects, 0
        self._disconnects_at_tick, self._due_since = 0, None
        pause = time.perf_counter() - started
        if self._on_reclaim is not None:
            self._on_reclaim(pause)
        logger.info(
            "gc_reclaimed", frozen=frozen, unreachable=found, disconnects=disconnects, pause_ms=round(pause * 1000, 1)
        )
