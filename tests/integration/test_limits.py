"""The limits of flask_dashboard_ws.limits and the connect-time caps, against a real server process.

Protocol-level cases speak engine.io and Socket.IO by hand over a raw WebSocket (websocket-client) or over
HTTP long-polling (requests), as a hostile client would; the rest use python-socketio's client.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import websocket

from tests.live_server import DISCONNECTED, EVENT_TIMEOUT, HTTP_TIMEOUT, NAMESPACE, LiveServer, new_user

pytestmark = pytest.mark.live

SHORT_AUTH_TIMEOUT = {"DASHBOARD_WS_AUTH_TIMEOUT": 1.0}
# For the tests that open thousands of sessions from one address as fast as they can.
NO_HANDSHAKE_RATE = {"DASHBOARD_WS_HANDSHAKE_RATE": 1e6, "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1e6}

_open: list[Any] = []  # the raw sessions a test opened, closed when it ends


@pytest.fixture(autouse=True)
def close_raw_sessions() -> Any:
    yield
    while _open:
        _open.pop().close()


class RawSession:
    """An engine.io session over a WebSocket, driven packet by packet."""

    def __init__(self, server: LiveServer, headers: list[str] | None = None) -> None:
        url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(url, timeout=EVENT_TIMEOUT, header=headers or [])
        _open.append(self)
        opened = self.ws.recv()
        assert opened.startswith("0{"), opened
        self.sid = json.loads(opened[1:])["sid"]

    def send(self, packet: str | bytes) -> None:
        if isinstance(packet, bytes):
            self.ws.send_binary(packet)
        else:
            self.ws.send(packet)

    def connect(self, token: str | None, namespace: str = NAMESPACE) -> str:
        """Send a Socket.IO CONNECT and return the server's answer (CONNECT or CONNECT_ERROR packet)."""
        prefix = "40" if namespace == "/" else f"40{namespace},"
        self.send(prefix + ("" if token is None else json.dumps({"token": token})))
        return self.next_packet()

    def next_packet(self) -> str:
        """The next packet other than a ping (answered), or ``""`` once the server has closed the WebSocket."""
        while True:
            try:
                packet = self.ws.recv()
            except (websocket.WebSocketConnectionClosedException, OSError):
                packet = ""
            if not packet:  # the server's close frame, or the connection dropped
                self.close()
                return ""
            if packet == "2":
                self.ws.send("3")
                continue
            return packet

    def packets_until_closed(self) -> list[str]:
        packets = []
        while packet := self.next_packet():
            packets.append(packet)
        return packets

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() returns early once the server's close frame has been read


