"""Emits with DASHBOARD_WS_BACKEND = "apigateway": the same API, posted to the user's API Gateway connections.

DynamoDB is dynalite; API Gateway's connections API is tests/apigateway/connections_server.py, which can
answer what the emulator never does (403, 429).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager
from structlog.testing import capture_logs

from flask_dashboard_ws import ConfigError, DashboardRealtime, EventTooLarge
from flask_dashboard_ws.apigateway import ApiGatewayUnavailable
from flask_dashboard_ws.apigateway.backend import APIGATEWAY_MAX_MESSAGE, event_limit
from flask_dashboard_ws.apigateway.table import ConnectionTable
from flask_dashboard_ws.config import load_settings
from tests.apigateway.aws_app import summary
from tests.apigateway.connections_server import ConnectionsServer
from tests.apigateway.emulator import OFFLINE_CREDENTIALS, Dynalite, create_connections_table


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, dynalite: Dynalite) -> None:
    for name, value in OFFLINE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynalite.url)


class Harness:
    def __init__(self, server: ConnectionsServer, dynalite: Dynalite, **config: Any) -> None:
        self.server = server
        self.table_name = f"connections-{uuid.uuid4().hex[:12]}"
        client = dynalite.client()
        create_connections_table(client, self.table_name)
        client.close()
        self.app = Flask("backend")
        self.app.config.update(
            JWT_SECRET_KEY="k" * 64,
            DASHBOARD_WS_BACKEND="apigateway",
            DASHBOARD_WS_APIGATEWAY_ENDPOINT=server.url,
            DASHBOARD_WS_APIGATEWAY_TABLE=self.table_name,
            DASHBOARD_WS_APIGATEWAY_TIMEOUT=1.0,
            **config,
        )
        JWTManager(self.app)
        self.dashboard = DashboardRealtime(self.app)
        self.state = self.app.extensions["dashboard_ws"]
        self.table: ConnectionTable = self.state.table

    def connected(self, user_id: str, *connection_ids: str) -> None:
        for connection_id in connection_ids:
            self.table.add(connection_id, 100.0, None)
            self.table.claim_open(connection_id, 100.0)
            self.table.authenticate(connection_id, user_id, None, f"sid-{connection_id}")

    def posts(self) -> dict[str, list[str]]:
        posted: dict[str, list[str]] = {}
        for method, connection_id, body in self.server.requests:
            posted.setdefault(connection_id, []).append(body.decode() if method == "POST" else "DELETE")
        return posted

    def close(self) -> None:
        self.state.table.client.close()
        self.state.api.client.close()


@pytest.fixture
def harness(dynalite: Dynalite) -> Iterator[Any]:
    made: list[Harness] = []
    servers: list[ConnectionsServer] = []

    def make(statuses: dict[str, int] | None = None, **config: Any) -> Harness:
        server = ConnectionsServer(statuses).__enter__()
        servers.append(server)
        made.append(Harness(server, dynalite, **config))
        return made[-1]

    yield make
    for each in made:
        each.close()
    for server in servers:
        server.__exit__(None, None, None)


def test_an_emit_posts_the_event_packet_to_every_connection_of_the_user(harness) -> None:
    h = harness()
    h.connected("alice", "a1", "a2")
    h.connected("bob", "b1")
    with h.app.app_context():
        envelope = h.dashboard.emit_summary_updated("alice", summary(2))
    packet = '42/dashboard,["dashboard:summaryUpdated",' + json.dumps(envelope, separators=(",", ":")) + "]"
    assert h.posts() == {"a1": [packet], "a2": [packet]}


def test_an_emit_to_a_user_without_connections_posts_nothing(harness) -> None:
    h = harness()
    with h.app.app_context():
        h.dashboard.emit_summary_updated("nobody", summary(1))
    assert h.server.requests == []


def test_a_failed_post_is_logged_and_the_others_are_sent(harness) -> None:
    h = harness({"c2": 429, "c3": 410})
    h.connected("carol", "c1", "c2", "c3")
    with h.app.app_context(), capture_logs() as logs:
        envelope = h.dashboard.emit_summary_updated("carol", summary(1))
    assert {connection_id for _, connection_id, _ in h.server.requests} == {"c1", "c2", "c3"}
    dropped = [line for line in logs if line["event"] == "event_dropped"]
    assert dropped == [{
        "event": "event_dropped", "log_level": "warning", "type": "dashboard:summaryUpdated", "user_id": "carol",
        "event_id": envelope["eventId"], "connection_id": "c2", "reason": "post_failed", "status": 429,
        "error": "ClientError (429, 429)",
    }]
    assert {"event": "connection_gone", "log_level": "info", "connection_id": "c3", "user_id": "carol"} in logs
    assert sorted(h.table.of_user("carol")) == ["c1", "c2"]


def test_an_emit_at_once_raises_when_api_gateway_refuses(harness) -> None:
    h = harness({"d1": 403})
    h.connected("dan", "d1", "d2")
    with h.app.app_context(), capture_logs() as logs, pytest.raises(ApiGatewayUnavailable) as raised:
        h.dashboard.emit_summary_updated("dan", summary(1))
    assert "1 of 2 connections of user dan did not get the dashboard:summaryUpdated event" in str(raised.value)
    assert raised.value.envelope["type"] == "dashboard:summaryUpdated"
    assert [line["reason"] for line in logs if line["event"] == "event_dropped"] == ["apigateway_unavailable"]
    assert ("POST", "d2") in [(method, connection_id) for method, connection_id, _ in h.server.requests]


def test_an_emit_at_once_raises_when_dynamodb_is_unreachable(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # the discard port: nothing listens
    h = harness()
    with h.app.app_context(), pytest.raises(ApiGatewayUnavailable, match="did not answer query"):
        h.dashboard.emit_summary_updated("erin", summary(1))


def test_a_deferred_emit_logs_the_outage_and_the_request_succeeds(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    h = harness()

    @h.app.post("/write")
    def write() -> Any:
        h.dashboard.emit_summary_updated("erin", summary(1))
        h.dashboard.emit_summary_updated("erin", summary(2))
        return {"ok": True}

    with capture_logs() as logs:
        response = h.app.test_client().post("/write")
    assert response.status_code == 200
    assert [line["reason"] for line in logs if line["event"] == "event_dropped"] == ["apigateway_unavailable"] * 2


def test_disconnect_user_sends_session_ended_then_closes_every_connection(harness) -> None:
    h = harness()
    h.connected("fay", "f1", "f2")
    with h.app.app_context():
        envelope = h.dashboard.disconnect_user("fay", "Signed out.")
    event = '42/dashboard,["dashboard:error",' + json.dumps(envelope, separators=(",", ":")) + "]"
    assert h.posts() == {"f1": [event, "41/dashboard,", "DELETE"], "f2": [event, "41/dashboard,", "DELETE"]}
    assert h.table.of_user("fay") == [] and h.table.get("f1") is None


def test_the_cli_emits_through_api_gateway(harness) -> None:
    h = harness()
    h.connected("gus", "g1")
    result = h.app.test_cli_runner().invoke(
        args=["dashboard-ws", "emit", "--user", "gus", "--type", "dashboard:error",
              "--payload", '{"code": "MAINTENANCE", "message": "Back at 14:00"}']
    )
    assert result.exit_code == 0, result.output
    [(method, connection_id, body)] = h.server.requests
    assert connection_id == "g1" and result.output.strip().splitlines()[-1] in body.decode()


def test_an_event_over_api_gateways_message_limit_is_refused_naming_it(harness) -> None:
    h = harness(DASHBOARD_WS_MAX_EVENT_BYTES=256 * 1024)
    h.connected("hal", "h1")
    with h.app.app_context(), pytest.raises(EventTooLarge, match=r"over API Gateway's 128 KB message limit less the "
                                                                 r"Socket.IO framing \(13\d{4} bytes\)"):
        h.dashboard.emit_error("hal", "BIG", "x" * 131_000)
    assert h.server.requests == []


def test_the_event_limit_is_the_smaller_of_the_setting_and_api_gateways() -> None:
    app = Flask("limits")
    app.config.update(DASHBOARD_WS_BACKEND="apigateway", DASHBOARD_WS_APIGATEWAY_ENDPOINT="https://x.example/prod",
                      DASHBOARD_WS_APIGATEWAY_TABLE="t")
    assert event_limit(load_settings(app)).max_bytes == 64 * 1024
    app.config["DASHBOARD_WS_MAX_EVENT_BYTES"] = 1024 * 1024
    limit = event_limit(load_settings(app))
    longest_type = len("dashboard:themeBreakdownUpdated")
    assert limit.max_bytes == APIGATEWAY_MAX_MESSAGE - len('42/dashboard,["",]') - longest_type


def test_init_app_without_a_region_names_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    app = Flask("no-region")
    app.config.update(JWT_SECRET_KEY="k" * 64, DASHBOARD_WS_BACKEND="apigateway",
                      DASHBOARD_WS_APIGATEWAY_ENDPOINT="https://x.example/prod", DASHBOARD_WS_APIGATEWAY_TABLE="t")
    JWTManager(app)
    with pytest.raises(ConfigError, match="DASHBOARD_WS_APIGATEWAY_REGION is not set"):
        DashboardRealtime(app)


def test_an_apigateway_app_has_no_socketio(harness) -> None:
    h = harness()
    with h.app.app_context(), pytest.raises(RuntimeError, match="it has no SocketIO"):
        h.dashboard.socketio  # noqa: B018
    with pytest.raises(RuntimeError, match="API Gateway serves its sockets"):
        h.dashboard.run(h.app)
