"""Short garbage-collection pauses with thousands of sockets (opt-in: ``DASHBOARD_WS_GC_FREEZE_INTERVAL``).

CPython's full collection walks every tracked object, and each socket keeps ~150 of them (eventlet), so
with 5,000 sockets a full collection stops the whole server for about half a second (measured in
``BENCHMARKS.md``). With an interval set, one background task per process collects the young generations
and then calls ``gc.freeze()`` that often: whatever is alive by then (the app's modules, the open sockets'
state) moves to the permanent generation, which collections skip, so no automatic collection walks more
than about one interval's worth of objects. Garbage cycles among frozen objects, such as the state of
sockets that have disconnected since, are then only found after ``gc.unfreeze()``, so every
``DASHBOARD_WS_GC_RECLAIM_INTERVAL`` the task unfreezes and collects once: one long pause at a known rhythm
instead of one whenever the heap has grown by a quarter. ``gc.freeze()`` itself only splices lists.
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


class Collector:
    """Freezes the heap every ``freeze_interval`` seconds and reclaims it every ``reclaim_interval``."""

    def __init__(
        self,
        freeze_interval: float | None,
        reclaim_interval: float,
        start_task: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
    ) -> None:
        self.freeze_interval = freeze_interval
        self.reclaim_interval = reclaim_interval
        self._start_task = start_task
        self._sleep = sleep
        self._last_reclaim = time.monotonic()

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

    def tick(self) -> None:
        """Collect the young generations (or everything, when a reclaim is due), then freeze what is alive."""
        if time.monotonic() - self._last_reclaim >= self.reclaim_interval:
            self.reclaim()
        else:
            # Only what was allocated since the last tick, so that young garbage is collected rather than frozen.
            # Its pause grows with the interval: at 19,500 sockets and 1,000 events/s, ~40 ms at 1 s and under
            # 10 ms at 0.2 s (BENCHMARKS.md).
            gc.collect(1)
        gc.freeze()

    def reclaim(self) -> None:
        started = time.perf_counter()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        found = gc.collect()
        self._last_reclaim = time.monotonic()
        logger.info(
            "gc_reclaimed",
            frozen=frozen,
            unreachable=found,
            pause_ms=round((time.perf_counter() - started) * 1000, 1),
        )
