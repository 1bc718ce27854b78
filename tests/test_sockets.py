"""flask_dashboard_ws.sockets: the frame written in place, and the heartbeat's schedule, on engine.io's real sockets.

The live behaviour (in-place sends falling back to a writer, pings and ping timeouts over real WebSockets in
every async mode) is in tests/integration/test_sockets.py.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import engineio
import pytest
from engineio import packet as eio_packet
from engineio.socket import Socket

from flask_dashboard_ws.sockets import CLOSE_FRAME, HEARTBEAT_TICK, Heartbeat, LeanSocket, adopt, frame


def eventlet_frame(message: str | bytes, **kwargs: Any) -> bytes:
    """The frame eventlet's own WebSocket builds for ``message`` (a server's: unmasked, no extension)."""
    from eventlet.websocket import RFC6455WebSocket

    left, right = socket.socketpair()
    try:
        return RFC6455WebSocket(left, {}, version=13)._pack_message(message, **kwargs)
    finally:
        left.close()
        right.close()


@pytest.mark.parametrize("size", [0, 1, 124, 125, 126, 65534, 65535, 65536, 70000])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_frame_is_what_eventlets_websocket_would_send(size: int, binary: bool) -> None:
    data: str | bytes = b"\xff" * size if binary else "é" * (size // 2) + "x" * (size % 2)
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data)
    assert frame(pkt) == eventlet_frame(pkt.encode())


def test_the_close_frame_is_eventlets_without_a_status() -> None:
    assert CLOSE_FRAME == eventlet_frame("", control_code=8)


def test_a_packet_is_framed_once_for_all_its_recipients() -> None:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, '2/dashboard,["dashboard:error",{}]')
    assert frame(pkt) is frame(pkt)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    """engine.io's server, pinging every 25 s with a 20 s timeout; background tasks are recorded, not started."""
    eio = engineio.Server(async_mode="threading", ping_interval=25, ping_timeout=20)
    eio.tasks = []
    monkeypatch.setattr(eio, "start_background_task", lambda target, *args: eio.tasks.append(target) or target)
    return eio


def open_sockets(server: Any, heartbeat: Heartbeat, count: int) -> list[LeanSocket]:
    """``count`` sockets as engine.io opens them: created, adopted on connect, then ``schedule_ping``."""
    sockets = []
    for index in range(count):
        sock = Socket(server, f"sid{index}")
        server.sockets[sock.sid] = sock
        adopt(sock, heartbeat)
        sock.schedule_ping()
        sockets.append(sock)
    return sockets


def queued(sock: Socket) -> list[int | None]:
    """The types of the packets queued for ``sock`` (None: the end of the queue, after a close)."""
    types = []
    while not sock.queue.empty():
        pkt = sock.queue.get_nowait()
        types.append(None if pkt is None else pkt.packet_type)
    return types


def test_one_task_pings_every_socket_when_due_and_closes_those_whose_pong_is_late(server: Any) -> None:
    heartbeat = Heartbeat(server)
    start = time.monotonic()
    sockets = open_sockets(server, heartbeat, 100)
    assert all(type(sock) is LeanSocket for sock in sockets)
    assert server.tasks == [heartbeat._run]  # one task for all of them

    assert heartbeat._beat(start) == pytest.approx(25, abs=1)  # nothing due: it sleeps until the first ping
    assert all(queued(sock) == [] for sock in sockets)
    heartbeat._beat(start + 25.5)
    assert all(queued(sock) == [eio_packet.PING] and sock.last_ping for sock in sockets)

    answering, silent = sockets[:50], sockets[50:]
    for sock in answering:
        sock.receive(eio_packet.Packet(eio_packet.PONG))  # engine.io calls schedule_ping: due 25 s from now
    heartbeat._beat(start + 30)
    assert all(queued(sock) == [eio_packet.PING] for sock in answering)  # pinged again
    assert not any(sock.closed for sock in sockets)
    heartbeat._beat(start + 46)  # the 20 s timeout has passed for the silent ones' first ping
    assert all(sock.closed for sock in silent)
    assert not any(sock.closed for sock in answering)  # their second ping is 16 s old
    assert set(server.sockets) == {sock.sid for sock in answering}  # polling sessions: nothing else removes them
    assert server.tasks == [heartbeat._run]


def test_the_heartbeat_sleeps_at_least_a_tick(server: Any) -> None:
    heartbeat = Heartbeat(server)
    start = time.monotonic()
    open_sockets(server, heartbeat, 2)
    assert heartbeat._beat(start + 24.999) == HEARTBEAT_TICK


def test_a_socket_closed_before_its_ping_is_not_pinged(server: Any) -> None:
    heartbeat = Heartbeat(server)
    start = time.monotonic()
    (sock,) = open_sockets(server, heartbeat, 1)
    sock.close(wait=False, abort=True)
    assert queued(sock) == [None]
    heartbeat._beat(start + 26)
    assert queued(sock) == []


def test_a_closed_session_the_server_still_holds_is_forgotten_when_its_ping_is_due(server: Any) -> None:
    """As engine.io's service task: the request of its transport may never remove it (simple-websocket raises past
    engine.io's removal under Werkzeug and gunicorn; a polling client may not come back)."""
    heartbeat = Heartbeat(server)
    start = time.monotonic()
    closed, closing, open_ = open_sockets(server, heartbeat, 3)
    closed.close(wait=False, abort=True)
    closing.closing = True  # another thread is closing it
    heartbeat._beat(start + 26)
    assert set(server.sockets) == {closing.sid, open_.sid}
    open_.receive(eio_packet.Packet(eio_packet.PONG))
    closing.closed = True
    heartbeat._beat(start + 52)  # looked at again one ping interval later
    assert set(server.sockets) == {open_.sid}


def test_adopt_leaves_a_socket_of_another_class_alone(server: Any) -> None:
    class Custom(Socket):
        pass

    sock = Custom(server, "sid")
    adopt(sock, Heartbeat(server))
    assert type(sock) is Custom