class PollingSession:
    """An engine.io session over HTTP long-polling, driven request by request."""

    def __init__(self, server: LiveServer) -> None:
        self.url = server.url + "/socket.io/?EIO=4&transport=polling"
        self.http = requests.Session()
        _open.append(self)
        opened = self.http.get(self.url, timeout=HTTP_TIMEOUT).text
        self.sid = json.loads(opened[opened.index("{"):])["sid"]

    def post(self, *packets: str) -> None:
        """Send ``packets`` in one payload (engine.io separates them with a record separator)."""
        with requests.Session() as http:  # a connection of its own: another POST may be waiting
            http.post(f"{self.url}&sid={self.sid}", data="\x1e".join(packets), timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def idle_server(start_server: Any) -> LiveServer:
    """A server without handshake rates, once the sockets of earlier tests are gone (its counts start at zero)."""
    server = start_server(NO_HANDSHAKE_RATE)
    server.wait_for_state(connections=0, pending=0, expiry=0)
    return server


# Sessions that do not authenticate


def limited(server: LiveServer, reason: str) -> int:
    """How many times the server has applied the limit ``reason`` (logged at most once per 10 s, so counted)."""
    return server.state()["limited"].get(reason, 0)


def test_a_session_that_never_connects_is_closed_after_the_auth_timeout(start_server: Any) -> None:
    server = start_server(SHORT_AUTH_TIMEOUT)
    before = limited(server, "auth_timeout")
    session = RawSession(server)
    started = time.monotonic()
    assert session.packets_until_closed() == ["1"]  # engine.io CLOSE, then the WebSocket closes
    assert time.monotonic() - started >= 0.9
    assert limited(server, "auth_timeout") == before + 1


def test_a_session_that_connects_in_time_is_kept(start_server: Any) -> None:
    server = start_server(SHORT_AUTH_TIMEOUT)
    user = new_user()
    tab = server.connect(auth=server.token(user))
    deadline_passed = time.monotonic() + 2.5
    server.wait_for_state(pending=0)
    while time.monotonic() < deadline_passed:  # past the 1 s deadline (and the watcher's 1 s tick)
        assert tab.client.connected
        time.sleep(0.1)
    assert tab.client.connected


def test_a_refused_connect_closes_the_session(live_server: LiveServer) -> None:
    before = limited(live_server, "connect_refused")
    session = RawSession(live_server)
    answer = session.connect(live_server.forge(key="not-the-secret-" * 4))
    assert answer.startswith(f"44{NAMESPACE},")
    assert json.loads(answer.split(",", 1)[1])["data"] == {"code": "AUTH_FAILED", "reason": "token_invalid"}
    assert session.packets_until_closed() == ["1"]
    assert limited(live_server, "connect_refused") == before + 1


def test_the_default_namespace_accepts_no_connection(live_server: LiveServer) -> None:
    session = RawSession(live_server)
    answer = session.connect(None, namespace="/")
    assert answer.startswith("44"), answer
    assert session.packets_until_closed() == ["1"]


# What an authenticated socket may send


@pytest.mark.parametrize("packet", [f'451-{NAMESPACE},["upload",{{"_placeholder":true,"num":0}}]', b"\x00" * 1000],
                         ids=["binary-event", "attachment"])
def test_binary_packets_are_refused_without_buffering(live_server: LiveServer, packet: str | bytes) -> None:
    before = limited(live_server, "binary_packet")
    session = RawSession(live_server)
    assert session.connect(live_server.token(new_user())).startswith(f"40{NAMESPACE},")
    session.send(packet)
    assert session.packets_until_closed() in ([], ["1"])
    # Counted each time; logged at most once per reason and 10 s, so the line may have gone out already.
    assert limited(live_server, "binary_packet") == before + 1


def test_malformed_packets_close_the_session_with_one_line_and_no_traceback(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_AUTH_TIMEOUT": 9.0})  # a server of its own: its log starts empty
    mark = server.log_mark()
    sessions = [RawSession(server) for _ in range(3)]
    for session in sessions:
        session.send(f"40{NAMESPACE},{{not json")
        assert session.packets_until_closed() in ([], ["1"])
    assert limited(server, "malformed_packet") == 3
    line = server.wait_for_log(r"session_limited", since=mark)
    assert "reason=malformed_packet" in line and f"eio_sid={sessions[0].sid}" in line
    log = server.log_since(mark)
    assert log.count("session_limited") == 1  # the next two within 10 s are counted, not logged
    assert "Traceback" not in log


def test_a_session_closed_by_a_limit_is_no_longer_read(live_server: LiveServer) -> None:
    """A client that goes on sending after the server closed its session must not keep the server reading."""
    session = RawSession(live_server)
    assert session.connect(live_server.token(new_user())).startswith(f"40{NAMESPACE},")
    sent = 0
    with pytest.raises(OSError):  # the server has closed the connection: writes fail (EPIPE, ECONNRESET)
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:  # well past the 10 client events that close the session
            session.ws.send(f'42{NAMESPACE},["flood",{sent}]')
            sent += 1
    assert sent > 10


def test_a_message_over_the_inbound_limit_closes_the_session(live_server: LiveServer) -> None:
    session = RawSession(live_server)
    session.send(f"40{NAMESPACE}," + json.dumps({"token": "x" * 20_000}))
    assert session.packets_until_closed() in ([], ["1"])


# New sessions


def test_a_refused_polling_handshake_gets_429_before_engineio_opens_anything(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1})
    url = server.url + "/socket.io/?EIO=4&transport=polling"
    sessions = server.state()["sessions"]
    with ThreadPoolExecutor(max_workers=20) as pool:  # at once: one at hand, one a second later, the rest refused
        answers = list(pool.map(lambda _: requests.get(url, timeout=HTTP_TIMEOUT), range(20)))
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all(a.headers["Retry-After"] == "1" for a in refused)
    assert server.state()["sessions"] == sessions + len(answers) - len(refused)
    # A session id is not a handshake: an open session's requests are never refused.
    assert requests.get(url + "&sid=not-a-session", timeout=HTTP_TIMEOUT).status_code == 400  # engine.io's answer


OPEN, REFUSED = "open", "refused"


def handshake(server: LiveServer, headers: list[str] | None = None) -> str:
    """Open a session and close it: ``OPEN`` if engine.io opened it, ``REFUSED`` if the server answered HTTP 429
    (or, under gevent-websocket, which upgrades before the app runs, closed the WebSocket without an OPEN packet)."""
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(url, timeout=EVENT_TIMEOUT, header=headers or [])
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 429
        return REFUSED
    try:
        opened = ws.recv()
    except (websocket.WebSocketConnectionClosedException, OSError):
        opened = ""
    finally:
        ws.close()
        ws.shutdown()
    return OPEN if opened.startswith("0{") else REFUSED


def burst(server: LiveServer, headers: list[list[str]]) -> list[str]:
    """Open one session per entry of ``headers`` at once, from as many threads: the outcomes, in order."""
    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        return list(pool.map(lambda h: handshake(server, h), headers))


def test_handshakes_from_one_address_are_paced_to_the_rate(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 2})
    before = limited(server, "address_rate")
    started = time.monotonic()
    outcomes = [handshake(server) for _ in range(6)]  # one after another: each waits for its turn
    assert outcomes == [OPEN] * 6
    # A burst of two, then one turn every half second: the sixth cannot open before two seconds have passed.
    assert time.monotonic() - started >= 2.0
    assert limited(server, "address_rate") == before


