"""The ``/dashboard`` Socket.IO namespace: authenticate on connect, join the user's room, nothing else.

The namespace handles no client events at all, so a client cannot join, leave or emit to a room.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

from flask import current_app, request
from flask_socketio import ConnectionRefusedError, Namespace, join_room

from .auth import TOKEN_INVALID, AuthFailed, find_token, verify_token
from .log import logger
from .rooms import user_room

if TYPE_CHECKING:
    from .metrics import Metrics

# The ``data.code`` of a connection refused because its user has DASHBOARD_WS_MAX_SOCKETS_PER_USER already.
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"


def _sid() -> str:
    """The Socket.IO session id, which Flask-SocketIO sets on the request of every handler it calls."""
    return request.sid  # type: ignore[attr-defined]


class DashboardNamespace(Namespace):
    def on_connect(self, auth: Any = None) -> Any:
        state = current_app.extensions["dashboard_ws"]
        sid = _sid()
        if sid in state.connections:
            # python-socketio hands a client's *event* named "connect" to this handler too; a real connect
            # always has a fresh sid, so a sid that is already authenticated means a client event.
            return self._ignore("connect", sid)
        log = logger.bind(sid=sid, remote_addr=request.remote_addr)
        metrics = state.metrics
        source = None
        started = time.perf_counter()
        try:
            token, source = find_token(auth, state.cookie_origins())
            log.debug("connect_attempt", token_source=source)
            identity = verify_token(token)
        except AuthFailed as failure:
            self._refuse(log, metrics, failure.reason, failure.detail, source)
        except Exception as exc:  # an app callback (blocklist, user lookup) failed: fail closed
            self._refuse(log, metrics, TOKEN_INVALID, type(exc).__name__, source)
        finally:
            if metrics is not None:
                metrics.auth_seconds.observe(time.perf_counter() - started)
        if not self._session_open(sid):
            # It closed while the app's callbacks waited on I/O; python-socketio's disconnect then found the
            # socket still connecting and did nothing, so accepting it now would register it for good.
            return self._abandoned(log, metrics, identity)
        room = user_room(identity.user_id)
        sockets = self._sockets_in(room)
        if sockets >= state.settings.max_sockets_per_user:
            log.warning("connect_refused", reason="too_many_connections", user_id=identity.user_id, sockets=sockets)
            if metrics is not None:
                metrics.connection_attempt("refused", "too_many_connections")
            raise ConnectionRefusedError(
                "Too many connections", {"code": TOO_MANY_CONNECTIONS, "limit": state.settings.max_sockets_per_user}
            )
        if state.recovery is not None:
            state.recovery.hold(sid, room)  # its live events wait until what it missed is out
        join_room(room)
        recovered = state.recovery is not None and state.recovery.connected(sid, room, auth)
        if not self._session_open(sid):  # it closed while the queue subscribed, or while it recovered
            if state.recovery is not None:
                state.recovery.disconnected(sid)
            return self._abandoned(log, metrics, identity)  # python-socketio then takes it out of its room
        state.connections[sid] = identity
        state.collector.start()  # once per process, now that start-up is over
        if identity.expires_at is not None:
            state.expiry.watch(sid, identity.expires_at)
        if metrics is not None:
            metrics.connection_attempt("accepted")
        log.info("connected", user_id=identity.user_id, recovered=recovered)

    def on_disconnect(self, reason: str | None = None) -> Any:
        sid = _sid()
        if self.server.manager.is_connected(sid, self.namespace):
            # A client's event named "disconnect": a real disconnect runs once the socket is marked as
            # disconnecting. Dropping the record here would let the socket outlive its token's expiry.
            return self._ignore("disconnect", sid)
        state = current_app.extensions["dashboard_ws"]
        identity = state.connections.pop(sid, None)
        if state.recovery is not None:
            state.recovery.disconnected(sid)
        cause = state.disconnect_causes.pop(sid, None) or state.guard.closed_for(self._eio_sid(sid))
        if identity is not None:
            state.expiry.unwatch(sid)
            if state.metrics is not None:
                state.metrics.disconnected(cause or reason)
        logger.info(
            "disconnected",
            sid=sid,
            user_id=identity.user_id if identity else None,
            reason=reason,
        )

    def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return super().trigger_event(event, *args)
        return self._ignore(event, args[0] if args else None)

    def _eio_sid(self, sid: str) -> str | None:
        return self.server.manager.eio_sid_from_sid(sid, self.namespace)

    @staticmethod
    def _abandoned(log: Any, metrics: Any, identity: Any) -> bool:
        log.info("connect_abandoned", user_id=identity.user_id)
        if metrics is not None:
            metrics.connection_attempt("abandoned")
        return False

    def _session_open(self, sid: str) -> bool:
        """python-socketio drops a session's environ when the session closes."""
        return self.server.get_environ(sid, self.namespace) is not None

    def _sockets_in(self, room: str) -> int:
        """This process's sockets in ``room`` (a mapping of sids in python-socketio's manager)."""
        return len(self.server.manager.rooms.get(self.namespace, {}).get(room, ()))

    def _ignore(self, event: str, sid: str | None) -> Any:
        # structlog's first parameter is called "event", so the client's event name needs another field name.
        logger.debug("client_event_ignored", event_name=event, sid=sid, namespace=self.namespace)
        return self.server.not_handled  # not None: python-socketio would then acknowledge the event

    @staticmethod
    def _refuse(log: Any, metrics: Metrics | None, reason: str, detail: str | None, source: str | None) -> NoReturn:
        log.warning("auth_failed", reason=reason, detail=detail, token_source=source)
        if metrics is not None:
            metrics.connection_attempt("refused", reason)
        raise ConnectionRefusedError("Authentication failed", {"code": "AUTH_FAILED", "reason": reason})
