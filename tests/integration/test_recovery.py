"""Connection state recovery against live servers (``DASHBOARD_WS_RECOVERY``), its log in the process or in
Redis: the official socket.io-client reconnects after its transport dropped, to the same process or, behind
nginx, to another one, and gets the events it missed, in order and once, with ``socket.recovered``; a ``pid``
sent by another user's connection recovers nothing (by hand, so that the CONNECT packet can carry any ``pid``)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websocket

from tests.live_server import START_TIMEOUT, STOP_TIMEOUT, LiveServer, new_user
from tests.nginx_conf import NGINX_CONF, NOT_INSTALLED, NginxProxy, nginx_binary, with_upstreams
from tests.node_tabs import NodeTabs
from tests.redis_server import BlackHoleProxy, free_port, private_channel

pytestmark = [pytest.mark.live, pytest.mark.js]

RECOVERY = {"DASHBOARD_WS_RECOVERY": True}
WAIT = 30.0


@pytest.fixture(params=["in-process", "redis", "cluster"])
def recovery_config(request: pytest.FixtureRequest, shared_redis: str) -> dict[str, Any]:
    """Recovery with its log in the process, with a Redis queue (its log in Redis), and with a Redis Cluster of
    the test's own (each user's log, channel and pids on one shard)."""
    if request.param == "in-process":
        return RECOVERY
    queue = request.getfixturevalue("redis_cluster").url if request.param == "cluster" else shared_redis
    return {**RECOVERY, "DASHBOARD_WS_MESSAGE_QUEUE": queue, "DASHBOARD_WS_CHANNEL": private_channel()}


def emit(server: LiveServer, token: str, code: str) -> str:
    return server.emitted("POST", "/api/dashboard/errors", token, {"code": code, "message": code})["eventId"]


def events_after(tabs: NodeTabs, index: int, tab: int = 0) -> list[dict[str, Any]]:
    return [seen for seen in tabs.drain()[index:] if seen["kind"] == "event" and seen["tab"] == tab]


def test_a_tab_that_reconnects_gets_what_it_missed_in_order_once_and_is_recovered(
    start_servers: Callable[..., list[LiveServer]], recovery_config: dict[str, Any]
) -> None:
    [server] = start_servers(recovery_config, 1)
    token = server.token(new_user())
    tabs = NodeTabs(server.url, token, tabs=2)
    try:
        tabs.wait_connected(2)
        first = emit(server, token, "BEFORE")
        assert tabs.wait_kind("event", 0)["envelope"]["eventId"] == first
        tabs.wait_kind("event", 1)

        assert server.request("POST", "/api/test/blip", token).json()["closed"] == 2
        assert tabs.wait_kind("disconnect", 0)["reason"] == "transport close"
        tabs.wait_kind("disconnect", 1)
        mark = len(tabs.drain())
        missed = [emit(server, token, f"MISSED-{index}") for index in range(3)]
        reconnected = [tabs.wait_kind("connect", tab, timeout=WAIT) for tab in (0, 1)]
        after = emit(server, token, "AFTER")
        for tab in (0, 1):
            tabs.wait_for(lambda seen, tab=tab: seen["kind"] == "event" and seen["tab"] == tab
                          and seen["envelope"]["eventId"] == after)

        assert all(seen["recovered"] is True for seen in reconnected), reconnected
        for tab in (0, 1):
            received = [seen["envelope"]["eventId"] for seen in events_after(tabs, mark, tab)]
            assert received == [*missed, after], (tab, received)  # in order, each once, the new one last
            offsets = [seen["offset"] for seen in events_after(tabs, mark, tab)]
            assert all(isinstance(offset, str) for offset in offsets) and len(set(offsets)) == len(offsets)
    finally:
        tabs.close()


def test_a_tab_that_missed_more_than_the_log_keeps_connects_as_new(
    start_servers: Callable[..., list[LiveServer]], recovery_config: dict[str, Any]
) -> None:
    [server] = start_servers({**recovery_config, "DASHBOARD_WS_RECOVERY_MAX_EVENTS": 2}, 1)
    token = server.token(new_user())
    tabs = NodeTabs(server.url, token)
    try:
        tabs.wait_connected()
        emit(server, token, "BEFORE")
        tabs.wait_kind("event", 0)
        server.request("POST", "/api/test/blip", token)
        tabs.wait_kind("disconnect", 0)
        mark = len(tabs.drain())
        for index in range(3):  # one more than the log keeps: the first of them is gone
            emit(server, token, f"MISSED-{index}")
        assert tabs.wait_kind("connect", 0, timeout=WAIT)["recovered"] is False
        after = emit(server, token, "AFTER")
        tabs.wait_for(lambda seen: seen["kind"] == "event" and seen["envelope"]["eventId"] == after)
        assert [seen["envelope"]["eventId"] for seen in events_after(tabs, mark)] == [after]  # the page re-fetches
    finally:
        tabs.close()


def raw_connect(server: LiveServer, auth: dict[str, Any]) -> tuple[websocket.WebSocket, dict[str, Any], list[str]]:
    """A session connected to /dashboard by hand with ``auth``: the CONNECT reply's data, and the frames that
    came before it (the replayed events)."""
    ws = websocket.create_connection(f"ws://{urlsplit(server.url).netloc}/socket.io/?EIO=4&transport=websocket",
                                     timeout=WAIT)
    assert ws.recv().startswith("0{")
    ws.send("40/dashboard," + json.dumps(auth))
    before = []
    while not (frame := ws.recv()).startswith("40/dashboard,"):
        before.append(frame)
    return ws, json.loads(frame.removeprefix("40/dashboard,")), before


def test_another_users_pid_recovers_nothing_and_stays_its_owners(
    start_servers: Callable[..., list[LiveServer]], recovery_config: dict[str, Any]
) -> None:
    [server] = start_servers(recovery_config, 1)
    alice, bob = new_user(), new_user()
    alice_token, bob_token = server.token(alice), server.token(bob)
    alice_ws, alice_reply, _ = raw_connect(server, {"token": alice_token})
    pid = alice_reply["pid"]
    emit(server, alice_token, "FOR-ALICE")
    offset = json.loads(alice_ws.recv().removeprefix("42/dashboard,"))[-1]  # her event, then its offset
    alice_ws.close()
    missed = emit(server, alice_token, "MISSED-BY-ALICE")

    bob_ws, bob_reply, replayed = raw_connect(server, {"token": bob_token, "pid": pid, "offset": "0-0"})
    try:
        assert bob_reply["pid"] != pid and replayed == []  # a new connection: nothing of Alice's
        bob_event = emit(server, bob_token, "FOR-BOB")
        frame = bob_ws.recv()  # the next frame is his own new event
        assert frame.startswith("42/dashboard,") and bob_event in frame and "ALICE" not in frame
    finally:
        bob_ws.close()

    alice_ws, alice_reply, replayed = raw_connect(server, {"token": alice_token, "pid": pid, "offset": offset})
    try:
        assert alice_reply["pid"] == pid  # still hers to resume, with what she missed
        assert [json.loads(frame.removeprefix("42/dashboard,"))[1]["eventId"] for frame in replayed] == [missed]
    finally:
        alice_ws.close()


def test_a_tab_recovers_on_another_process_after_a_drain(
    start_servers: Callable[..., list[LiveServer]], async_mode: str, shared_redis: str, tmp_path: Path
) -> None:
    """A deploy behind nginx (B as A's backup): SIGTERM drains A, the tab reconnects to B by itself, and B
    replays from the Redis log what was emitted to the user meanwhile, then sends what comes after."""
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NOT_INSTALLED)
    config = {**RECOVERY, "DASHBOARD_WS_MESSAGE_QUEUE": shared_redis, "DASHBOARD_WS_CHANNEL": private_channel(),
              "DASHBOARD_WS_SOCKETIO_OPTIONS": {"transports": ["websocket"]},
              "DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": 1.0,
              "DASHBOARD_WS_METRICS_PATH": "/metrics"}
    a, b = start_servers(config, 2, run=async_mode != "threading")
    port, prefix = free_port(), tmp_path / "nginx"
    upstreams = [a.url.removeprefix("http://"), b.url.removeprefix("http://") + " backup"]
    conf = with_upstreams(NGINX_CONF.read_text(encoding="utf-8"), port, upstreams, prefix)
    sticky = conf.index("upstream dashboard_app_sticky {")
    proxy = NginxProxy(conf[:sticky] + conf[sticky:].replace(" backup;", ";", 1), port, prefix)
    token = b.token(new_user())
    tabs: NodeTabs | None = None
    try:
        proxy.start(nginx, "/api/health", START_TIMEOUT)
        tabs = NodeTabs(proxy.url, token)
        tabs.wait_connected()
        assert a.metric("dashboard_ws_sockets") == 1
        first = emit(b, token, "BEFORE")
        assert tabs.wait_kind("event", 0)["envelope"]["eventId"] == first

        a.signal(signal.SIGTERM)
        tabs.wait_kind("disconnect", 0, timeout=WAIT)
        mark = len(tabs.drain())
        missed = [emit(b, token, f"MISSED-{index}") for index in range(3)]
        assert tabs.wait_kind("connect", 0, timeout=WAIT)["recovered"] is True
        assert b.metric("dashboard_ws_sockets") == 1
        after = emit(b, token, "AFTER")
        tabs.wait_for(lambda seen: seen["kind"] == "event" and seen["envelope"]["eventId"] == after)
        assert [seen["envelope"]["eventId"] for seen in events_after(tabs, mark)] == [*missed, after]
        assert a.wait_exit(timeout=WAIT) == -signal.SIGTERM
    finally:
        if tabs is not None:
            tabs.close()
        proxy.stop(STOP_TIMEOUT)


def test_a_process_whose_subscription_went_silent_delivers_what_its_users_missed_from_the_log(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    """The process's Redis connections are black-holed (no reset) while another process emits to its user: once
    its PING goes unanswered and it has subscribed again, it reads the user's log and sends what the tab missed,
    in order and once, to the tab that never disconnected."""
    channel = private_channel()
    proxy = BlackHoleProxy(shared_redis)
    tabs: NodeTabs | None = None
    try:
        base = {**RECOVERY, "DASHBOARD_WS_CHANNEL": channel}
        [emitter] = start_servers({**base, "DASHBOARD_WS_MESSAGE_QUEUE": shared_redis}, 1)
        [server] = start_servers({**base, "DASHBOARD_WS_MESSAGE_QUEUE": proxy.url,
                                  "DASHBOARD_WS_QUEUE_HEALTH_INTERVAL": 1.0}, 1)
        token = emitter.token(new_user())
        tabs = NodeTabs(server.url, token)
        tabs.wait_connected()
        first = emit(emitter, token, "BEFORE")
        assert tabs.wait_kind("event", 0)["envelope"]["eventId"] == first
        mark, seen = server.log_mark(), len(tabs.drain())

        proxy.black_hole()
        missed = [emit(emitter, token, f"GAP-{index}") for index in range(3)]
        server.wait_for_log(r"queue_caught_up .*events=3", since=mark)
        after = emit(emitter, token, "AFTER")
        tabs.wait_for(lambda observed: observed["kind"] == "event" and observed["envelope"]["eventId"] == after)
        assert [observed["envelope"]["eventId"] for observed in events_after(tabs, seen)] == [*missed, after]
        assert not [observed for observed in tabs.drain()[seen:] if observed["kind"] == "disconnect"]
    finally:
        if tabs is not None:
            tabs.close()
        proxy.close()