def test_handshakes_from_one_address_beyond_a_seconds_wait_are_refused(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1})
    before = limited(server, "address_rate")
    outcomes = burst(server, [[]] * 30)  # at once: one at hand, one a second later, the rest refused
    assert OPEN in outcomes and REFUSED in outcomes
    assert limited(server, "address_rate") == before + outcomes.count(REFUSED)


def test_behind_trusted_proxies_each_forwarded_address_has_its_own_rate(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1, "DASHBOARD_WS_TRUSTED_PROXIES": 1})
    assert REFUSED in burst(server, [["X-Forwarded-For: 198.51.100.1"]] * 20)
    assert handshake(server, ["X-Forwarded-For: 198.51.100.2"]) == OPEN  # another client behind the same proxy
    # Only the entry the trusted proxy added counts: a client cannot pick its address by prepending one.
    assert REFUSED in burst(server, [[f"X-Forwarded-For: 203.0.113.{n}, 198.51.100.3"] for n in range(20)])


def test_all_handshakes_of_a_process_are_rate_limited(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_HANDSHAKE_RATE": 1, "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 1000})
    before = limited(server, "handshake_rate")
    outcomes = burst(server, [[]] * 30)
    assert OPEN in outcomes and REFUSED in outcomes
    assert limited(server, "handshake_rate") == before + outcomes.count(REFUSED)


def test_sessions_not_yet_authenticated_are_capped(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_MAX_PENDING_SESSIONS": 3, **NO_HANDSHAKE_RATE})
    server.wait_for_state(pending=0)
    waiting = [RawSession(server) for _ in range(3)]
    assert handshake(server) == REFUSED
    assert waiting[0].connect(server.token(new_user())).startswith(f"40{NAMESPACE},")
    server.wait_for_state(pending=2)
    assert handshake(server) == OPEN  # a slot is free again


# Leaks


def test_close_then_connect_in_one_polling_payload_leaves_nothing_behind(idle_server: LiveServer) -> None:
    server = idle_server
    connect = f"40{NAMESPACE}," + json.dumps({"token": server.token(new_user())})

    def close_then_connect(_: int) -> None:
        session = PollingSession(server)
        session.post("1", connect)
        session.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(close_then_connect, range(2000)))
    final = server.wait_for_state(connections=0, pending=0, expiry=0, environ=0, user_rooms=0)
    assert final["sockets"].get(NAMESPACE, 0) == 0


