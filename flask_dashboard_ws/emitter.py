"""Sending events to a user's room, at once or when the current request has succeeded.

Validation always happens at the call, so a bad payload fails in the view that built it. Deferring only
moves the send: events emitted while handling a request that then fails describe a write that did not
happen, so they are dropped.

When the message queue does not take an event (``QueueUnavailable``), a send at once logs ``event_dropped``
and raises to the caller; a deferred send can only log, since its view has returned, and the events queued
after it in the same request are dropped too (in order, and without waiting on the queue again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context

from .envelope import check_size, make_envelope
from .events import EventType, event_type, wire_payload
from .log import logger
from .queue import QueueUnavailable
from .rooms import user_room

if TYPE_CHECKING:
    from .extension import DashboardState

_PENDING = "_dashboard_ws_pending"
QUEUE_UNAVAILABLE = "queue_unavailable"


@dataclass(frozen=True)
class Outgoing:
    """One validated event on its way to one user's room."""

    room: str
    user_id: Any
    envelope: dict[str, Any]


def prepare(kind: EventType | str, user_id: Any, payload: Any, max_bytes: int) -> Outgoing:
    """Check the type, the user id, the payload and the enveloped size; raises before anything is sent."""
    kind = event_type(kind)
    room = user_room(user_id)
    envelope = make_envelope(kind, wire_payload(kind, payload))
    check_size(envelope, max_bytes)
    return Outgoing(room=room, user_id=user_id, envelope=envelope)


def emit(state: DashboardState, kind: EventType | str, user_id: Any, payload: Any, defer: bool | None) -> dict[str, Any]:
    """Validate and envelope ``payload``, then send it now or queue it for the end of the request."""
    outgoing = prepare(kind, user_id, payload, state.settings.max_event_bytes)
    if (state.settings.defer_in_request if defer is None else defer) and has_request_context():
        g.setdefault(_PENDING, []).append(outgoing)
    else:
        send_now(state, outgoing)
    return outgoing.envelope


def send_now(state: DashboardState, outgoing: Outgoing) -> None:
    """Send at once; a queue outage is logged and raised to the caller with the event's envelope."""
    try:
        send(state, outgoing, deferred=False)
    except QueueUnavailable as exc:
        _log_dropped(outgoing, reason=QUEUE_UNAVAILABLE, error=str(exc))
        exc.envelope = outgoing.envelope
        raise


def send(state: DashboardState, outgoing: Outgoing, deferred: bool) -> None:
    envelope = outgoing.envelope
    state.socketio.emit(envelope["type"], envelope, to=outgoing.room, namespace=state.settings.namespace)
    logger.debug(
        "event_emitted",
        type=envelope["type"],
        user_id=str(outgoing.user_id),
        event_id=envelope["eventId"],
        deferred=deferred,
    )


def flush_pending(state: DashboardState, error: BaseException | None) -> None:
    """Teardown: send what the request queued, in order, or drop it all if the request failed."""
    pending: list[Outgoing] = g.pop(_PENDING, [])
    queue_error: str | None = None
    for outgoing in pending:
        if error is not None:
            _log_dropped(outgoing, reason="request_failed", error=type(error).__name__)
            continue
        if queue_error is not None:
            _log_dropped(outgoing, reason=QUEUE_UNAVAILABLE, error=queue_error)
            continue
        try:
            send(state, outgoing, deferred=True)
        except QueueUnavailable as exc:
            queue_error = str(exc)
            _log_dropped(outgoing, reason=QUEUE_UNAVAILABLE, error=queue_error)
        except Exception as exc:  # teardown must not fail the response; the loss is logged
            _log_dropped(outgoing, reason="send_failed", error=type(exc).__name__)


def _log_dropped(outgoing: Outgoing, reason: str, error: str) -> None:
    envelope = outgoing.envelope
    logger.warning(
        "event_dropped",
        type=envelope["type"],
        user_id=str(outgoing.user_id),
        event_id=envelope["eventId"],
        reason=reason,
        error=error,
    )
