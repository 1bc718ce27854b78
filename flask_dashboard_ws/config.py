"""The ``DASHBOARD_WS_*`` configuration keys: their defaults and their checks.

Every key is checked once, in ``init_app``, so a typo fails at start-up with the key's name instead of
surfacing as a confusing error on the first connection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

ASYNC_MODES = ("threading", "eventlet", "gevent", "gevent_uwsgi")

# Where an emit to a user is published on a Redis queue: that user's channel, or the one channel of all.
QUEUE_CHANNELS = ("user", "shared")

# Flask-SocketIO hands these URLs to python-socketio's RedisManager; any other queue is left to Flask-SocketIO.
# The "+cluster" ones name a node of a Redis Cluster, whose sharded pub/sub the manager then uses.
REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")

DEFAULTS: dict[str, Any] = {
    "DASHBOARD_WS_NAMESPACE": "/dashboard",
    "DASHBOARD_WS_CORS_ALLOWED_ORIGINS": None,
    "DASHBOARD_WS_MESSAGE_QUEUE": None,
    "DASHBOARD_WS_CHANNEL": "flask-socketio",
    "DASHBOARD_WS_QUEUE_TIMEOUT": 1.0,
    "DASHBOARD_WS_QUEUE_CHANNELS": "user",
    "DASHBOARD_WS_QUEUE_HEALTH_INTERVAL": 5.0,
    "DASHBOARD_WS_ASYNC_MODE": None,
    "DASHBOARD_WS_DEFER_IN_REQUEST": True,
    "DASHBOARD_WS_SOCKETIO_OPTIONS": {},
    "DASHBOARD_WS_GC_FREEZE_INTERVAL": "auto",
    "DASHBOARD_WS_GC_RECLAIM_INTERVAL": 3600.0,
    "DASHBOARD_WS_COMPRESSION": False,
    "DASHBOARD_WS_LEAN_SOCKETS": True,
    "DASHBOARD_WS_AUTH_TIMEOUT": 10.0,
    "DASHBOARD_WS_MAX_CLIENT_EVENTS": 10,
    "DASHBOARD_WS_MAX_INBOUND_BYTES": 16 * 1024,
    "DASHBOARD_WS_MAX_EVENT_BYTES": 64 * 1024,
    "DASHBOARD_WS_MAX_OUTGOING_BYTES": 1024 * 1024,
    "DASHBOARD_WS_MAX_SOCKETS_PER_USER": 20,
    "DASHBOARD_WS_MAX_PENDING_SESSIONS": 1000,
    "DASHBOARD_WS_HANDSHAKE_RATE": 200.0,
    "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 30.0,
    "DASHBOARD_WS_TRUSTED_PROXIES": 0,
    "DASHBOARD_WS_BACKEND": "socketio",
    "DASHBOARD_WS_METRICS_PATH": None,
    "DASHBOARD_WS_HEALTH_PATH": None,
    "DASHBOARD_WS_READY_PATH": None,
    "DASHBOARD_WS_READY_QUEUE_OUTAGE": 10.0,
    "DASHBOARD_WS_DRAIN_TIMEOUT": 25.0,
    "DASHBOARD_WS_DRAIN_ON_SIGTERM": False,
    "DASHBOARD_WS_RECOVERY": False,
    "DASHBOARD_WS_RECOVERY_WINDOW": 120.0,
    "DASHBOARD_WS_RECOVERY_MAX_EVENTS": 100,
}

# The keys of the "apigateway" backend (AWS Lambda behind an API Gateway WebSocket API), read only with it.
APIGATEWAY_DEFAULTS: dict[str, Any] = {
    "DASHBOARD_WS_APIGATEWAY_ENDPOINT": None,
    "DASHBOARD_WS_APIGATEWAY_TABLE": None,
    "DASHBOARD_WS_APIGATEWAY_USER_INDEX": "userId",
    "DASHBOARD_WS_APIGATEWAY_REGION": None,
    "DASHBOARD_WS_APIGATEWAY_TIMEOUT": 2.0,
    "DASHBOARD_WS_APIGATEWAY_CONCURRENCY": 10,
    "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": 300.0,
    "DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 120.0,
    "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 60.0,
    "DASHBOARD_WS_APIGATEWAY_MAX_AGE": 6600.0,
}
BACKENDS = ("socketio", "apigateway")

# API Gateway's quotas that the settings must fit (aws-apigateway.md; AWS's "Amazon API Gateway quotas").
APIGATEWAY_IDLE_TIMEOUT = 600.0
APIGATEWAY_MAX_DURATION = 7200.0
# Node's timers overflow above 2**31 - 1 ms, and socket.io-client waits pingInterval + pingTimeout on one.
_NODE_TIMER_MAX = (2**31 - 1) / 1000

# The freeze interval that "auto" means in the green-thread modes, where one process holds thousands of
# sockets (BENCHMARKS.md); in threading mode (Werkzeug's development server, test clients) it means off.
AUTO_GC_FREEZE_INTERVAL = 0.2
GREEN_ASYNC_MODES = ("eventlet", "gevent", "gevent_uwsgi")

_URL_WITH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Options that the extension sets itself from its own keys; passing them again would be ambiguous.
_OWNED_SOCKETIO_OPTIONS = {
    "async_mode": "DASHBOARD_WS_ASYNC_MODE",
    "message_queue": "DASHBOARD_WS_MESSAGE_QUEUE",
    "cors_allowed_origins": "DASHBOARD_WS_CORS_ALLOWED_ORIGINS",
    "channel": "DASHBOARD_WS_CHANNEL",
    "max_http_buffer_size": "DASHBOARD_WS_MAX_INBOUND_BYTES",
}


class ConfigError(ValueError):
    """A ``DASHBOARD_WS_*`` value (or the app's set-up) cannot work; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """The checked configuration of one app."""

    namespace: str
    cors_allowed_origins: str | list[str] | None
    message_queue: str | None
    async_mode: str | None
    defer_in_request: bool
    socketio_options: dict[str, Any]
    channel: str = DEFAULTS["DASHBOARD_WS_CHANNEL"]
    queue_timeout: float = DEFAULTS["DASHBOARD_WS_QUEUE_TIMEOUT"]
    queue_channels: str = DEFAULTS["DASHBOARD_WS_QUEUE_CHANNELS"]
    queue_health_interval: float = DEFAULTS["DASHBOARD_WS_QUEUE_HEALTH_INTERVAL"]
    gc_freeze_interval: float | str | None = DEFAULTS["DASHBOARD_WS_GC_FREEZE_INTERVAL"]
    gc_reclaim_interval: float = DEFAULTS["DASHBOARD_WS_GC_RECLAIM_INTERVAL"]
    compression: bool = DEFAULTS["DASHBOARD_WS_COMPRESSION"]
    lean_sockets: bool = DEFAULTS["DASHBOARD_WS_LEAN_SOCKETS"]
    auth_timeout: float = DEFAULTS["DASHBOARD_WS_AUTH_TIMEOUT"]
    max_client_events: int = DEFAULTS["DASHBOARD_WS_MAX_CLIENT_EVENTS"]
    max_inbound_bytes: int = DEFAULTS["DASHBOARD_WS_MAX_INBOUND_BYTES"]
    max_event_bytes: int = DEFAULTS["DASHBOARD_WS_MAX_EVENT_BYTES"]
    max_outgoing_bytes: int = DEFAULTS["DASHBOARD_WS_MAX_OUTGOING_BYTES"]
    max_sockets_per_user: int = DEFAULTS["DASHBOARD_WS_MAX_SOCKETS_PER_USER"]
    max_pending_sessions: int = DEFAULTS["DASHBOARD_WS_MAX_PENDING_SESSIONS"]
    handshake_rate: float = DEFAULTS["DASHBOARD_WS_HANDSHAKE_RATE"]
    handshake_rate_per_address: float = DEFAULTS["DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS"]
    trusted_proxies: int = DEFAULTS["DASHBOARD_WS_TRUSTED_PROXIES"]
    backend: str = DEFAULTS["DASHBOARD_WS_BACKEND"]
    apigateway: ApiGatewaySettings | None = None
    metrics_path: str | None = None
    health_path: str | None = None
    ready_path: str | None = None
    ready_queue_outage: float = DEFAULTS["DASHBOARD_WS_READY_QUEUE_OUTAGE"]
    drain_timeout: float = DEFAULTS["DASHBOARD_WS_DRAIN_TIMEOUT"]
    drain_on_sigterm: bool = DEFAULTS["DASHBOARD_WS_DRAIN_ON_SIGTERM"]
    recovery: bool = DEFAULTS["DASHBOARD_WS_RECOVERY"]
    recovery_window: float = DEFAULTS["DASHBOARD_WS_RECOVERY_WINDOW"]
    recovery_max_events: int = DEFAULTS["DASHBOARD_WS_RECOVERY_MAX_EVENTS"]

    def gc_freeze_interval_for(self, async_mode: str) -> float | None:
        """The freeze interval in force under ``async_mode``, with ``"auto"`` resolved."""
        if self.gc_freeze_interval == "auto":
            return AUTO_GC_FREEZE_INTERVAL if async_mode in GREEN_ASYNC_MODES else None
        return self.gc_freeze_interval  # type: ignore[return-value]

    def socketio_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the ``SocketIO`` that the extension creates.

        ``namespaces`` lists only the extension's own, so python-socketio accepts no connection on ``/`` (its
        default) or any other namespace without handlers: such sessions would need no token at all.
        """
        kwargs = dict(self.socketio_options)
        kwargs.setdefault("namespaces", [self.namespace])
        kwargs["max_http_buffer_size"] = self.max_inbound_bytes
        kwargs["cors_allowed_origins"] = self.cors_allowed_origins
        if self.message_queue is not None:
            kwargs["message_queue"] = self.message_queue
        if self.async_mode is not None:
            kwargs["async_mode"] = self.async_mode
        return kwargs


@dataclass(frozen=True)
class ApiGatewaySettings:
    """The checked ``DASHBOARD_WS_APIGATEWAY_*`` keys (seconds for the times)."""

    endpoint: str
    table: str
    user_index: str = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_USER_INDEX"]
    region: str | None = None
    timeout: float = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_TIMEOUT"]
    concurrency: int = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_CONCURRENCY"]
    ping_interval: float = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_PING_INTERVAL"]
    ping_timeout: float = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT"]
    sweep_interval: float = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL"]
    max_age: float = APIGATEWAY_DEFAULTS["DASHBOARD_WS_APIGATEWAY_MAX_AGE"]


def load_settings(app: Flask) -> Settings:
    """Set the defaults on ``app.config`` and return the checked values."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value.copy() if isinstance(value, dict) else value)
    config = app.config
    return Settings(
        namespace=_namespace(config["DASHBOARD_WS_NAMESPACE"]),
        cors_allowed_origins=_origins(config["DASHBOARD_WS_CORS_ALLOWED_ORIGINS"]),
        message_queue=_message_queue(config["DASHBOARD_WS_MESSAGE_QUEUE"]),
        async_mode=_async_mode(config["DASHBOARD_WS_ASYNC_MODE"]),
        defer_in_request=_boolean("DASHBOARD_WS_DEFER_IN_REQUEST", config["DASHBOARD_WS_DEFER_IN_REQUEST"]),
        socketio_options=_socketio_options(config["DASHBOARD_WS_SOCKETIO_OPTIONS"]),
        channel=_channel(config["DASHBOARD_WS_CHANNEL"], config["DASHBOARD_WS_MESSAGE_QUEUE"]),
        queue_timeout=_seconds("DASHBOARD_WS_QUEUE_TIMEOUT", config["DASHBOARD_WS_QUEUE_TIMEOUT"]),
        queue_channels=_choice("DASHBOARD_WS_QUEUE_CHANNELS", config["DASHBOARD_WS_QUEUE_CHANNELS"], QUEUE_CHANNELS),
        queue_health_interval=_seconds(
            "DASHBOARD_WS_QUEUE_HEALTH_INTERVAL", config["DASHBOARD_WS_QUEUE_HEALTH_INTERVAL"]
        ),
        **_gc_intervals(config["DASHBOARD_WS_GC_FREEZE_INTERVAL"], config["DASHBOARD_WS_GC_RECLAIM_INTERVAL"]),
        compression=_boolean("DASHBOARD_WS_COMPRESSION", config["DASHBOARD_WS_COMPRESSION"]),
        lean_sockets=_boolean("DASHBOARD_WS_LEAN_SOCKETS", config["DASHBOARD_WS_LEAN_SOCKETS"]),
        auth_timeout=_seconds("DASHBOARD_WS_AUTH_TIMEOUT", config["DASHBOARD_WS_AUTH_TIMEOUT"]),
        max_client_events=_count("DASHBOARD_WS_MAX_CLIENT_EVENTS", config["DASHBOARD_WS_MAX_CLIENT_EVENTS"], 0),
        max_inbound_bytes=_count("DASHBOARD_WS_MAX_INBOUND_BYTES", config["DASHBOARD_WS_MAX_INBOUND_BYTES"], 1024),
        max_event_bytes=_count("DASHBOARD_WS_MAX_EVENT_BYTES", config["DASHBOARD_WS_MAX_EVENT_BYTES"], 1024),
        max_outgoing_bytes=_count("DASHBOARD_WS_MAX_OUTGOING_BYTES", config["DASHBOARD_WS_MAX_OUTGOING_BYTES"], 1024),
        max_sockets_per_user=_count("DASHBOARD_WS_MAX_SOCKETS_PER_USER", config["DASHBOARD_WS_MAX_SOCKETS_PER_USER"], 1),
        max_pending_sessions=_count("DASHBOARD_WS_MAX_PENDING_SESSIONS", config["DASHBOARD_WS_MAX_PENDING_SESSIONS"], 1),
        handshake_rate=_rate("DASHBOARD_WS_HANDSHAKE_RATE", config["DASHBOARD_WS_HANDSHAKE_RATE"]),
        handshake_rate_per_address=_rate(
            "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS", config["DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS"]
        ),
        trusted_proxies=_count("DASHBOARD_WS_TRUSTED_PROXIES", config["DASHBOARD_WS_TRUSTED_PROXIES"], 0),
        **_backend(config),
        **_operations(config),
        **_recovery(config),
    )


