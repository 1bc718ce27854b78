from typing import Any

import pytest
from flask import Flask

from flask_dashboard_ws import ConfigError, DashboardRealtime
from flask_dashboard_ws.config import DEFAULTS, load_settings


def test_defaults_are_set_on_the_app_config(harness):
    config = harness.app.config
    assert config["DASHBOARD_WS_NAMESPACE"] == "/dashboard"
    assert config["DASHBOARD_WS_CORS_ALLOWED_ORIGINS"] is None
    assert config["DASHBOARD_WS_MESSAGE_QUEUE"] is None
    assert config["DASHBOARD_WS_DEFER_IN_REQUEST"] is True
    assert config["DASHBOARD_WS_SOCKETIO_OPTIONS"] == {}
    assert config["DASHBOARD_WS_ASYNC_MODE"] == "threading"  # the harness's own value


def test_the_default_options_dict_is_not_shared_between_apps():
    first, second = Flask("first"), Flask("second")
    load_settings(first)
    load_settings(second)
    first.config["DASHBOARD_WS_SOCKETIO_OPTIONS"]["ping_interval"] = 5
    assert second.config["DASHBOARD_WS_SOCKETIO_OPTIONS"] == {}
    assert DEFAULTS["DASHBOARD_WS_SOCKETIO_OPTIONS"] == {}


def test_an_apps_own_values_are_kept():
    app = Flask("own")
    own = {
        "DASHBOARD_WS_NAMESPACE": "/live",
        "DASHBOARD_WS_CORS_ALLOWED_ORIGINS": ["https://app.example.com"],
        "DASHBOARD_WS_MESSAGE_QUEUE": "redis://127.0.0.1:6379/0",
        "DASHBOARD_WS_ASYNC_MODE": "eventlet",
        "DASHBOARD_WS_DEFER_IN_REQUEST": False,
        "DASHBOARD_WS_SOCKETIO_OPTIONS": {"ping_interval": 5},
    }
    app.config.update(own)
    settings = load_settings(app)
    assert {key: app.config[key] for key in own} == own
    assert settings.namespace == "/live"
    assert settings.cors_allowed_origins == ["https://app.example.com"]
    assert settings.message_queue == "redis://127.0.0.1:6379/0"
    assert settings.async_mode == "eventlet"
    assert settings.defer_in_request is False
    assert settings.socketio_kwargs() == {
        "ping_interval": 5,
        "namespaces": ["/live"],  # python-socketio's default, ["/"], would accept sessions with no token
        "max_http_buffer_size": 16 * 1024,
        "cors_allowed_origins": ["https://app.example.com"],
        "message_queue": "redis://127.0.0.1:6379/0",
        "async_mode": "eventlet",
    }


def test_a_custom_namespace_is_served(make_app):
    h = make_app(DASHBOARD_WS_NAMESPACE="/live")
    client = h.socketio.test_client(h.app, namespace="/live", auth={"token": h.token()})
    assert client.is_connected("/live")
    assert h.state.settings.namespace == "/live"


@pytest.mark.parametrize("value", ["*", "https://app.example.com", ["https://a.example.com", "http://b.example.com:8080"],
                                   ("https://a.example.com",)])
