"""``DashboardRealtime``, the Flask extension object, and the per-app state it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from flask_socketio import SocketIO

from . import emitter, queue
from .auth import Identity
from .cli import dashboard_ws_cli
from .collector import Collector
from .config import ConfigError, Settings, load_settings
from .events import EventType
from .expiry import ExpiryWatcher
from .log import logger
from .namespace import DashboardNamespace

EXTENSION_KEY = "dashboard_ws"

TOKEN_EXPIRED_MESSAGE = "Your session has expired; reconnect with a fresh token."


@dataclass
class DashboardState:
    """What one app needs at run time; kept in ``app.extensions["dashboard_ws"]``."""

    settings: Settings
    socketio: SocketIO
    connections: dict[str, Identity] = field(default_factory=dict)
    expiry: ExpiryWatcher = field(init=False)
    collector: Collector = field(init=False)

    def __post_init__(self) -> None:
        self.expiry = ExpiryWatcher(self.end_expired, self.socketio.start_background_task, self.socketio.sleep)
        self.collector = Collector(
            self.settings.gc_freeze_interval,
            self.settings.gc_reclaim_interval,
            self.socketio.start_background_task,
            self.socketio.sleep,
            lambda: len(self.connections),
        )

    def cookie_origins(self) -> list[str]:
        """Origins besides the app's own from which a cookie may authenticate; ``'*'`` allows none."""
        origins = self.socketio.server.eio.cors_allowed_origins
        if origins is None or origins == "*":
            return []
        return [origins] if isinstance(origins, str) else list(origins)

    def end_expired(self, sid: str, expires_at: float) -> None:
        """Tell the socket why, then disconnect it; a socket that reconnected since has another sid."""
        identity = self.connections.get(sid)
        if identity is None or identity.expires_at != expires_at:
            return
        payload = {"code": "TOKEN_EXPIRED", "message": TOKEN_EXPIRED_MESSAGE}
        envelope = emitter.prepare(EventType.ERROR, identity.user_id, payload).envelope
        namespace = self.settings.namespace
        # Straight to this process's socket: through a message queue the disconnect could overtake it.
        self.socketio.server.emit(envelope["type"], envelope, to=sid, namespace=namespace, ignore_queue=True)
        logger.info("token_expired", sid=sid, user_id=identity.user_id, event_id=envelope["eventId"])
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
        if "flask-jwt-extended" not in app.extensions:
            raise ConfigError(
                "DashboardRealtime needs flask-jwt-extended: call JWTManager(app) (or jwt.init_app(app)) "
                "before DashboardRealtime.init_app(app)"
            )
        settings = load_settings(app)
        socketio = _socketio_for(app, socketio or self._socketio, settings)
        socketio.on_namespace(DashboardNamespace(settings.namespace))
        state = DashboardState(settings=settings, socketio=socketio)
        app.extensions[EXTENSION_KEY] = state
        app.teardown_request(lambda error: emitter.flush_pending(state, error))
        app.cli.add_command(dashboard_ws_cli)  # flask dashboard-ws emit
        self._last_socketio = socketio

    @property
    def socketio(self) -> SocketIO:
        """The ``SocketIO`` of the current app (or, outside an app context, of the app set up last)."""
        if has_app_context() and EXTENSION_KEY in current_app.extensions:
            return current_app.extensions[EXTENSION_KEY].socketio
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
        return self.emit_to_user(user_id, EventType.SUMMARY_UPDATED, summary, defer=defer)

    def emit_recent_moc_added(self, user_id: str | int, moc: Any, *, defer: bool | None = None) -> dict[str, Any]:
        return self.emit_to_user(user_id, EventType.RECENT_MOC_ADDED, moc, defer=defer)

    def emit_partial_parts_updated(
        self, user_id: str | int, mocs: Any, *, defer: bool | None = None
    ) -> dict[str, Any]:
        return self.emit_to_user(user_id, EventType.PARTIAL_PARTS_UPDATED, mocs, defer=defer)

    def emit_theme_breakdown_updated(
        self, user_id: str | int, themes: Any, *, defer: bool | None = None
    ) -> dict[str, Any]:
        return self.emit_to_user(user_id, EventType.THEME_BREAKDOWN_UPDATED, themes, defer=defer)

    def emit_error(self, user_id: str | int, code: str, message: str, *, defer: bool | None = None) -> dict[str, Any]:
        return self.emit_to_user(user_id, EventType.ERROR, {"code": code, "message": message}, defer=defer)


def _socketio_for(app: Flask, socketio: SocketIO | None, settings: Settings) -> SocketIO:
    """The app's own ``SocketIO`` when it gave one (set up with it if needed), else a new one."""
    kwargs = settings.socketio_kwargs()
    if socketio is None:
        kwargs.update(queue.queue_options(settings.message_queue, settings.channel, settings.queue_timeout, kwargs))
        return SocketIO(app, **kwargs)
    if socketio.server is None:
        # The app's own constructor arguments win over the DASHBOARD_WS_* defaults.
        kwargs = {key: value for key, value in kwargs.items() if key not in socketio.server_options}
        channel = socketio.server_options.get("channel", settings.channel)
        options = {**socketio.server_options, **kwargs}
        kwargs.update(queue.queue_options(options.get("message_queue"), channel, settings.queue_timeout, options))
        socketio.init_app(app, **kwargs)
    else:
        # Set up by the app already: its plain RedisManager, if it has one, becomes one that reports outages.
        queue.adopt(socketio, settings.queue_timeout)
    return socketio


def _state() -> DashboardState:
    if not has_app_context():
        raise RuntimeError("DashboardRealtime emits need an app context: use it in a view or in app.app_context()")
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("DashboardRealtime.init_app(app) was not called for this app") from None