def _recovery(config: dict[str, Any]) -> dict[str, Any]:
    """Connection state recovery: its log lives in the process, or in Redis, on users' channels."""
    recovery = _boolean("DASHBOARD_WS_RECOVERY", config["DASHBOARD_WS_RECOVERY"])
    if recovery and config["DASHBOARD_WS_BACKEND"] != "socketio":
        raise ConfigError("DASHBOARD_WS_RECOVERY needs DASHBOARD_WS_BACKEND = 'socketio': API Gateway has no replay")
    queue = config["DASHBOARD_WS_MESSAGE_QUEUE"]
    if recovery and queue is not None and urlsplit(str(queue)).scheme not in REDIS_SCHEMES:
        raise ConfigError(
            "DASHBOARD_WS_RECOVERY keeps each user's recent events in this process, or in Redis with a Redis queue "
            f"(redis://, rediss://, or a cluster's): it cannot with DASHBOARD_WS_MESSAGE_QUEUE = {queue!r}"
        )
    if recovery and queue is not None and config["DASHBOARD_WS_QUEUE_CHANNELS"] != "user":
        raise ConfigError("DASHBOARD_WS_RECOVERY with a Redis queue needs DASHBOARD_WS_QUEUE_CHANNELS = 'user'")
    return {
        "recovery": recovery,
        "recovery_window": _seconds("DASHBOARD_WS_RECOVERY_WINDOW", config["DASHBOARD_WS_RECOVERY_WINDOW"]),
        "recovery_max_events": _count(
            "DASHBOARD_WS_RECOVERY_MAX_EVENTS", config["DASHBOARD_WS_RECOVERY_MAX_EVENTS"], 1
        ),
    }


