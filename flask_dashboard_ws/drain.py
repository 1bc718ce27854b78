"""Draining a process before it stops, so that its users reconnect elsewhere without noticing much.

The official client does not reconnect after a Socket.IO disconnect ("io server disconnect"), but it does
after its transport closes. So the drain closes each session at the engine.io level, in paced batches spread
over the budget (a whole process closing at once would make every tab reconnect in the same second), after
readiness has turned 503 and while new handshakes are refused with 503, so that the load balancer sends the
reconnects to the other processes. Events of requests still running are sent as usual.

With connection state recovery, each batch's pids are written to Redis (one round trip) before its sessions
close, so that a tab finds its pid wherever it reconnects; what is still queued at the end
gets up to the queue's timeout past the budget.

A drain returns once the sessions it closed have sent their CLOSE (within the budget), and under eventlet once
their WebSocket requests can end, so that a server that waits for its requests before it exits (gunicorn's
workers, within their ``graceful_timeout``) exits right after it.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .log import logger
from .sockets import queued

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
    sockets = {eio_sid: socket for eio_sid, socket in list(guard.eio.sockets.items()) if not socket.closed}
    sessions = list(sockets)
    steps = max(1, math.floor(timeout * DRAIN_SPREAD / DRAIN_STEP))
    batch = max(1, math.ceil(len(sessions) / steps))
    logger.info("drain_started", sessions=len(sessions), timeout=timeout, batch=batch, step=DRAIN_STEP)
    closed = 0
    for first in range(0, len(sessions), batch):
        if state.recovery is not None:
            state.recovery.closing(sessions[first:first + batch])
        for eio_sid in sessions[first:first + batch]:
            closed += guard.close_for(eio_sid, DRAINED)
        logger.info("drain_progress", closed=closed, remaining=max(0, len(sessions) - first - batch))
        next_step = started + (first // batch + 1) * DRAIN_STEP
        if first + batch < len(sessions):
            state.socketio.sleep(max(0.0, min(next_step, deadline) - time.monotonic()))
    while _unsent(sockets) and time.monotonic() < deadline:
        state.socketio.sleep(0.05)  # the CLOSE packets still queued: waited for, within the budget
    if state.recovery is not None:  # pids still queued (batches past the budget): up to the queue's timeout more
        state.recovery.flush(max(deadline, time.monotonic() + state.settings.queue_timeout))
    if state.socketio.async_mode == "eventlet":
        release_parked_readers()
    report = {"sessions": len(sessions), "closed": closed, "open": _open(guard),
              "seconds": round(time.monotonic() - started, 3)}
    logger.info("drain_finished", **report)
    return report


def _open(guard: Any) -> int:
    return sum(1 for socket in list(guard.eio.sockets.values()) if not socket.closed)


def _unsent(sockets: dict[str, Any]) -> bool:
    """Whether a session the drain closed still has packets queued, its CLOSE at least: its writer, which
    closes the transport once it has sent them, has not run yet (the ``None`` that stops it does not count)."""
    return any(pkt is not None for socket in sockets.values() for pkt in list(getattr(queued(socket), "queue", ())))


def release_parked_readers() -> int:
    """Under eventlet, wake the green threads waiting to read from a socket that has been closed; how many.

    engine.io's writer closes a WebSocket's socket when its session ends, while the reader of the same session
    waits on it. eventlet does not wake a green thread waiting on a closed file descriptor: its hub learns of
    it only when the number is reused. Until then the reader, and the request it serves, wait for the socket's
    timeout (ping interval plus ping timeout), and gunicorn's eventlet worker, which waits for its requests
    before it exits, would wait out its ``graceful_timeout`` after every drain, to be killed. ``notify_opened``
    is eventlet's own way to report a descriptor closed behind its back: the readers get an error and end.
    A descriptor still open (fstat succeeds), even if reused since, is left alone: its listeners are live.
    The hub throws the error at the start of its next turn: this yields once, so that they have it on return.
    """
    import eventlet
    from eventlet import hubs

    released = 0
    for listener in list(hubs.get_hub().get_readers()):
        try:
            os.fstat(listener.fileno)
        except OSError:
            hubs.notify_opened(listener.fileno)
            released += 1
    if released:
        eventlet.sleep(0)
    return released


def drain_on_sigterm(state: DashboardState, app_context: Callable[[], Any]) -> None:
    """On SIGTERM, drain within ``DASHBOARD_WS_DRAIN_TIMEOUT``, then do what SIGTERM did before.

    The drain runs as a background task of the server (a green thread under eventlet and gevent), so that the
    server keeps serving meanwhile. Then the task sends SIGTERM again, and the handler, now in the main thread
    as Python runs signal handlers, hands it to the previous one: gunicorn's worker handler (which stops the
    worker within its ``graceful_timeout``: keep the drain shorter), or the default action, which ends the
    process. gunicorn installs its worker's handler before it loads the app, so this one comes after it and
    chains to it; with ``--preload`` the app is loaded in the master, and the worker's own handler replaces
    this one: no drain. gunicorn's master kills its workers ``graceful_timeout`` after its own SIGTERM, drain
    included.
    """
    previous = signal.getsignal(signal.SIGTERM)
    draining, drained = threading.Event(), threading.Event()

    def handle(signum: int, frame: Any) -> None:
        if drained.is_set() or (state.guard.draining and not draining.is_set()):
            # Our drain is over, or the app drained already (a drain() from a preStop hook): stop now.
            _previous_action(previous, signum, frame)
        elif not draining.is_set():
            draining.set()
            state.guard.draining = True  # readiness and the handshake gate, at once
            state.socketio.start_background_task(drain_then_stop)

    def drain_then_stop() -> None:
        # Logged here, not in the handler: a handler that writes could interrupt a write to the same stream.
        logger.info("drain_requested", signal="SIGTERM")
        try:
            with app_context():
                drain_sessions(state, state.settings.drain_timeout)
        finally:
            drained.set()
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread
        from .config import ConfigError

        raise ConfigError(
            "DASHBOARD_WS_DRAIN_ON_SIGTERM: init_app must run in the process's main thread to handle SIGTERM"
        ) from None


def _previous_action(previous: Any, signum: int, frame: Any) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
