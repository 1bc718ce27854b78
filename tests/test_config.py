from typing import Any

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager
from flask_socketio import SocketIO

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


# -- the apigateway backend (its keys are read only with it)

APIGATEWAY = {
    "DASHBOARD_WS_BACKEND": "apigateway",
    "DASHBOARD_WS_APIGATEWAY_ENDPOINT": "https://abc123.execute-api.eu-west-1.amazonaws.com/production/",
    "DASHBOARD_WS_APIGATEWAY_TABLE": "connections",
    "DASHBOARD_WS_APIGATEWAY_REGION": "eu-west-1",
}


def _apigateway_settings(**overrides: Any):
    app = Flask("aws")
    app.config.update(APIGATEWAY, **overrides)
    return app, load_settings(app)


def test_the_socketio_backend_is_the_default_and_sets_no_apigateway_keys():
    app = Flask("plain")
    settings = load_settings(app)
    assert settings.backend == "socketio" and settings.apigateway is None
    assert not any(key.startswith("DASHBOARD_WS_APIGATEWAY_") for key in app.config)


def test_apigateway_defaults_are_set_on_the_app_config():
    app, settings = _apigateway_settings()
    aws = settings.apigateway
    assert aws.endpoint == "https://abc123.execute-api.eu-west-1.amazonaws.com/production"  # no trailing slash
    assert (aws.table, aws.user_index, aws.region) == ("connections", "userId", "eu-west-1")
    assert (aws.ping_interval, aws.ping_timeout, aws.sweep_interval, aws.max_age) == (300.0, 120.0, 60.0, 6600.0)
    assert app.config["DASHBOARD_WS_APIGATEWAY_CONCURRENCY"] == 10
    assert app.config["DASHBOARD_WS_APIGATEWAY_TIMEOUT"] == 2.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DASHBOARD_WS_BACKEND": "lambda"}, "DASHBOARD_WS_BACKEND must be one of 'socketio', 'apigateway'"),
        ({"DASHBOARD_WS_APIGATEWAY_ENDPOINT": None}, "DASHBOARD_WS_APIGATEWAY_ENDPOINT must be the WebSocket API's"),
        ({"DASHBOARD_WS_APIGATEWAY_ENDPOINT": "wss://abc/production"}, "DASHBOARD_WS_APIGATEWAY_ENDPOINT"),
        ({"DASHBOARD_WS_APIGATEWAY_TABLE": ""}, "DASHBOARD_WS_APIGATEWAY_TABLE must be a non-empty string"),
        ({"DASHBOARD_WS_APIGATEWAY_CONCURRENCY": 0}, "DASHBOARD_WS_APIGATEWAY_CONCURRENCY must be a whole number"),
        ({"DASHBOARD_WS_APIGATEWAY_TIMEOUT": 0}, "DASHBOARD_WS_APIGATEWAY_TIMEOUT must be a number of seconds"),
        ({"DASHBOARD_WS_MESSAGE_QUEUE": "redis://127.0.0.1:6379/0"}, "DASHBOARD_WS_MESSAGE_QUEUE must be None"),
        ({"DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 60}, "PING_TIMEOUT (60 s) must be longer than"),
        ({"DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": 540}, "under API Gateway's idle timeout (600 s)"),
        ({"DASHBOARD_WS_APIGATEWAY_MAX_AGE": 7170}, "must not exceed API Gateway's connection limit (7200 s)"),
        (
            {"DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 2_200_000, "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 1},
            "the longest timer socket.io-client can set",
        ),
    ],
)
def test_bad_apigateway_values_name_the_key(overrides: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _apigateway_settings(**overrides)


def test_apigateway_init_app_refuses_a_socketio():
    app = Flask("aws")
    app.config.update(APIGATEWAY, JWT_SECRET_KEY="k" * 32)
    JWTManager(app)
    with pytest.raises(ConfigError, match="do not pass a SocketIO"):
        DashboardRealtime(app, socketio=SocketIO())