def _operations(config: dict[str, Any]) -> dict[str, Any]:
    """The paths a process answers for its operators (each off unless set), and readiness's queue grace."""
    paths = {
        field: _path(key, config[key])
        for field, key in (
            ("metrics_path", "DASHBOARD_WS_METRICS_PATH"),
            ("health_path", "DASHBOARD_WS_HEALTH_PATH"),
            ("ready_path", "DASHBOARD_WS_READY_PATH"),
        )
    }
    taken = [path for path in paths.values() if path is not None]
    if len(taken) != len(set(taken)):
        raise ConfigError(
            "DASHBOARD_WS_METRICS_PATH, DASHBOARD_WS_HEALTH_PATH and DASHBOARD_WS_READY_PATH must differ, "
            f"got {taken}"
        )
    outage = _seconds("DASHBOARD_WS_READY_QUEUE_OUTAGE", config["DASHBOARD_WS_READY_QUEUE_OUTAGE"])
    drain_timeout = _seconds("DASHBOARD_WS_DRAIN_TIMEOUT", config["DASHBOARD_WS_DRAIN_TIMEOUT"])
    drain_on_sigterm = _boolean("DASHBOARD_WS_DRAIN_ON_SIGTERM", config["DASHBOARD_WS_DRAIN_ON_SIGTERM"])
    return {**paths, "ready_queue_outage": outage, "drain_timeout": drain_timeout, "drain_on_sigterm": drain_on_sigterm}


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _path(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value) or "?" in value:
        raise ConfigError(f"{key} must be None (off) or a path such as '/metrics', got {value!r}")
    return value


