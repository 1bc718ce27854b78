"""Draining a live server: readiness 503, new handshakes refused, sessions closed in batches within the
budget, at the engine.io level: no Socket.IO DISCONNECT (``41``), after which the official client would not
reconnect ("io server disconnect"); a closed transport, which it reconnects from.

The sockets speak the protocol by hand (websocket-client), so that every frame the server sends is seen.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import websocket

from tests.live_server import HTTP_TIMEOUT, new_user

pytestmark = pytest.mark.live

SOCKETS = 20
BUDGET = 2.0
WAIT = 30.0


def dashboard_socket(url: str, token: str) -> websocket.WebSocket:
    """A WebSocket session connected to /dashboard (the open packet read, CONNECT sent and answered)."""
    ws = websocket.create_connection(f"ws://{urlsplit(url).netloc}/socket.io/?EIO=4&transport=websocket",
                                     timeout=WAIT)
    assert ws.recv().startswith("0{")
    ws.send("40/dashboard," + json.dumps({"token": token}))
    assert ws.recv().startswith("40/dashboard,")
    return ws


def handshake_refused(url: str) -> bool:
    """A new session gets 503; or, under gevent-websocket, which upgrades before the app runs, its WebSocket is
    closed before the open packet."""
    try:
        ws = websocket.create_connection(f"ws://{urlsplit(url).netloc}/socket.io/?EIO=4&transport=websocket",
                                         timeout=WAIT)
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code == 503
    try:
        return ws.recv() == ""
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return True
    finally:
        ws.shutdown()


def frames_until_closed(ws: websocket.WebSocket) -> tuple[list[str], float]:
    """What the server sends until it closes the connection, and when it closed it."""
    frames = []
    try:
        while frame := ws.recv():
            frames.append(frame)
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    return frames, time.monotonic()


def test_a_drain_closes_every_session_in_paced_batches_within_its_budget(start_servers) -> None:
    [server] = start_servers({"DASHBOARD_WS_READY_PATH": "/readyz", "DASHBOARD_WS_METRICS_PATH": "/metrics"}, 1)
    token = server.token(new_user())
    sockets = [dashboard_socket(server.url, token) for _ in range(SOCKETS)]
    assert requests.get(server.url + "/readyz", timeout=HTTP_TIMEOUT).status_code == 200

    seen: list[tuple[list[str], float]] = []
    watchers = [threading.Thread(target=lambda ws=ws: seen.append(frames_until_closed(ws))) for ws in sockets]
    for watcher in watchers:
        watcher.start()
    report: dict[str, Any] = {}
    started = time.monotonic()
    drainer = threading.Thread(target=lambda: report.update(
        server.request("POST", f"/api/test/drain?timeout={BUDGET}", token).json()))
    drainer.start()
    deadline = time.monotonic() + WAIT
    while requests.get(server.url + "/readyz", timeout=HTTP_TIMEOUT).status_code != 503:
        assert time.monotonic() < deadline, "readiness did not turn 503"
        time.sleep(0.02)  # a poll interval: the loop waits for the condition
    assert handshake_refused(server.url)  # the client retries, and a load balancer picks another process
    drainer.join(timeout=WAIT)
    for watcher in watchers:
        watcher.join(timeout=WAIT)
    for ws in sockets:
        ws.shutdown()

    assert report["sessions"] == SOCKETS and report["closed"] == SOCKETS and report["open"] == 0, report
    assert report["seconds"] <= BUDGET + 0.5, report
    assert len(seen) == SOCKETS
    assert not [frame for frames, _ in seen for frame in frames if frame.startswith("41")], seen
    closed_at = [when for _, when in seen]
    assert max(closed_at) - min(closed_at) >= 0.4  # in batches over the budget, not all at once
    assert max(closed_at) - started <= BUDGET + 1.0
    server.wait_for_log(r"drain_finished")
    assert server.metric("dashboard_ws_disconnects_total", reason="drained") == SOCKETS
    assert server.metric("dashboard_ws_sockets") == 0


def test_sigterm_drains_then_ends_the_process(start_servers) -> None:
    """With DASHBOARD_WS_DRAIN_ON_SIGTERM, SIGTERM drains within the budget first, then the process ends as
    SIGTERM ends it without the setting."""
    [server] = start_servers({"DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": BUDGET,
                              "DASHBOARD_WS_READY_PATH": "/readyz"}, 1)
    token = server.token(new_user())
    sockets = [dashboard_socket(server.url, token) for _ in range(5)]
    seen: list[tuple[list[str], float]] = []
    watchers = [threading.Thread(target=lambda ws=ws: seen.append(frames_until_closed(ws))) for ws in sockets]
    for watcher in watchers:
        watcher.start()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=BUDGET + 20) == -signal.SIGTERM
    for watcher in watchers:
        watcher.join(timeout=WAIT)
    for ws in sockets:
        ws.shutdown()
    assert time.monotonic() - started <= BUDGET + 10
    assert len(seen) == 5 and not [frame for frames, _ in seen for frame in frames if frame.startswith("41")]
    assert re.search(r"drain_finished .*closed=5 open=0", server.log), server.log[-2000:]


def test_sigterm_after_a_drain_ends_the_process_at_once(start_servers) -> None:
    """A preStop hook drained already: the SIGTERM that follows must not wait for another drain."""
    [server] = start_servers({"DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": 60.0}, 1)
    token = server.token(new_user())
    assert server.request("POST", "/api/test/drain?timeout=0.1", token).json()["open"] == 0
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=WAIT) == -signal.SIGTERM
    assert time.monotonic() - started < 10  # not the 60 s budget of a second drain
