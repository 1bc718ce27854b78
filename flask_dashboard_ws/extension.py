"""``DashboardRealtime``, the Flask extension object, and the per-app state it keeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Flask, current_app, has_app_context
from flask_socketio import SocketIO

from . import emitter, queue
from .auth import Identity
from .cli import dashboard_ws_cli
from .collector import Collector
from .config import ConfigError, Settings, listed_origins, load_settings
from .drain import drain_on_sigterm, drain_sessions
from .envelope import SizeLimit
from .events import EventType
from .expiry import ExpiryWatcher
from .limits import HandshakeGate, SessionGuard
from .log import logger, redact_library_loggers
from .metrics import Metrics
from .namespace import DashboardNamespace
from .probes import Probes
from .queue import DashboardRedisManager
from .recovery import EventLog, RedisEventLog, Recovery
from .rooms import DashboardManager
from .rooms import disconnect_room
from .serving import BACKLOG, DeclineCompression, raise_open_files_limit, serve_eventlet, serve_gevent

EXTENSION_KEY = "dashboard_ws"

# The dashboard:error a socket gets before it is disconnected because its token has expired.
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_EXPIRED_MESSAGE = "Your session has expired; reconnect with a fresh token."

# The dashboard:error code a socket gets from disconnect_user() before it is disconnected.
SESSION_ENDED = "SESSION_ENDED"
SESSION_ENDED_MESSAGE = "Your session has ended; sign in again."


@dataclass
class DashboardState:
    """What one app needs at run time; kept in ``app.extensions["dashboard_ws"]``."""

    settings: Settings
    socketio: SocketIO
    connections: dict[str, Identity] = field(default_factory=dict)
    expiry: ExpiryWatcher = field(init=False)
    collector: Collector = field(init=False)
    guard: SessionGuard = field(init=False)
    gate: HandshakeGate = field(init=False)
    metrics: Metrics | None = field(init=False, default=None)
    recovery: Recovery | None = field(init=False, default=None)  # with DASHBOARD_WS_RECOVERY
    # Why the extension itself is disconnecting a socket (its sid: "token_expired"), for the disconnect metric.
    disconnect_causes: dict[str, str] = field(default_factory=dict)

    @property
    def event_limit(self) -> SizeLimit:
        return SizeLimit(self.settings.max_event_bytes)

    def deliver(self, outgoing: emitter.Outgoing) -> None:
        """To the user's room, through the message queue when there is one (``QueueUnavailable``)."""
        envelope = outgoing.envelope
        self.socketio.emit(envelope["type"], envelope, to=outgoing.room, namespace=self.settings.namespace)

    def end_user(self, outgoing: emitter.Outgoing) -> None:
        """The event, then a disconnect of the room's sockets: here even if the queue failed, elsewhere through it."""
        try:
            self.deliver(outgoing)
        finally:
            manager = self.socketio.server.manager
            if hasattr(manager, "end_room"):
                manager.end_room(outgoing.room, self.settings.namespace)
            else:  # an app's own manager: this process only
                disconnect_room(manager, outgoing.room, self.settings.namespace)

    def not_ready(self) -> list[str]:
        """Why readiness answers 503: nothing; the process is draining; the Redis listener has been down too long."""
        reasons = ["draining"] if self.guard.draining else []
        manager = self.socketio.server.manager
        down_for = manager.listener_down_for() if isinstance(manager, DashboardRedisManager) else 0.0
        if down_for > self.settings.ready_queue_outage:
            reasons.append("queue_listener_down")
        return reasons

    def __post_init__(self) -> None:
        if self.settings.metrics_path is not None:
            self.metrics = Metrics(lambda: self.connections)
        self.expiry = ExpiryWatcher(self.end_expired, self.socketio.start_background_task, self.socketio.sleep)
        self.collector = Collector(
            self.settings.gc_freeze_interval_for(self.socketio.async_mode),
            self.settings.gc_reclaim_interval,
            self.socketio.start_background_task,
            self.socketio.sleep,
            lambda: len(self.connections),
            on_reclaim=self.metrics.gc_pause_seconds.observe if self.metrics is not None else None,
        )
        # Every engine.io session that ends leaves frozen garbage, authenticated or not.
        on_refused = partial(self.metrics.connection_attempt, "refused") if self.metrics is not None else None
        self.guard = SessionGuard(self.socketio.server, self.settings, on_session_end=self.collector.disconnected,
                                  on_refused=on_refused)

    def cookie_origins(self) -> list[str]:
        """Origins besides the app's own from which a cookie may authenticate; ``'*'`` allows none."""
        return listed_origins(self.socketio.server.eio.cors_allowed_origins)

    def end_expired(self, sid: str, expires_at: float) -> None:
        """Tell the socket why, then disconnect it; a socket that reconnected since has another sid."""
        identity = self.connections.get(sid)
        if identity is None or identity.expires_at != expires_at:
            return
        payload = {"code": TOKEN_EXPIRED, "message": TOKEN_EXPIRED_MESSAGE}
        envelope = emitter.prepare(EventType.ERROR, identity.user_id, payload, self.event_limit).envelope
        namespace = self.settings.namespace
        # Straight to this process's socket: through a message queue the disconnect could overtake it.
        self.socketio.server.emit(envelope["type"], envelope, to=sid, namespace=namespace, ignore_queue=True)
        logger.info("token_expired", sid=sid, user_id=identity.user_id, event_id=envelope["eventId"])
        self.disconnect_causes[sid] = "token_expired"
        self.socketio.server.disconnect(sid, namespace=namespace, ignore_queue=True)