def test_a_session_closed_during_a_slow_token_check_is_not_registered(idle_server: LiveServer) -> None:
    server = idle_server
    user = new_user()
    mark = server.log_mark()
    connect = f"40{NAMESPACE}," + json.dumps({"token": server.forge(sub=user, slowCheck=1.0)})

    def connect_then_close(_: int) -> None:
        session = PollingSession(server)
        with ThreadPoolExecutor(max_workers=1) as connecting:
            waiting = connecting.submit(session.post, connect)  # answered once the 1 s token check is over
            server.wait_for_log(r"connect_attempt.*remote_addr", since=mark)
            session.post("1")  # engine.io CLOSE while the check waits
            waiting.result()
        session.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(connect_then_close, range(40)))
    server.wait_for_log(r"connect_abandoned", since=mark)
    server.wait_for_state(connections=0, expiry=0, environ=0, user_rooms=0)
    assert not re.search(rf"\] connected\s.*user_id={user}", server.log_since(mark))


# Ending a user's sockets


def test_disconnect_user_ends_every_socket_of_that_user_only(live_server: LiveServer) -> None:
    user, other = new_user(), new_user()
    token = live_server.token(user)
    tabs = [live_server.connect(auth=token), live_server.connect(auth=live_server.token(user))]
    bystander = live_server.connect(auth=live_server.token(other))
    response = requests.post(live_server.url + "/api/logout?end_sockets=1", headers={"Authorization": f"Bearer {token}"},
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    for tab in tabs:
        name, envelope = tab.next_event()
        assert (name, envelope["payload"]) == ("dashboard:error", {"code": "SESSION_ENDED", "message": "Signed out."})
        assert tab.next_event()[0] == DISCONNECTED
    assert bystander.client.connected
    live_server.wait_for_state(expiry=live_server.state()["connections"])  # the ended sockets' entries are gone


# Per-user cap


def test_a_user_over_the_socket_cap_is_refused_with_its_own_code(start_server: Any) -> None:
    server = start_server({"DASHBOARD_WS_MAX_SOCKETS_PER_USER": 2})
    user = new_user()
    first = server.connect(auth=server.token(user))
    server.connect(auth=server.token(user))
    third = server.attempt(auth=server.token(user))
    assert not third.client.connected
    assert third.connect_error == {"message": "Too many connections", "data": {"code": "TOO_MANY_CONNECTIONS", "limit": 2}}
    first.client.disconnect()
    server.wait_for_state(connections=1)
    assert server.connect(auth=server.token(user)).client.connected  # a slot is free again


# Slow readers


def test_a_socket_that_stops_reading_is_closed_and_the_others_still_receive(live_server: LiveServer) -> None:
    user = new_user()
    token = live_server.token(user)
    mark = live_server.log_mark()
    stalled = RawSession(live_server)
    assert stalled.connect(token).startswith(f"40{NAMESPACE},")
    reader_token = live_server.token(new_user())
    reader = live_server.connect(auth=reader_token)
    # 40 MB for the stalled socket: more than the kernel's socket buffers and the 1 MiB limit together.
    for _ in range(20):
        response = requests.post(live_server.url + "/api/bursts?count=40&size=50000",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200
        if "reason=slow_reader" in live_server.log_since(mark):
            break
    assert "reason=slow_reader" in live_server.wait_for_log(rf"session_limited.*eio_sid={stalled.sid}", since=mark)
    stalled.close()
    later = live_server.emitted("POST", "/api/dashboard/errors", reader_token, {"code": "X", "message": "y"})
    assert reader.next_event() == ("dashboard:error", later)


# Compression


@pytest.mark.parametrize("config", [{}, {"DASHBOARD_WS_COMPRESSION": True}], ids=["default", "compression-on"])
def test_permessage_deflate_is_declined_unless_turned_on(start_server: Any, config: dict[str, Any]) -> None:
    server = start_server(config)
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    # What browsers and the official client offer; websocket-client itself cannot inflate, so nothing is read.
    ws = websocket.create_connection(url, timeout=EVENT_TIMEOUT,
                                     header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    accepted = ws.getheaders().get("sec-websocket-extensions")
    ws.close()
    if not config or server.async_mode == "gevent":  # gevent-websocket never accepts an extension
        assert accepted is None
    else:
        assert accepted is not None and "permessage-deflate" in accepted
