"""The WebSocket handlers under serverless-offline, driven by the unchanged official socket.io-client."""

from __future__ import annotations

import pytest

from tests.apigateway.conftest import AwsService

# Pings every 20 s with 20 s of grace: no test here lasts long enough to need the sweeper's pings.
CONFIG = {
    "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": 20,
    "DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 20,
    "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 1,
}


@pytest.fixture(scope="module")
def service(start_service) -> AwsService:
    return start_service(CONFIG)


def test_client_connects_and_receives_an_event_emitted_by_another_process(service: AwsService) -> None:
    client = service.connect(service.token("alice"))
    client.wait_connected()
    emitted = service.emit_from_another_process("alice", 3)
    assert emitted.returncode == 0, emitted.stderr
    event = client.wait_kind("event")
    assert event["name"] == "dashboard:summaryUpdated"
    assert event["envelope"]["payload"]["totalMocs"] == 3
