"""Ending connections whose token has expired.

One background task per app and server process watches a heap of expiry times, instead of one timer per
socket: thousands of idle sockets then cost one wake-up a second at most, and none when no token is due.
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


class ExpiryWatcher:
    """Calls ``on_expired(sid, expires_at)`` once each watched token's expiry time has passed."""

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
        self._lock = threading.Lock()
        self._running = False

    def watch(self, sid: str, expires_at: float) -> None:
        with self._lock:
            heapq.heappush(self._heap, (expires_at, sid))
            start = not self._running
            self._running = True
        if start:
            self._start_task(self._run)

    def _run(self) -> None:
        while True:
            now = time.time()
            with self._lock:
                due = self._pop_due(now)
                if not due and not self._heap:
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
            due.append(heapq.heappop(self._heap))
        return due