class DashboardRealtime:
    """Real-time dashboard events for a Flask app: ``/dashboard`` namespace, JWT auth, one room per user.

    Use ``DashboardRealtime(app)``, or ``DashboardRealtime()`` and ``init_app(app)`` per app. Pass ``socketio``
    to share the app's own ``flask_socketio.SocketIO``; otherwise one is created from ``DASHBOARD_WS_*``.
    """

    def __init__(self, app: Flask | None = None, socketio: SocketIO | None = None) -> None:
        self._socketio = socketio
        self._last_socketio = socketio
        if app is not None:
            self.init_app(app, socketio)

    def init_app(self, app: Flask, socketio: SocketIO | None = None) -> None:
        """Check ``app``'s ``DASHBOARD_WS_*`` keys and set the app up; call ``JWTManager(app)`` first.

        Raises :exc:`ConfigError` for a bad value. ``socketio`` is the app's own ``SocketIO``, if it has one.
        """
        if "flask-jwt-extended" not in app.extensions:
            raise ConfigError(
                "DashboardRealtime needs flask-jwt-extended: call JWTManager(app) (or jwt.init_app(app)) "
                "before DashboardRealtime.init_app(app)"
            )
        settings = load_settings(app)
        if settings.backend == "apigateway":
            self._init_apigateway(app, settings, socketio or self._socketio)
            return
        socketio = _socketio_for(app, socketio or self._socketio, settings)
        redact_library_loggers(socketio.server)  # no token in python-socketio's or python-engineio's own lines
        socketio.on_namespace(DashboardNamespace(settings.namespace))
        state = DashboardState(settings=settings, socketio=socketio)
        state.guard.install()
        if settings.recovery:
            log = _event_log(socketio.server.manager, settings)
            state.recovery = Recovery(socketio.server, settings.namespace, log)
        manager = socketio.server.manager
        if state.metrics is not None and isinstance(manager, DashboardRedisManager):
            manager.metrics = state.metrics
            state.metrics.queue_unreachable.set_function(manager.unreachable_for)
        path = _socketio_path(socketio)
        state.gate = HandshakeGate(app.wsgi_app, path, state.guard)
        app.wsgi_app = state.gate  # type: ignore[method-assign]
        if not settings.compression:
            app.wsgi_app = DeclineCompression(app.wsgi_app, path)  # type: ignore[method-assign]
        _install_probes(app, settings, state.not_ready, state.metrics)
        if settings.drain_on_sigterm:
            drain_on_sigterm(state, app.app_context)
        app.extensions[EXTENSION_KEY] = state
        app.teardown_request(lambda error: emitter.flush_pending(state, error))
        app.cli.add_command(dashboard_ws_cli)  # flask dashboard-ws emit
        self._last_socketio = socketio

    @staticmethod
    def _init_apigateway(app: Flask, settings: Settings, socketio: SocketIO | None) -> None:
        """No Socket.IO server: API Gateway holds the sockets, and emits post to them (``apigateway``)."""
        if socketio is not None:
            raise ConfigError("DASHBOARD_WS_BACKEND='apigateway' serves no Socket.IO: do not pass a SocketIO")
        from .apigateway.backend import ApiGatewayState  # boto3 is an extra

        state = ApiGatewayState(settings)
        _install_probes(app, settings, lambda: [], state.metrics)
        app.extensions[EXTENSION_KEY] = state
        app.teardown_request(lambda error: emitter.flush_pending(state, error))
        app.cli.add_command(dashboard_ws_cli)

    @property
    def socketio(self) -> SocketIO:
        """The ``SocketIO`` of the current app (or, outside an app context, of the app set up last)."""
        if has_app_context() and EXTENSION_KEY in current_app.extensions:
            state = current_app.extensions[EXTENSION_KEY]
            if not isinstance(state, DashboardState):
                raise RuntimeError("this app's DASHBOARD_WS_BACKEND is 'apigateway': it has no SocketIO")
            return state.socketio
        if self._last_socketio is None:
            raise RuntimeError("DashboardRealtime has no SocketIO yet: call init_app(app) first")
        return self._last_socketio

    def emit_to_user(
        self, user_id: str | int, event_type: EventType | str, payload: Any, *, defer: bool | None = None
    ) -> dict[str, Any]:
        """Validate ``payload`` for ``event_type`` and send it to every socket of ``user_id``.

        Returns the envelope. Inside a request the send waits for the request to succeed unless
        ``defer=False`` (or ``DASHBOARD_WS_DEFER_IN_REQUEST`` is false). Raises
        ``marshmallow.ValidationError`` for a bad payload and ``UnknownEventType`` for an unknown type;
        then nothing is sent. A send at once raises ``QueueUnavailable`` when the message queue does not
        take the event (a deferred send logs ``event_dropped`` instead: its view has already returned).
        """
        return emitter.emit(_state(), event_type, user_id, payload, defer)

    def emit_summary_updated(self, user_id: str | int, summary: Any, *, defer: bool | None = None) -> dict[str, Any]:
        """Send ``dashboard:summaryUpdated``; as :meth:`emit_to_user`."""
        return self.emit_to_user(user_id, EventType.SUMMARY_UPDATED, summary, defer=defer)

    def emit_recent_moc_added(self, user_id: str | int, moc: Any, *, defer: bool | None = None) -> dict[str, Any]:
        """Send ``dashboard:recentMocAdded``; as :meth:`emit_to_user`."""
        return self.emit_to_user(user_id, EventType.RECENT_MOC_ADDED, moc, defer=defer)

    def emit_partial_parts_updated(
        self, user_id: str | int, mocs: Any, *, defer: bool | None = None
    ) -> dict[str, Any]:
        """Send ``dashboard:partialPartsUpdated`` with the user's full list; as :meth:`emit_to_user`."""
        return self.emit_to_user(user_id, EventType.PARTIAL_PARTS_UPDATED, mocs, defer=defer)

    def emit_theme_breakdown_updated(
        self, user_id: str | int, themes: Any, *, defer: bool | None = None
    ) -> dict[str, Any]:
        """Send ``dashboard:themeBreakdownUpdated``; as :meth:`emit_to_user`."""
        return self.emit_to_user(user_id, EventType.THEME_BREAKDOWN_UPDATED, themes, defer=defer)

    def emit_error(self, user_id: str | int, code: str, message: str, *, defer: bool | None = None) -> dict[str, Any]:
        """Send ``dashboard:error`` with ``code`` and ``message``; as :meth:`emit_to_user`."""
        return self.emit_to_user(user_id, EventType.ERROR, {"code": code, "message": message}, defer=defer)

    def disconnect_user(self, user_id: str | int, reason: str = SESSION_ENDED_MESSAGE) -> dict[str, Any]:
        """End every socket of ``user_id`` now, in every process: at sign-out, or when a token is revoked.

        Each socket first gets ``dashboard:error`` with code ``SESSION_ENDED`` and ``reason`` as its message,
        then a Socket.IO disconnect, after which the official client does not reconnect by itself. Not
        deferred, unlike emits: a revocation must not wait for the request. Returns the error's envelope;
        raises ``QueueUnavailable`` when the message queue does not take it (the local sockets have then
        received it and are disconnected already).
        """
        state = _state()
        payload = {"code": SESSION_ENDED, "message": reason}
        outgoing = emitter.prepare(EventType.ERROR, user_id, payload, state.event_limit)
        emitter.end_user(state, outgoing)
        logger.info("user_disconnected", user_id=str(user_id), event_id=outgoing.envelope["eventId"])
        return outgoing.envelope

    def drain(self, timeout: float | None = None) -> dict[str, Any]:
        """Take this process out of service: readiness 503, new handshakes refused (503), open sessions closed.

        The sessions close at the engine.io level in batches spread over ``timeout`` seconds
        (``DASHBOARD_WS_DRAIN_TIMEOUT``), so the official client reconnects by itself, with its backoff, to
        whichever process the load balancer picks. Returns within the budget, with what it did.
        """
        state = _state()
        if not isinstance(state, DashboardState):
            raise RuntimeError("this app's DASHBOARD_WS_BACKEND is 'apigateway': API Gateway serves its sockets")
        return drain_sessions(state, state.settings.drain_timeout if timeout is None else timeout)

    def run(self, app: Flask, host: str = "127.0.0.1", port: int = 5000, *, backlog: int = BACKLOG,
            **kwargs: Any) -> None:
        """Serve ``app`` for many sockets: ``socketio.run`` with a deep listen backlog and no connection cap.

        Under eventlet and gevent the listen backlog is ``backlog`` (``socketio.run`` leaves eventlet's 50,
        which overflows when thousands of clients reconnect at once), eventlet serves any number of
        connections (its ``max_size`` is 1,024 by default) and the open-files limit is raised to the hard
        limit. Under gevent-websocket, a handshake that the process refuses (while it drains, or past the
        handshake rates) is not upgraded first, so that it gets its HTTP 503 or 429. ``kwargs`` go to the server
        (``eventlet.wsgi.server`` or gevent's ``WSGIServer``); under threading, everything goes to ``socketio.run``.
        """
        state = app.extensions[EXTENSION_KEY]
        if not isinstance(state, DashboardState):
            raise RuntimeError("this app's DASHBOARD_WS_BACKEND is 'apigateway': API Gateway serves its sockets")
        socketio = state.socketio
        mode = socketio.async_mode
        if mode == "threading":
            socketio.run(app, host=host, port=port, **kwargs)
            return
        raise_open_files_limit()
        serve = serve_eventlet if mode == "eventlet" else serve_gevent
        serve(app, host, port, backlog, **kwargs)


