"""Liveness and readiness paths: off unless configured, answered in front of the app, 503 when not ready."""

from __future__ import annotations

import time

import pytest

from flask_dashboard_ws import ConfigError
from tests.conftest import Harness

PROBES = {"DASHBOARD_WS_HEALTH_PATH": "/healthz", "DASHBOARD_WS_READY_PATH": "/readyz"}


def test_probes_are_off_unless_configured(harness: Harness) -> None:
    client = harness.app.test_client()
    assert client.get("/healthz").status_code == 404
    assert client.get("/readyz").status_code == 404


def test_health_and_readiness_answer_without_running_the_apps_hooks(make_app) -> None:
    harness = make_app(**PROBES)
    harness.app.before_request(lambda: ("the app's own auth would refuse this", 401))
    client = harness.app.test_client()
    health, ready = client.get("/healthz"), client.get("/readyz")
    assert (health.status_code, health.get_json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ready"})
    assert health.headers["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 401  # not a probe: the app's own route handling


def test_readiness_is_503_once_the_queue_listener_has_been_down_too_long(make_app, shared_redis: str) -> None:
    harness = make_app(**PROBES, DASHBOARD_WS_MESSAGE_QUEUE=shared_redis, DASHBOARD_WS_READY_QUEUE_OUTAGE=5.0)
    manager = harness.socketio.server.manager
    client = harness.app.test_client()
    manager.listener_down_since = time.monotonic() - 4.0  # within the grace
    assert client.get("/readyz").status_code == 200
    manager.listener_down_since = time.monotonic() - 6.0
    not_ready = client.get("/readyz")
    assert (not_ready.status_code, not_ready.get_json()) == (503, {"status": "not_ready", "reasons": ["queue_listener_down"]})
    assert client.get("/healthz").status_code == 200  # alive all the same
    manager.listener_down_since = None  # subscribed again
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"DASHBOARD_WS_HEALTH_PATH": "healthz"}, "DASHBOARD_WS_HEALTH_PATH must be None"),
        ({"DASHBOARD_WS_READY_PATH": "/ready z"}, "DASHBOARD_WS_READY_PATH must be None"),
        ({"DASHBOARD_WS_HEALTH_PATH": "/z", "DASHBOARD_WS_READY_PATH": "/z"}, "must differ"),
        ({"DASHBOARD_WS_READY_QUEUE_OUTAGE": 0}, "DASHBOARD_WS_READY_QUEUE_OUTAGE must be a number of seconds"),
        ({"DASHBOARD_WS_DRAIN_TIMEOUT": -1}, "DASHBOARD_WS_DRAIN_TIMEOUT must be a number of seconds"),
        ({"DASHBOARD_WS_DRAIN_ON_SIGTERM": "yes"}, "DASHBOARD_WS_DRAIN_ON_SIGTERM must be True or False"),
    ],
)
def test_bad_operations_settings_name_the_key(make_app, config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(**config)