def _backend(config: dict[str, Any]) -> dict[str, Any]:
    backend = _choice("DASHBOARD_WS_BACKEND", config["DASHBOARD_WS_BACKEND"], BACKENDS)
    if backend == "socketio":
        return {"backend": backend}
    if config["DASHBOARD_WS_MESSAGE_QUEUE"] is not None:
        raise ConfigError(
            "DASHBOARD_WS_MESSAGE_QUEUE must be None with DASHBOARD_WS_BACKEND='apigateway': "
            "API Gateway holds the sockets and every process posts to them directly"
        )
    return {"backend": backend, "apigateway": _apigateway(config)}


def _apigateway(config: dict[str, Any]) -> ApiGatewaySettings:
    """Set the defaults of the ``DASHBOARD_WS_APIGATEWAY_*`` keys; check them, and how they fit API Gateway's quotas."""
    values = {key: config.setdefault(key, default) for key, default in APIGATEWAY_DEFAULTS.items()}
    settings = ApiGatewaySettings(
        endpoint=_endpoint(values["DASHBOARD_WS_APIGATEWAY_ENDPOINT"]),
        table=_name("DASHBOARD_WS_APIGATEWAY_TABLE", values["DASHBOARD_WS_APIGATEWAY_TABLE"]),
        user_index=_name("DASHBOARD_WS_APIGATEWAY_USER_INDEX", values["DASHBOARD_WS_APIGATEWAY_USER_INDEX"]),
        region=_optional_name("DASHBOARD_WS_APIGATEWAY_REGION", values["DASHBOARD_WS_APIGATEWAY_REGION"]),
        timeout=_seconds("DASHBOARD_WS_APIGATEWAY_TIMEOUT", values["DASHBOARD_WS_APIGATEWAY_TIMEOUT"]),
        concurrency=_count("DASHBOARD_WS_APIGATEWAY_CONCURRENCY", values["DASHBOARD_WS_APIGATEWAY_CONCURRENCY"], 1),
        ping_interval=_seconds("DASHBOARD_WS_APIGATEWAY_PING_INTERVAL", values["DASHBOARD_WS_APIGATEWAY_PING_INTERVAL"]),
        ping_timeout=_seconds("DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT", values["DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT"]),
        sweep_interval=_seconds("DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL", values["DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL"]),
        max_age=_seconds("DASHBOARD_WS_APIGATEWAY_MAX_AGE", values["DASHBOARD_WS_APIGATEWAY_MAX_AGE"]),
    )
    _check_heartbeat(settings)
    return settings


