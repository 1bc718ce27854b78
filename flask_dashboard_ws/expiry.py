"""Ending connections whose token has expired.

One background task per app and server process watches a heap of expiry times, instead of one timer per
socket: thousands of idle sockets then cost one wake-up a second at most, and none when no token is due.
A socket that goes before its time is unwatched at once, so reconnect churn does not grow the heap: its
entry is dropped from the index, and the heap is rebuilt once such stale entries outnumber the live ones.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

from .log import logger

# How long the watcher sleeps at most, so a token that expires sooner than the one it waits for
# (a connection made while it sleeps) is still ended at most this late.
CHECK_INTERVAL = 1.0


# Stale heap entries tolerated before a rebuild, besides as many as there are live ones.
_STALE_SLACK = 64


class ExpiryWatcher:
    """Calls ``on_expired(sid, expires_at)`` once each watched time has passed, unless it was unwatched."""

    def __init__(
        self,
        on_expired: Callable[[str, float], None],
        start_task: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
    ) -> None:
        self._on_expired = on_expired
        self._start_task = start_task
        self._sleep = sleep
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}  # the live entries; a heap entry not matching one is stale
        self._lock = threading.Lock()
        self._running = False

    def watch(self, sid: str, expires_at: float) -> None:
        with self._lock:
            self._due[sid] = expires_at
            heapq.heappush(self._heap, (expires_at, sid))
            start = not self._running
            self._running = True
        if start:
            self._start_task(self._run)

    def unwatch(self, sid: str) -> None:
        with self._lock:
            if self._due.pop(sid, None) is None:
                return
            if len(self._heap) > 2 * len(self._due) + _STALE_SLACK:
                self._heap = [(expires_at, sid) for sid, expires_at in self._due.items()]
                heapq.heapify(self._heap)

    def __len__(self) -> int:
        """The entries still watched."""
        return len(self._due)

    def _run(self) -> None:
        while True:
            now = time.time()
            with self._lock:
                due = self._pop_due(now)
                if not due and not self._due:
                    self._heap.clear()
                    self._running = False
                    return
                wait = CHECK_INTERVAL if not self._heap else min(CHECK_INTERVAL, self._heap[0][0] - now)
            for expires_at, sid in due:
                try:
                    self._on_expired(sid, expires_at)
                except Exception:  # one failed disconnect must not stop the watcher for every other socket
                    logger.exception("expiry_failed", sid=sid)
            self._sleep(max(wait, 0.0))

    def _pop_due(self, now: float) -> list[tuple[float, str]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            expires_at, sid = heapq.heappop(self._heap)
            if self._due.get(sid) == expires_at:
                del self._due[sid]
                due.append((expires_at, sid))
        return due