def test_valid_cors_origins(value):
    app = Flask("cors")
    app.config["DASHBOARD_WS_CORS_ALLOWED_ORIGINS"] = value
    expected = value if value == "*" else ([value] if isinstance(value, str) else list(value))
    assert load_settings(app).cors_allowed_origins == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DASHBOARD_WS_NAMESPACE", "dashboard"),
        ("DASHBOARD_WS_NAMESPACE", "/dash board"),
        ("DASHBOARD_WS_NAMESPACE", ""),
        ("DASHBOARD_WS_NAMESPACE", None),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", "app.example.com"),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", "https://app.example.com/"),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", "ftp://app.example.com"),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", []),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", ["https://ok.example.com", "*"]),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", ["https://ok.example.com", 42]),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", {"https://app.example.com"}),
        ("DASHBOARD_WS_CORS_ALLOWED_ORIGINS", True),
        ("DASHBOARD_WS_DEFER_IN_REQUEST", "false"),
        ("DASHBOARD_WS_DEFER_IN_REQUEST", 0),
        ("DASHBOARD_WS_DEFER_IN_REQUEST", None),
        ("DASHBOARD_WS_ASYNC_MODE", "asyncio"),
        ("DASHBOARD_WS_ASYNC_MODE", "Threading"),
        ("DASHBOARD_WS_MESSAGE_QUEUE", "127.0.0.1:6379"),
        ("DASHBOARD_WS_MESSAGE_QUEUE", ""),
        ("DASHBOARD_WS_MESSAGE_QUEUE", 6379),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", None),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", [("ping_interval", 5)]),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", {"async_mode": "threading"}),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", {"message_queue": "redis://127.0.0.1:6379/0"}),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", {"cors_allowed_origins": "*", "ping_interval": 5}),
        ("DASHBOARD_WS_QUEUE_TIMEOUT", 0),
        ("DASHBOARD_WS_GC_FREEZE_INTERVAL", 0),
        ("DASHBOARD_WS_GC_FREEZE_INTERVAL", "10"),
        ("DASHBOARD_WS_GC_FREEZE_INTERVAL", True),
        ("DASHBOARD_WS_GC_RECLAIM_INTERVAL", None),
        ("DASHBOARD_WS_GC_RECLAIM_INTERVAL", float("inf")),
        ("DASHBOARD_WS_GC_FREEZE_INTERVAL", "Auto"),
        ("DASHBOARD_WS_COMPRESSION", "yes"),
        ("DASHBOARD_WS_AUTH_TIMEOUT", 0),
        ("DASHBOARD_WS_AUTH_TIMEOUT", None),
        ("DASHBOARD_WS_MAX_CLIENT_EVENTS", -1),
        ("DASHBOARD_WS_MAX_CLIENT_EVENTS", True),
        ("DASHBOARD_WS_MAX_INBOUND_BYTES", 100),
        ("DASHBOARD_WS_MAX_EVENT_BYTES", "64k"),
        ("DASHBOARD_WS_MAX_OUTGOING_BYTES", 1.5e6),
        ("DASHBOARD_WS_MAX_SOCKETS_PER_USER", 0),
        ("DASHBOARD_WS_SOCKETIO_OPTIONS", {"max_http_buffer_size": 10_000_000}),
    ],
)
def test_invalid_values_raise_config_error_naming_the_key(key: str, value: Any):
    app = Flask("invalid")
    app.config[key] = value
    with pytest.raises(ConfigError, match=key):
        load_settings(app)


def test_gc_reclaim_interval_not_shorter_than_the_freeze_interval():
    app = Flask("gc_intervals")
    app.config.update(DASHBOARD_WS_GC_FREEZE_INTERVAL=60, DASHBOARD_WS_GC_RECLAIM_INTERVAL=30)
    with pytest.raises(ConfigError, match="DASHBOARD_WS_GC_RECLAIM_INTERVAL .30 s. must not be shorter"):
        load_settings(app)
    app.config["DASHBOARD_WS_GC_RECLAIM_INTERVAL"] = 60
    settings = load_settings(app)
    assert (settings.gc_freeze_interval, settings.gc_reclaim_interval) == (60.0, 60.0)


def test_owned_socketio_options_are_named(make_app):
    with pytest.raises(ConfigError, match="async_mode, cors_allowed_origins"):
        make_app(DASHBOARD_WS_SOCKETIO_OPTIONS={"cors_allowed_origins": "*", "async_mode": "threading"})


def test_init_app_checks_the_config(make_app):
    with pytest.raises(ConfigError, match="DASHBOARD_WS_NAMESPACE"):
        make_app(DASHBOARD_WS_NAMESPACE="dashboard")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_init_app_without_jwt_manager_raises():
    app = Flask("no_jwt")
    app.config["DASHBOARD_WS_ASYNC_MODE"] = "threading"
    with pytest.raises(ConfigError, match="JWTManager"):
        DashboardRealtime(app)
    assert "dashboard_ws" not in app.extensions


@pytest.mark.parametrize(("mode", "interval"), [("eventlet", 0.2), ("gevent", 0.2), ("threading", None)])
def test_the_auto_gc_freeze_interval_is_on_only_in_the_green_thread_modes(mode, interval):
    app = Flask("auto_gc")
    assert load_settings(app).gc_freeze_interval_for(mode) == interval
    app.config["DASHBOARD_WS_GC_FREEZE_INTERVAL"] = None
    assert load_settings(app).gc_freeze_interval_for(mode) is None
    app.config["DASHBOARD_WS_GC_FREEZE_INTERVAL"] = 1
    assert load_settings(app).gc_freeze_interval_for(mode) == 1.0


def test_an_owned_option_names_the_key_to_set_instead(make_app):
    with pytest.raises(ConfigError, match="set DASHBOARD_WS_MAX_INBOUND_BYTES instead"):
        make_app(DASHBOARD_WS_SOCKETIO_OPTIONS={"max_http_buffer_size": 10_000_000})