def _check_heartbeat(settings: ApiGatewaySettings) -> None:
    """The sweeper pings a connection at most one sweep after it is due: the client and API Gateway must wait that long."""
    interval, timeout, sweep = settings.ping_interval, settings.ping_timeout, settings.sweep_interval
    if timeout <= sweep:
        raise ConfigError(
            f"DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT ({timeout:g} s) must be longer than "
            f"DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL ({sweep:g} s): a ping can come one sweep late"
        )
    if interval + sweep >= APIGATEWAY_IDLE_TIMEOUT:
        raise ConfigError(
            f"DASHBOARD_WS_APIGATEWAY_PING_INTERVAL + DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL ({interval + sweep:g} s) "
            f"must be under API Gateway's idle timeout ({APIGATEWAY_IDLE_TIMEOUT:g} s)"
        )
    if interval + timeout >= _NODE_TIMER_MAX:
        raise ConfigError(
            "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL + DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT must be under "
            f"{_NODE_TIMER_MAX:g} s, the longest timer socket.io-client can set"
        )
    if settings.max_age + sweep > APIGATEWAY_MAX_DURATION:
        raise ConfigError(
            f"DASHBOARD_WS_APIGATEWAY_MAX_AGE + DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL "
            f"({settings.max_age + sweep:g} s) must not exceed API Gateway's connection limit "
            f"({APIGATEWAY_MAX_DURATION:g} s): the sweeper recycles a connection before AWS drops it"
        )


