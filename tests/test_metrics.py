"""Prometheus metrics: off unless configured; what each emit, connection and disconnect counts."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Harness

SUMMARY = {
    "totalMocs": 1, "totalWishlistItems": 0,
    "mocsByBuildStatus": {"ADDED": 1, "IN_PROGRESS": 0, "BUILT": 0},
    "mocsByCoverageStatus": {"FULL_INVENTORY": 1, "PARTIAL_ORDERED": 0, "NONE": 0},
}


def samples(harness: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the metrics path serves, keyed by name and sorted labels."""
    response = harness.app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")  # the Prometheus text format
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(harness: Harness, name: str, **labels: str) -> float:
    return samples(harness).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metered(make_app) -> Harness:
    return make_app(DASHBOARD_WS_METRICS_PATH="/metrics")


def test_metrics_are_off_unless_a_path_is_set(harness: Harness) -> None:
    assert harness.state.metrics is None
    assert harness.app.test_client().get("/metrics").status_code == 404


def test_emits_are_counted_by_type_and_timed(metered: Harness) -> None:
    with metered.app.app_context():
        metered.dashboard.emit_summary_updated("alice", SUMMARY)
        metered.dashboard.emit_summary_updated("bob", SUMMARY)
        metered.dashboard.emit_error("alice", "X", "y")
    assert value(metered, "dashboard_ws_events_emitted_total", type="dashboard:summaryUpdated") == 2
    assert value(metered, "dashboard_ws_events_emitted_total", type="dashboard:error") == 1
    assert value(metered, "dashboard_ws_emit_duration_seconds_count") == 3
    assert 0 < value(metered, "dashboard_ws_emit_duration_seconds_sum") < 1


def test_validation_errors_are_counted_by_type_and_nothing_is_emitted(metered: Harness) -> None:
    with metered.app.app_context(), pytest.raises(ValidationError):
        metered.dashboard.emit_summary_updated("alice", {"totalMocs": -1})
    assert value(metered, "dashboard_ws_validation_errors_total", type="dashboard:summaryUpdated") == 1
    assert value(metered, "dashboard_ws_emit_duration_seconds_count") == 0


def test_dropped_events_are_counted_by_reason(metered: Harness) -> None:
    @metered.app.post("/fails")
    def fails() -> Any:
        metered.dashboard.emit_summary_updated("alice", SUMMARY)
        raise RuntimeError("the write failed")

    metered.app.config["PROPAGATE_EXCEPTIONS"] = False
    assert metered.app.test_client().post("/fails").status_code == 500
    assert value(metered, "dashboard_ws_events_dropped_total", reason="request_failed") == 1


def test_connections_and_disconnects_are_counted(metered: Harness, mint) -> None:
    alice = metered.client(metered.token("alice"))
    second = metered.client(metered.token("alice"))
    metered.client(metered.refresh_token("bob"))  # refused
    metered.client(mint(exp=1))  # refused: expired
    assert value(metered, "dashboard_ws_sockets") == 2
    assert value(metered, "dashboard_ws_users") == 1
    assert value(metered, "dashboard_ws_connection_attempts_total", outcome="accepted", reason="") == 2
    assert value(metered, "dashboard_ws_connection_attempts_total", outcome="refused", reason="wrong_token_type") == 1
    assert value(metered, "dashboard_ws_connection_attempts_total", outcome="refused", reason="token_expired") == 1
    assert value(metered, "dashboard_ws_handshake_auth_duration_seconds_count") == 4
    alice.disconnect(namespace="/dashboard")
    metered.state.end_expired(metered.sid(second), metered.state.connections[metered.sid(second)].expires_at)
    assert value(metered, "dashboard_ws_sockets") == 0
    assert value(metered, "dashboard_ws_disconnects_total", reason="client") == 1
    assert value(metered, "dashboard_ws_disconnects_total", reason="token_expired") == 1


def test_labels_never_carry_a_user_or_a_sid(metered: Harness) -> None:
    client = metered.client(metered.token("alice-7f3a"))
    with metered.app.app_context():
        metered.dashboard.emit_summary_updated("alice-7f3a", SUMMARY)
    sid = metered.sid(client)
    text = metered.app.test_client().get("/metrics").get_data(as_text=True)
    assert "alice-7f3a" not in text and sid not in text


def test_the_metrics_path_runs_none_of_the_apps_hooks(metered: Harness) -> None:
    """Served in front of the app: its authentication and database hooks do not run for a scrape."""
    calls = []
    metered.app.before_request(lambda: calls.append("hook"))
    assert metered.app.test_client().get("/metrics").status_code == 200
    assert calls == []
