"""Sending events to a user's room, at once or when the current request has succeeded.

Validation always happens at the call, so a bad payload fails in the view that built it. Deferring only
moves the send: events emitted while handling a request that then fails describe a write that did not
happen, so they are dropped.

When the backend does not take an event (:class:`DeliveryUnavailable`: the Redis message queue's
``QueueUnavailable``, or ``ApiGatewayUnavailable`` on AWS), a send at once logs ``event_dropped`` and raises to
the caller; a deferred send can only log, since its view has returned, and the events queued after it in the
same request are dropped too (in order, and without waiting on the backend again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flask import g, has_request_context
from marshmallow import ValidationError

from .config import Settings
from .envelope import SizeLimit, check_size, make_envelope
from .events import EventType, event_type, wire_payload
from .log import logger
from .rooms import user_room

if TYPE_CHECKING:
    from .metrics import Metrics

_PENDING = "_dashboard_ws_pending"


class DeliveryUnavailable(ConnectionError):
    """The backend did not take an event; subclassed by ``QueueUnavailable`` and ``ApiGatewayUnavailable``.

    ``envelope`` is the event's envelope when the emit came through ``DashboardRealtime``; ``reason`` is what
    ``event_dropped`` logs.
    """

    reason = "delivery_unavailable"

    def __init__(self, message: str, envelope: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.envelope = envelope

    def __str__(self) -> str:
        return str(self.args[0])


class Backend(Protocol):
    """What the emitter needs of an app's state: the Socket.IO server's, or the API Gateway one's."""

    settings: Settings
    event_limit: SizeLimit
    metrics: Metrics | None

    def deliver(self, outgoing: Outgoing) -> None:
        """Send one event to every socket of its user; raises :class:`DeliveryUnavailable`."""

    def end_user(self, outgoing: Outgoing) -> None:
        """Send the error event, then disconnect every socket of its user; raises :class:`DeliveryUnavailable`."""


@dataclass(frozen=True)
class Outgoing:
    """One validated event on its way to one user's room, and how long its validation took (seconds)."""

    room: str
    user_id: Any
    envelope: dict[str, Any]
    prepare_seconds: float = 0.0


def prepare(kind: EventType | str, user_id: Any, payload: Any, limit: SizeLimit) -> Outgoing:
    """Check the type, the user id, the payload and the enveloped size; raises before anything is sent."""
    started = time.perf_counter()
    kind = event_type(kind)
    room = user_room(user_id)
    envelope = make_envelope(kind, wire_payload(kind, payload))
    check_size(envelope, limit)
    return Outgoing(room=room, user_id=user_id, envelope=envelope, prepare_seconds=time.perf_counter() - started)


def emit(state: Backend, kind: EventType | str, user_id: Any, payload: Any, defer: bool | None) -> dict[str, Any]:
    """Validate and envelope ``payload``, then send it now or queue it for the end of the request."""
    try:
        outgoing = prepare(kind, user_id, payload, state.event_limit)
    except ValidationError:
        if state.metrics is not None:
            state.metrics.event_invalid(str(kind))
        raise
    if (state.settings.defer_in_request if defer is None else defer) and has_request_context():
        g.setdefault(_PENDING, []).append(outgoing)
    else:
        send_now(state, outgoing)
    return outgoing.envelope


def send_now(state: Backend, outgoing: Outgoing) -> None:
    """Send at once; a backend outage is logged and raised to the caller with the event's envelope."""
    try:
        send(state, outgoing, deferred=False)
    except DeliveryUnavailable as exc:
        log_dropped(state, outgoing, reason=exc.reason, error=str(exc))
        exc.envelope = outgoing.envelope
        raise


def end_user(state: Backend, outgoing: Outgoing) -> None:
    """``disconnect_user``: at once, never deferred; an outage is logged and raised as by :func:`send_now`."""
    try:
        state.end_user(outgoing)
    except DeliveryUnavailable as exc:
        log_dropped(state, outgoing, reason=exc.reason, error=str(exc))
        exc.envelope = outgoing.envelope
        raise


def send(state: Backend, outgoing: Outgoing, deferred: bool) -> None:
    envelope = outgoing.envelope
    started = time.perf_counter()
    state.deliver(outgoing)
    if state.metrics is not None:
        state.metrics.event_emitted(envelope["type"], outgoing.prepare_seconds + time.perf_counter() - started)
    logger.debug(
        "event_emitted",
        type=envelope["type"],
        user_id=str(outgoing.user_id),
        event_id=envelope["eventId"],
        deferred=deferred,
    )


def flush_pending(state: Backend, error: BaseException | None) -> None:
    """Teardown: send what the request queued, in order, or drop it all if the request failed."""
    pending: list[Outgoing] = g.pop(_PENDING, [])
    outage: DeliveryUnavailable | None = None
    for outgoing in pending:
        if error is not None:
            log_dropped(state, outgoing, reason="request_failed", error=type(error).__name__)
            continue
        if outage is not None:
            log_dropped(state, outgoing, reason=outage.reason, error=str(outage))
            continue
        try:
            send(state, outgoing, deferred=True)
        except DeliveryUnavailable as exc:
            outage = exc
            log_dropped(state, outgoing, reason=exc.reason, error=str(exc))
        except Exception as exc:  # teardown must not fail the response; the loss is logged
            log_dropped(state, outgoing, reason="send_failed", error=type(exc).__name__)


def log_dropped(state: Backend, outgoing: Outgoing, reason: str, error: str | None, **fields: Any) -> None:
    """``event_dropped``: the event, why, and (``fields``) where, e.g. the API Gateway connection; counted."""
    if state.metrics is not None:
        state.metrics.event_dropped(reason)
    envelope = outgoing.envelope
    logger.warning(
        "event_dropped",
        type=envelope["type"],
        user_id=str(outgoing.user_id),
        event_id=envelope["eventId"],
        **fields,
        reason=reason,
        error=error,
    )