def _endpoint(value: Any) -> str:
    key = "DASHBOARD_WS_APIGATEWAY_ENDPOINT"
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(
            f"{key} must be the WebSocket API's connections URL, "
            f"'https://{{api-id}}.execute-api.{{region}}.amazonaws.com/{{stage}}', got {value!r}"
        )
    return value.rstrip("/")


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _optional_name(key: str, value: Any) -> str | None:
    return None if value is None else _name(key, value)


def listed_origins(origins: str | list[str] | None) -> list[str]:
    """The origins a ``cors_allowed_origins`` value names one by one: none for ``None`` (same origin) and ``'*'``."""
    if origins is None or origins == "*":
        return []
    return [origins] if isinstance(origins, str) else list(origins)


def _namespace(value: Any) -> str:
    key = "DASHBOARD_WS_NAMESPACE"
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise ConfigError(f"{key} must be a string that starts with '/' and has no spaces, got {value!r}")
    return value


def _origins(value: Any) -> str | list[str] | None:
    key = "DASHBOARD_WS_CORS_ALLOWED_ORIGINS"
    if value is None or value == "*":
        return value
    origins = [value] if isinstance(value, str) else value
    if not isinstance(origins, (list, tuple)) or not origins:
        raise ConfigError(f"{key} must be None (same origin only), '*', an origin or a non-empty list of origins")
    for origin in origins:
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(f"{key}: {origin!r} is not an origin like 'https://app.example.com'")
    return list(origins)


def _message_queue(value: Any) -> str | None:
    key = "DASHBOARD_WS_MESSAGE_QUEUE"
    if value is None:
        return None
    if not isinstance(value, str) or not _URL_WITH_SCHEME.match(value):
        raise ConfigError(f"{key} must be None or a queue URL such as 'redis://127.0.0.1:6379/0', got {value!r}")
    return value


def _channel(value: Any, queue: Any) -> str:
    key = "DASHBOARD_WS_CHANNEL"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, the same in every process, got {value!r}")
    if isinstance(queue, str) and urlsplit(queue).scheme.endswith("+cluster") and ("{" in value or "}" in value):
        raise ConfigError(
            f"{key} cannot hold braces on a Redis Cluster: each user's channel and log are named "
            f"'<channel>:{{user:<id>}}' so that they share a hash slot, got {value!r}"
        )
    return value


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key} must be a number of seconds greater than 0, got {value!r}")
    return float(value)


def _count(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise ConfigError(f"{key} must be a number of handshakes per second of at least 1, got {value!r}")
    return float(value)


def _gc_intervals(freeze: Any, reclaim: Any) -> dict[str, Any]:
    if freeze not in (None, "auto"):
        try:
            freeze = _seconds("DASHBOARD_WS_GC_FREEZE_INTERVAL", freeze)
        except ConfigError:
            raise ConfigError(
                f"DASHBOARD_WS_GC_FREEZE_INTERVAL must be 'auto', None (off) or a number of seconds greater than 0, "
                f"got {freeze!r}"
            ) from None
    reclaim = _seconds("DASHBOARD_WS_GC_RECLAIM_INTERVAL", reclaim)
    longest_freeze = AUTO_GC_FREEZE_INTERVAL if freeze == "auto" else freeze
    if longest_freeze is not None and reclaim < longest_freeze:
        raise ConfigError(
            f"DASHBOARD_WS_GC_RECLAIM_INTERVAL ({reclaim:g} s) must not be shorter than "
            f"DASHBOARD_WS_GC_FREEZE_INTERVAL ({longest_freeze:g} s)"
        )
    return {"gc_freeze_interval": freeze, "gc_reclaim_interval": reclaim}


def _async_mode(value: Any) -> str | None:
    key = "DASHBOARD_WS_ASYNC_MODE"
    if value is not None and value not in ASYNC_MODES:
        raise ConfigError(f"{key} must be None (Flask-SocketIO's choice) or one of {', '.join(ASYNC_MODES)}; got {value!r}")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False, got {value!r}")
    return value


def _socketio_options(value: Any) -> dict[str, Any]:
    key = "DASHBOARD_WS_SOCKETIO_OPTIONS"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a dict of SocketIO() keyword arguments, got {value!r}")
    owned = sorted(set(value) & set(_OWNED_SOCKETIO_OPTIONS))
    if owned:
        instead = ", ".join(_OWNED_SOCKETIO_OPTIONS[option] for option in owned)
        raise ConfigError(f"{key} must not contain {', '.join(owned)}: set {instead} instead")
    return dict(value)
