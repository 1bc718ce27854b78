"""flask_dashboard_ws.sockets against a real server: in-place sends that fall back to a writer, and the heartbeat.

Raw WebSockets (websocket-client) speak engine.io by hand, so that a test decides when the client reads and
whether it answers pings. Every async mode runs them: threading keeps engine.io's writer, and must behave the same.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import websocket

from tests.integration.test_limits import PollingSession, RawSession
from tests.live_server import EVENT_TIMEOUT, HTTP_TIMEOUT, NAMESPACE, new_user

pytestmark = pytest.mark.live

# The smallest ping interval engine.io can advertise (it sends whole seconds), and a short timeout.
FAST_PINGS = {"DASHBOARD_WS_SOCKETIO_OPTIONS": {"ping_interval": 1, "ping_timeout": 1}}


def kernel_buffers() -> int:
    """The most a loopback connection can hold in its sender's and receiver's kernel buffers together."""
    sizes = []
    for name in ("tcp_wmem", "tcp_rmem"):
        with open(f"/proc/sys/net/ipv4/{name}") as limits:
            sizes.append(int(limits.read().split()[2]))
    return sum(sizes)


def test_a_burst_larger_than_the_kernel_buffers_arrives_whole_and_in_order(start_server: Any, async_mode: str) -> None:
    """The first events are written in place; once the socket would block, the rest wait and go out in order.

    The queue they waited in is released once it is empty (threading keeps engine.io's).
    """
    size = 50_000
    count = 2 * kernel_buffers() // size + 1
    server = start_server({"DASHBOARD_WS_MAX_OUTGOING_BYTES": 4 * count * size})
    token = server.token(new_user())
    reader = RawSession(server)
    assert reader.connect(token).startswith(f"40{NAMESPACE},")
    response = requests.post(f"{server.url}/api/bursts?count={count}&size={size}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200  # the view returned: the server did not wait for this client to read
    indexes = []
    while len(indexes) < count:
        packet = reader.next_packet()
        assert packet.startswith(f'42{NAMESPACE},["dashboard:error"'), packet[:80]
        message = json.loads(packet[len(f"42{NAMESPACE},"):])[1]["payload"]["message"]
        indexes.append(int(message[:8]))
    assert indexes == list(range(count))
    if async_mode != "threading":  # which keeps engine.io's queue
        server.wait_for_state(queues=0)


def test_a_socket_that_answers_pings_is_kept(start_server: Any) -> None:
    server = start_server(FAST_PINGS)
    token = server.token(new_user())
    session = RawSession(server)
    assert session.connect(token).startswith(f"40{NAMESPACE},")
    pings = 0
    deadline = time.monotonic() + EVENT_TIMEOUT
    while pings < 4 and time.monotonic() < deadline:  # 4 s of pings: two whole ping cycles past the timeout
        assert session.ws.recv() == "2"
        session.ws.send("3")
        pings += 1
    assert pings == 4
    event = server.emitted("POST", "/api/dashboard/errors", token, {"code": "X", "message": "still here"})
    assert json.loads(session.next_packet()[len(f"42{NAMESPACE},"):]) == ["dashboard:error", event]


def test_a_socket_that_does_not_answer_a_ping_is_closed_after_the_ping_timeout(start_server: Any) -> None:
    server = start_server(FAST_PINGS)
    session = RawSession(server)
    assert session.connect(server.token(new_user())).startswith(f"40{NAMESPACE},")
    assert session.ws.recv() == "2"
    pinged = time.monotonic()
    session.ws.settimeout(EVENT_TIMEOUT)
    try:
        while session.ws.recv():  # engine.io sends nothing more: at a ping timeout its CLOSE packet is not sent
            pass
    except (websocket.WebSocketConnectionClosedException, OSError):
        pass  # the close frame, or the connection dropped
    assert time.monotonic() - pinged >= 0.9  # not before the 1 s ping timeout (a tick of slack)
    server.wait_for_state(connections=0, sessions=0)


def test_a_polling_session_that_stops_polling_is_closed_and_forgotten(start_server: Any) -> None:
    """No request will come to remove it: the heartbeat closes it, as engine.io's service task did."""
    server = start_server({**FAST_PINGS, "DASHBOARD_WS_AUTH_TIMEOUT": 600.0})  # so that only the heartbeat closes it
    server.wait_for_state(sessions=0)
    PollingSession(server)  # it opens, and never polls again
    assert server.state()["sessions"] == 1
    server.wait_for_state(sessions=0)



def test_a_websocket_is_sent_on_without_nagles_algorithm(start_server: Any, async_mode: str) -> None:
    """Else a small event waits for the ACK of the one before it, which the client may delay by 40 ms."""
    server = start_server()
    session = RawSession(server)
    assert session.connect(server.token(new_user())).startswith(f"40{NAMESPACE},")
    # threading: simple-websocket's socket keeps engine.io's writer, so the state sees no socket written in place
    assert server.state()["no_delay"] == ([] if async_mode == "threading" else [1])


def test_an_open_websocket_written_in_place_holds_no_queue(start_server: Any, async_mode: str) -> None:
    """Once the OPEN packet is out nothing waits, and the socket releases its queue (about 2.5 KB)."""
    server = start_server()
    token = server.token(new_user())
    session = RawSession(server)
    assert session.connect(token).startswith(f"40{NAMESPACE},")
    event = server.emitted("POST", "/api/dashboard/errors", token, {"code": "X", "message": "sent in place"})
    assert json.loads(session.next_packet()[len(f"42{NAMESPACE},"):]) == ["dashboard:error", event]
    state = server.state()  # the server may hold earlier tests' sockets too
    assert state["queues"] == (state["sessions"] if async_mode == "threading" else 0)  # threading keeps engine.io's


def test_a_stalled_client_is_let_go_and_its_reader_ends(start_server: Any) -> None:
    """A client that neither reads nor answers pings, with a write blocked on it: the heartbeat closes the session,
    the blocked write gives up after a ping cycle, and the green thread reading the connection, which waits
    without a timeout, is woken: the request ends and engine.io forgets the session."""
    size = 50_000
    count = 2 * kernel_buffers() // size + 1
    server = start_server({**FAST_PINGS, "DASHBOARD_WS_MAX_OUTGOING_BYTES": 4 * count * size + 1})
    token = server.token(new_user())
    stalled = RawSession(server)
    assert stalled.connect(token).startswith(f"40{NAMESPACE},")
    response = requests.post(f"{server.url}/api/bursts?count={count}&size={size}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    port = stalled.ws.sock.getsockname()[1]
    assert port in server.state()["tcp_peers"]
    deadline = time.monotonic() + EVENT_TIMEOUT
    while port in server.state()["tcp_peers"]:  # the server closes its socket once the request has ended
        assert time.monotonic() < deadline, "the server still holds the stalled client's connection"
        time.sleep(0.05)
    server.wait_for_state(held=0, sessions=0, connections=0)
    stalled.close()


def test_a_session_whose_websocket_ended_is_forgotten(start_server: Any) -> None:
    """engine.io's service task removed a closed session that its request did not (simple-websocket raises past
    that removal under Werkzeug); the heartbeat does, by its next ping at the latest."""
    server = start_server(FAST_PINGS)
    session = RawSession(server)
    assert session.connect(server.token(new_user())).startswith(f"40{NAMESPACE},")
    session.close()
    server.wait_for_state(held=0, sessions=0)