def _event_log(manager: Any, settings: Settings) -> EventLog | RedisEventLog:
    """Where connection state recovery keeps each user's recent events: Redis with a Redis queue, else here."""
    if isinstance(manager, DashboardRedisManager):
        return RedisEventLog(manager, settings.recovery_window, settings.recovery_max_events)
    if isinstance(manager, DashboardManager):
        return EventLog(settings.recovery_window, settings.recovery_max_events)
    raise ConfigError(
        "DASHBOARD_WS_RECOVERY needs the extension's own client manager (no queue, or a Redis queue), got "
        f"{type(manager).__name__}"
    )


def _socketio_for(app: Flask, socketio: SocketIO | None, settings: Settings) -> SocketIO:
    """The app's own ``SocketIO`` when it gave one (set up with it if needed), else a new one."""
    kwargs = settings.socketio_kwargs()
    if socketio is None:
        kwargs.update(queue.queue_options(settings.message_queue, settings.channel, settings, kwargs))
        return SocketIO(app, **kwargs)
    if socketio.server is None:
        # The app's own constructor arguments win over the DASHBOARD_WS_* defaults.
        kwargs = {key: value for key, value in kwargs.items() if key not in socketio.server_options}
        channel = socketio.server_options.get("channel", settings.channel)
        options = {**socketio.server_options, **kwargs}
        kwargs.update(queue.queue_options(options.get("message_queue"), channel, settings, options))
        socketio.init_app(app, **kwargs)
    else:
        # Set up by the app already: its plain RedisManager, if it has one, becomes one that reports outages.
        queue.adopt(socketio, settings)
    return socketio


def _socketio_path(socketio: SocketIO) -> str:
    """The path Flask-SocketIO serves Socket.IO on (``/socket.io`` unless the app chose another)."""
    middleware = getattr(socketio, "sockio_mw", None)
    return getattr(middleware, "engineio_path", "socket.io")


def _install_probes(app: Flask, settings: Settings, not_ready: Callable[[], list[str]], metrics: Metrics | None) -> None:
    """Liveness, readiness and metrics on their paths, in front of the app, when any is configured."""
    if settings.health_path or settings.ready_path or settings.metrics_path:
        app.wsgi_app = Probes(  # type: ignore[method-assign]
            app.wsgi_app, settings.health_path, settings.ready_path, settings.metrics_path, not_ready,
            metrics.render if metrics is not None else None,
        )


def _state() -> DashboardState:
    if not has_app_context():
        raise RuntimeError("DashboardRealtime emits need an app context: use it in a view or in app.app_context()")
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("DashboardRealtime.init_app(app) was not called for this app") from None
