"""Metrics and probes on a real server process, over real HTTP, with real clients and a real Redis outage."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from tests.live_server import DISCONNECTED, HTTP_TIMEOUT, LiveServer, new_user
from tests.redis_server import PrivateRedis, private_channel

pytestmark = pytest.mark.live

OPERATIONS = {
    "DASHBOARD_WS_METRICS_PATH": "/metrics",
    "DASHBOARD_WS_HEALTH_PATH": "/healthz",
    "DASHBOARD_WS_READY_PATH": "/readyz",
}
WAIT = 30.0


def status(server: LiveServer, path: str) -> int:
    return requests.get(server.url + path, timeout=HTTP_TIMEOUT).status_code


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # a poll interval: the loop waits for the condition


def test_a_scrape_counts_sockets_users_events_and_disconnects(start_servers, shared_redis: str) -> None:
    [server] = start_servers({**OPERATIONS, "DASHBOARD_WS_MESSAGE_QUEUE": shared_redis,
                              "DASHBOARD_WS_CHANNEL": private_channel()}, 1)
    user = new_user()
    token = server.token(user)
    first, second = server.connect(auth=token), server.connect(auth=token)
    refused = server.attempt(auth="not-a-token")
    assert not refused.client.connected
    envelope = server.emitted("PUT", "/api/dashboard/summary", token, {
        "totalMocs": 2, "totalWishlistItems": 0,
        "mocsByBuildStatus": {"ADDED": 2, "IN_PROGRESS": 0, "BUILT": 0},
        "mocsByCoverageStatus": {"FULL_INVENTORY": 2, "PARTIAL_ORDERED": 0, "NONE": 0},
    })
    assert first.next_event()[1] == envelope and second.next_event()[1] == envelope  # delivered through Redis
    assert server.metric("dashboard_ws_sockets") == 2
    assert server.metric("dashboard_ws_users") == 1
    assert server.metric("dashboard_ws_connection_attempts_total", outcome="accepted", reason="") == 2
    assert server.metric("dashboard_ws_connection_attempts_total", outcome="refused", reason="token_invalid") == 1
    assert server.metric("dashboard_ws_events_emitted_total", type="dashboard:summaryUpdated") == 1
    assert server.metric("dashboard_ws_emit_duration_seconds_count") == 1
    assert server.metric("dashboard_ws_queue_publish_duration_seconds_count") >= 1
    assert server.metric("dashboard_ws_queue_unreachable_seconds") == 0
    first.client.disconnect()
    assert first.next_event()[0] == DISCONNECTED
    # The client sends its namespace disconnect, then closes: whichever the server reads first names the reason.
    eventually(lambda: sum(server.metric("dashboard_ws_disconnects_total", reason=reason)
                           for reason in ("client", "transport")) == 1, "the disconnect's count")
    assert server.metric("dashboard_ws_sockets") == 1


def test_readiness_follows_the_queue_listener_through_a_redis_outage(
    start_servers, private_redis: PrivateRedis
) -> None:
    [server] = start_servers({**OPERATIONS, "DASHBOARD_WS_MESSAGE_QUEUE": private_redis.url,
                              "DASHBOARD_WS_CHANNEL": private_channel(), "DASHBOARD_WS_READY_QUEUE_OUTAGE": 1.0}, 1)
    server.connect(auth=server.token(new_user()))  # the first connection starts the listener
    assert status(server, "/readyz") == 200
    mark = server.log_mark()
    private_redis.stop()
    server.wait_for_log(r"queue_listen_failed", since=mark)
    eventually(lambda: status(server, "/readyz") == 503, "readiness to turn 503")
    assert status(server, "/healthz") == 200  # alive, only not ready
    assert server.metric("dashboard_ws_queue_unreachable_seconds") > 0
    mark = server.log_mark()
    private_redis.start()  # the same port
    server.wait_for_log(r"queue_listening", since=mark)
    eventually(lambda: status(server, "/readyz") == 200, "readiness to return to 200")
    assert server.metric("dashboard_ws_queue_unreachable_seconds") == 0
