"""The sweep under serverless-offline: pings, expired tokens, unauthenticated connections, the 2 hour limit.

The intervals are seconds instead of minutes; the tests invoke the sweep function as the schedule would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import websocket
from flask import Flask

from flask_dashboard_ws.apigateway.sweeper import due
from flask_dashboard_ws.apigateway.table import CONNECTING, OPEN, READY, REFUSED, Connection
from flask_dashboard_ws.config import load_settings

from tests.apigateway.conftest import AwsService, assert_closed_by_server

PING_INTERVAL, PING_TIMEOUT = 2, 3
CONFIG = {
    "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": PING_INTERVAL,
    "DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": PING_TIMEOUT,
    "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 1,
    "DASHBOARD_WS_APIGATEWAY_MAX_AGE": 12,
    "DASHBOARD_WS_AUTH_TIMEOUT": 2,
}
WAIT = 30.0  # the sweeps' deadline: long enough for the 12 s recycling


def sweep_until(service: AwsService, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> list[dict]:
    """Sweep, as the schedule would but more often, until ``condition`` holds; the sweeps' results."""
    results = []
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; sweeps: {results}")
        results.append(service.sweep())
        time.sleep(0.2)
    return results


def test_without_sweeps_the_client_gives_up_after_ping_interval_plus_timeout(service: AwsService) -> None:
    """The control for the next test: the client does close an idle connection that nobody pings."""
    client = service.connect(service.token("kim"))
    connected = client.wait_kind("connect")
    disconnected = client.wait_kind("disconnect", timeout=WAIT)
    assert disconnected["reason"] == "ping timeout"
    assert (disconnected["t"] - connected["t"]) / 1000 >= PING_INTERVAL + PING_TIMEOUT - 0.5


def test_the_sweepers_pings_keep_an_idle_client_connected(service: AwsService) -> None:
    client = service.connect(service.token("lee"))
    connected = client.wait_kind("connect")
    sweeps = sweep_until(service, lambda: len(client.kinds("ping")) >= 3, "three pings")
    last_ping = client.kinds("ping")[-1]
    assert (last_ping["t"] - connected["t"]) / 1000 > PING_INTERVAL + PING_TIMEOUT
    assert not client.kinds("disconnect")
    assert sum(result.get("pinged", 0) for result in sweeps) >= 3
    envelope = service.emit_summary("lee", 1)  # still delivered on the same connection
    assert client.wait_kind("event")["envelope"] == envelope
    assert len(client.kinds("connect")) == 1


def test_an_expired_token_ends_the_connection_with_token_expired(service: AwsService) -> None:
    client = service.connect(service.token("mo", expires=timedelta(seconds=4)))  # time to connect first
    client.wait_kind("connect")
    sweep_until(service, lambda: bool(client.kinds("disconnect")), "the disconnect")
    event = client.wait_kind("event")
    assert event["name"] == "dashboard:error"
    assert event["envelope"]["payload"] == {
        "code": "TOKEN_EXPIRED", "message": "Your session has expired; reconnect with a fresh token."
    }
    assert client.wait_kind("disconnect")["reason"] == "io server disconnect"  # the client does not reconnect
    assert client.seen.index(event) < client.seen.index(client.kinds("disconnect")[0])
    assert not [item for item in service.items() if item.get("userId", {}).get("S") == "mo"]


def test_a_connection_that_does_not_authenticate_in_time_is_closed(service: AwsService) -> None:
    ws = websocket.create_connection(f"{service.offline.websocket_url}?EIO=4&transport=websocket", timeout=WAIT)
    try:
        assert json.loads(ws.recv()[1:])["sid"]
        opened = time.monotonic()
        sweeps = sweep_until(service, lambda: not service.items(), "the connection's item to go")
        assert_closed_by_server(ws)
        assert time.monotonic() - opened >= CONFIG["DASHBOARD_WS_AUTH_TIMEOUT"] - 0.5
        assert sum(result.get("timed_out", 0) for result in sweeps) == 1
    finally:
        ws.shutdown()


def test_a_connection_is_recycled_before_the_2_hour_limit_and_the_client_reconnects_by_itself(service: AwsService) -> None:
    client = service.connect(service.token("nia"))
    client.wait_kind("connect")
    sweeps = sweep_until(service, lambda: len(client.kinds("connect")) >= 2, "the client to connect again")
    assert client.kinds("disconnect")[0]["reason"] == "transport close"
    assert sum(result.get("recycled", 0) for result in sweeps) == 1
    envelope = service.emit_summary("nia", 2)  # the new connection gets the user's events
    assert client.wait_kind("event")["envelope"] == envelope


# -- what a sweep does to one connection (no emulator)


def state_with(**config: Any) -> Any:
    """Just what ``due`` reads: the settings."""
    app = Flask("due")
    app.config.update(DASHBOARD_WS_BACKEND="apigateway", DASHBOARD_WS_APIGATEWAY_ENDPOINT="https://x.example/prod",
                      DASHBOARD_WS_APIGATEWAY_TABLE="t", **config)
    return SimpleNamespace(settings=load_settings(app))


DEFAULT = state_with()


@pytest.mark.parametrize(
    ("connection", "now", "action"),
    [
        (Connection("c", CONNECTING, connected_at=0), 9.9, None),
        (Connection("c", OPEN, connected_at=0), 10.0, "auth_timeout"),  # DASHBOARD_WS_AUTH_TIMEOUT
        (Connection("c", REFUSED, connected_at=0), 10.0, "auth_timeout"),
        (Connection("c", READY, connected_at=0, pinged_at=0), 299.9, None),
        (Connection("c", READY, connected_at=0, pinged_at=0), 300.0, "ping"),  # DASHBOARD_WS_APIGATEWAY_PING_INTERVAL
        (Connection("c", READY, connected_at=0, pinged_at=250), 500.0, None),
        (Connection("c", READY, connected_at=0, pinged_at=0, expires_at=100), 100.0, "expire"),
        (Connection("c", READY, connected_at=0, pinged_at=6500), 6600.0, "recycle"),  # ..._MAX_AGE
        (Connection("c", READY, connected_at=0, pinged_at=0, expires_at=6000), 6600.0, "expire"),  # expiry first
    ],
)
def test_due(connection: Connection, now: float, action: str | None) -> None:
    assert due(connection, now, DEFAULT) == action
