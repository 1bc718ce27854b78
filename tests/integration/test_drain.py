"""Draining a live server: readiness 503, new handshakes refused, sessions closed in batches within the
budget, at the engine.io level: no Socket.IO DISCONNECT (``41``), after which the official client would not
reconnect ("io server disconnect"); a closed transport, which it reconnects from.

Most sockets here speak the protocol by hand (websocket-client), so that every frame the server sends is seen.
The deploy test runs the official client (Node) through the tests' nginx to two processes, and drains one.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import websocket

from tests.live_server import HTTP_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, new_user
from tests.nginx_conf import NGINX_CONF, NOT_INSTALLED, NginxProxy, nginx_binary, with_upstreams
from tests.node_tabs import NodeTabs
from tests.redis_server import free_port, private_channel

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
    assert server.metric("dashboard_ws_connection_attempts_total", outcome="refused", reason="draining") == 1
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


# The deploy test: 500 tabs of 100 users on process A, drained within DEPLOY_BUDGET seconds.
DEPLOY_USERS, DEPLOY_TABS, DEPLOY_BUDGET = 100, 500, 5.0
# socket.io-client's default reconnection: 1 s, doubling up to 5 s, each delay randomized by ±50 %.
MAX_RECONNECT_DELAY = 7.5


def test_a_deploy_drains_a_process_and_every_official_client_reconnects_to_the_other(
    start_servers, async_mode: str, shared_redis: str, tmp_path: Path
) -> None:
    """Two processes behind nginx (B as A's backup, so every tab starts on A); SIGTERM drains A and ends it. Each
    tab sees its transport close, never "io server disconnect", reconnects by itself through nginx to B within
    the budget plus the client's backoff, and receives the events emitted to its user after that."""
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NOT_INSTALLED)
    config = {
        "DASHBOARD_WS_MESSAGE_QUEUE": shared_redis, "DASHBOARD_WS_CHANNEL": private_channel(),
        "DASHBOARD_WS_SOCKETIO_OPTIONS": {"transports": ["websocket"]},  # round robin needs no sticky sessions
        "DASHBOARD_WS_METRICS_PATH": "/metrics",
        "DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": DEPLOY_BUDGET,
        "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1000.0,  # every tab of the test comes from 127.0.0.1
    }
    # Served as the README serves (but threading: Werkzeug's server); gevent-websocket needs its before_upgrade.
    a, b = start_servers(config, 2, run=async_mode != "threading")
    port, prefix = free_port(), tmp_path / "nginx"
    upstreams = [a.url.removeprefix("http://"), b.url.removeprefix("http://") + " backup"]
    conf = with_upstreams(NGINX_CONF.read_text(encoding="utf-8"), port, upstreams, prefix)
    sticky = conf.index("upstream dashboard_app_sticky {")
    conf = conf[:sticky] + conf[sticky:].replace(" backup;", ";", 1)  # ip_hash takes no backup server
    proxy = NginxProxy(conf, port, prefix)
    users = [new_user() for _ in range(DEPLOY_USERS)]
    tokens = {user: a.token(user) for user in users}
    (tmp_path / "tokens").write_text("\n".join(tokens[user] for user in users), encoding="utf-8")
    tabs: NodeTabs | None = None
    try:
        proxy.start(nginx, "/api/health", START_TIMEOUT)
        tabs = NodeTabs(proxy.url, f"@{tmp_path / 'tokens'}", DEPLOY_TABS, spacing=5, timeout=WAIT)
        wait_for_tabs(tabs, "connect", DEPLOY_TABS)
        assert (a.metric("dashboard_ws_sockets"), b.metric("dashboard_ws_sockets")) == (DEPLOY_TABS, 0)

        started = time.time()
        a.signal(signal.SIGTERM)
        wait_for_tabs(tabs, "connect", 2 * DEPLOY_TABS, timeout=DEPLOY_BUDGET + 4 * MAX_RECONNECT_DELAY + WAIT)
        assert a.wait_exit(timeout=WAIT) == -signal.SIGTERM
        assert b.metric("dashboard_ws_sockets") == DEPLOY_TABS

        seen = tabs.drain()
        disconnects = [event for event in seen if event["kind"] == "disconnect"]
        assert len(disconnects) == DEPLOY_TABS and {event["tab"] for event in disconnects} == set(range(DEPLOY_TABS))
        assert {event["reason"] for event in disconnects} <= {"transport close", "transport error"}, disconnects
        assert max(event["t"] for event in disconnects) / 1000 - started <= DEPLOY_BUDGET + 1.0
        reconnected = [event["t"] / 1000 for event in seen if event["kind"] == "connect" and event["t"] / 1000 > started]
        closed = [event["t"] / 1000 - started for event in disconnects]
        spread = (min(reconnected) - started, max(reconnected) - started)
        print(f"drained {DEPLOY_TABS} tabs: closed {min(closed):.2f}-{max(closed):.2f} s, reconnected "
              f"{spread[0]:.2f}-{spread[1]:.2f} s after SIGTERM")  # shown with pytest -rP
        assert spread[1] <= DEPLOY_BUDGET + 2 * MAX_RECONNECT_DELAY, spread

        sent = {user: emit_error(proxy.url, tokens[user]) for user in users}
        wait_for_tabs(tabs, "event", DEPLOY_TABS)
        received = {(event["tab"], event["envelope"]["eventId"]) for event in tabs.drain() if event["kind"] == "event"}
        assert received == {(tab, sent[users[tab % DEPLOY_USERS]]) for tab in range(DEPLOY_TABS)}
        assert "io server disconnect" not in {event.get("reason") for event in tabs.drain()}
    finally:
        if tabs is not None:
            tabs.close()
        proxy.stop(STOP_TIMEOUT)


def wait_for_tabs(tabs: NodeTabs, kind: str, count: int, timeout: float = WAIT) -> None:
    """Until the tabs have reported ``count`` observations of ``kind`` in all."""
    deadline = time.monotonic() + timeout
    while (seen := len(tabs.kinds(kind))) < count:
        assert time.monotonic() < deadline, f"{seen} of {count} {kind}; last: {tabs.seen[-5:]}"
        time.sleep(0.05)  # a poll interval: the loop waits for the condition


def emit_error(url: str, token: str) -> str:
    """Emit a dashboard:error to the token's user through ``url``; its eventId."""
    response = requests.post(url + "/api/dashboard/errors", json={"code": "DEPLOYED", "message": "after the drain"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["event"]["eventId"]
