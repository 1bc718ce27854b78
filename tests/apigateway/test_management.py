"""Posting to connections: what each answer of API Gateway means, read from the HTTP status."""

from __future__ import annotations

import socket
import threading

import pytest

from flask_dashboard_ws.apigateway import ApiGatewayUnavailable
from flask_dashboard_ws.apigateway.aws import client
from flask_dashboard_ws.apigateway.management import ManagementApi, Outcome
from flask_dashboard_ws.config import ApiGatewaySettings
from tests.apigateway.connections_server import ConnectionsServer
from tests.apigateway.emulator import OFFLINE_CREDENTIALS


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OFFLINE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def management(endpoint: str, concurrency: int = 4) -> ManagementApi:
    settings = ApiGatewaySettings(endpoint=endpoint, table="t", region="eu-west-1", timeout=1.0, concurrency=concurrency)
    return ManagementApi(client("apigatewaymanagementapi", settings, endpoint_url=endpoint), concurrency)


def test_statuses_map_to_outcomes() -> None:
    with ConnectionsServer({"gone": 410, "throttled": 429, "huge": 413}) as server:
        api = management(server.url)
        assert api.post("fine", "42/dashboard,[]").outcome is Outcome.SENT
        assert api.post("gone", "2").outcome is Outcome.GONE
        assert api.close("gone").outcome is Outcome.GONE
        throttled = api.post("throttled", "2")
        assert (throttled.outcome, throttled.status) == (Outcome.FAILED, 429)
        assert api.post("huge", "2").status == 413
        api.client.close()
    assert ("POST", "fine", b"42/dashboard,[]") in server.requests
    assert ("DELETE", "gone", b"") in server.requests


def test_forbidden_is_an_outage_not_a_failed_post() -> None:
    """403: the role lacks execute-api:ManageConnections, or the endpoint lacks the stage: every post fails."""
    with ConnectionsServer({"any": 403}) as server:
        api = management(server.url)
        with pytest.raises(ApiGatewayUnavailable, match=r"post_to_connection: ClientError \(403"):
            api.post("any", "2")
        api.client.close()


def test_an_endpoint_that_does_not_answer_is_an_outage() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once the socket is closed
    api = management(f"http://127.0.0.1:{port}")
    with pytest.raises(ApiGatewayUnavailable, match="EndpointConnectionError"):
        api.post("any", "2")
    api.client.close()


def test_posts_to_many_connections_run_concurrently_within_the_bound() -> None:
    with ConnectionsServer(delay=0.2) as server:
        api = management(server.url, concurrency=3)
        ids = [f"c{index}" for index in range(9)]
        results = api.each(lambda connection_id: (connection_id, api.post(connection_id, "2").outcome), ids)
        api.client.close()
    assert results == [(connection_id, Outcome.SENT) for connection_id in ids]  # in order
    assert server.most_in_flight == 3


def test_one_connection_is_posted_to_inline() -> None:
    threads = []
    api = ManagementApi(client=None, concurrency=3)
    api.each(lambda connection_id: threads.append(threading.current_thread()), ["only"])
    assert threads == [threading.current_thread()]
