"""The scheduled sweep that does what the Socket.IO server's timers do, for API Gateway connections.

Run every ``DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL`` seconds (an EventBridge schedule), it reads the whole
connections table and, for each connection:

* not authenticated within ``DASHBOARD_WS_AUTH_TIMEOUT``: close it;
* its token has expired: ``dashboard:error`` with ``TOKEN_EXPIRED``, a namespace disconnect, close (the client
  does not reconnect by itself, as with the Socket.IO server);
* older than ``DASHBOARD_WS_APIGATEWAY_MAX_AGE``: close it, so that the client reconnects by itself before
  API Gateway's 2 hour limit would drop it;
* otherwise, if its last ping is ``DASHBOARD_WS_APIGATEWAY_PING_INTERVAL`` old: ping it. socket.io-client
  closes a connection that gets no ping within pingInterval + pingTimeout, and API Gateway one that carries no
  data for 10 minutes; the client's pong counts as data.

So each of these happens up to one sweep late. A connection that answers 410 is forgotten.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..emitter import prepare
from ..events import EventType
from ..extension import TOKEN_EXPIRED, TOKEN_EXPIRED_MESSAGE
from ..log import logger
from . import packets
from .aws import ApiGatewayUnavailable
from .backend import ApiGatewayState
from .management import Outcome
from .table import READY, Connection


def due(connection: Connection, now: float, state: ApiGatewayState) -> str | None:
    """What the sweep must do to ``connection`` now: ``auth_timeout``, ``expire``, ``recycle``, ``ping`` or None."""
    aws = state.settings.apigateway
    assert aws is not None
    if connection.status != READY:
        return "auth_timeout" if now >= connection.connected_at + state.settings.auth_timeout else None
    if connection.expires_at is not None and now >= connection.expires_at:
        return "expire"
    if now >= connection.connected_at + aws.max_age:
        return "recycle"
    if now >= (connection.pinged_at or connection.connected_at) + aws.ping_interval:
        return "ping"
    return None


def sweep(state: ApiGatewayState, now: float) -> dict[str, Any]:
    """One sweep; returns how many connections it found and what it did (the handler's result)."""
    work = {}
    found = 0
    for connection in state.table.scan():
        found += 1
        action = due(connection, now, state)
        if action is not None:
            work[connection.connection_id] = (action, connection)

    def act(connection_id: str) -> str:
        action, connection = work[connection_id]
        try:
            return _ACTIONS[action](state, connection, now)
        except ApiGatewayUnavailable as exc:
            logger.error("sweep_failed", connection_id=connection_id, action=action, error=str(exc))
            return "failed"

    done = Counter(state.api.each(act, list(work)))
    result = {"connections": found, **done}
    logger.info("swept", **result)
    return result


def _auth_timeout(state: ApiGatewayState, connection: Connection, now: float) -> str:
    logger.warning("session_limited", connection_id=connection.connection_id, reason="auth_timeout")
    state.close(connection.connection_id)
    return "timed_out"


def _expire(state: ApiGatewayState, connection: Connection, now: float) -> str:
    payload = {"code": TOKEN_EXPIRED, "message": TOKEN_EXPIRED_MESSAGE}  # as the Socket.IO server's
    outgoing = prepare(EventType.ERROR, connection.user_id, payload, state.event_limit)
    state.end(connection.connection_id, [state.event_packet(outgoing)], outgoing)
    logger.info(
        "token_expired",
        connection_id=connection.connection_id,
        user_id=connection.user_id,
        event_id=outgoing.envelope["eventId"],
    )
    return "expired"


def _recycle(state: ApiGatewayState, connection: Connection, now: float) -> str:
    logger.info("connection_recycled", connection_id=connection.connection_id, user_id=connection.user_id)
    state.close(connection.connection_id)
    return "recycled"


def _ping(state: ApiGatewayState, connection: Connection, now: float) -> str:
    if state.post(connection.connection_id, packets.PING).outcome is Outcome.GONE:
        return "gone"
    state.table.pinged(connection.connection_id, now)
    return "pinged"


_ACTIONS = {"auth_timeout": _auth_timeout, "expire": _expire, "recycle": _recycle, "ping": _ping}
