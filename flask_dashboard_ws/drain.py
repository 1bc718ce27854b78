"""Draining a process before it stops, so that its users reconnect elsewhere without noticing much.

The official client does not reconnect after a Socket.IO disconnect ("io server disconnect"), but it does
after its transport closes. So the drain closes each session at the engine.io level, in paced batches spread
over the budget (a whole process closing at once would make every tab reconnect in the same second), after
readiness has turned 503 and while new handshakes are refused with 503, so that the load balancer sends the
reconnects to the other processes. Events of requests still running are sent as usual.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from .log import logger

if TYPE_CHECKING:
    from .extension import DashboardState

# Seconds between two batches, and the share of the budget over which they are spread: the rest is left for
# the last transports to close.
DRAIN_STEP = 0.5
DRAIN_SPREAD = 0.8
DRAINED = "drained"


def drain_sessions(state: DashboardState, timeout: float) -> dict[str, Any]:
    """Drain this process's sessions within ``timeout`` seconds; what it did, for the caller and the log."""
    guard = state.guard
    guard.draining = True
    started = time.monotonic()
    deadline = started + timeout
    sessions = [eio_sid for eio_sid, socket in list(guard.eio.sockets.items()) if not socket.closed]
    steps = max(1, math.floor(timeout * DRAIN_SPREAD / DRAIN_STEP))
    batch = max(1, math.ceil(len(sessions) / steps))
    logger.info("drain_started", sessions=len(sessions), timeout=timeout, batch=batch, step=DRAIN_STEP)
    closed = 0
    for first in range(0, len(sessions), batch):
        for eio_sid in sessions[first:first + batch]:
            closed += guard.close_for(eio_sid, DRAINED)
        logger.info("drain_progress", closed=closed, remaining=max(0, len(sessions) - first - batch))
        next_step = started + (first // batch + 1) * DRAIN_STEP
        if first + batch < len(sessions):
            state.socketio.sleep(max(0.0, min(next_step, deadline) - time.monotonic()))
    while _open(guard) and time.monotonic() < deadline:
        state.socketio.sleep(0.05)  # the transports still closing: waited for, within the budget
    report = {"sessions": len(sessions), "closed": closed, "open": _open(guard),
              "seconds": round(time.monotonic() - started, 3)}
    logger.info("drain_finished", **report)
    return report


def _open(guard: Any) -> int:
    return sum(1 for socket in list(guard.eio.sockets.values()) if not socket.closed)
