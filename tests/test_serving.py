"""flask_dashboard_ws/serving.py: compression declined on the Socket.IO path, and DashboardRealtime.run."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flask_dashboard_ws.serving import (
    BACKLOG,
    CONNECTION_BUFFER,
    DeclineCompression,
    eventlet_protocol,
    gevent_handler,
    raise_open_files_limit,
)
from tests.live_server import LiveServer, new_user

OFFER = "permessage-deflate; client_max_window_bits"


def seen_by_app(path: str, path_prefix: str = "socket.io") -> dict[str, str]:
    seen: dict[str, str] = {}

    def app(environ, start_response):
        seen.update(environ)
        return []

    DeclineCompression(app, path_prefix)({"PATH_INFO": path, "HTTP_SEC_WEBSOCKET_EXTENSIONS": OFFER}, None)
    return seen


def test_the_offer_is_hidden_on_the_socketio_path_only():
    assert "HTTP_SEC_WEBSOCKET_EXTENSIONS" not in seen_by_app("/socket.io/")
    assert "HTTP_SEC_WEBSOCKET_EXTENSIONS" not in seen_by_app("/live/", path_prefix="/live/")
    assert seen_by_app("/chat/ws")["HTTP_SEC_WEBSOCKET_EXTENSIONS"] == OFFER  # the app's own WebSockets keep it


def test_the_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        limit = raise_open_files_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit
        assert limit == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_eventlets_protocol_buffers_a_connection_in_small_buffers():
    assert eventlet_protocol().rbufsize == eventlet_protocol().wbufsize == CONNECTION_BUFFER


def test_gevents_handler_reads_a_connection_through_a_small_buffer():
    """``sys.getsizeof`` of a buffered file counts its buffer: gevent's own handler holds 8 KB more."""
    pytest.importorskip("geventwebsocket")
    import gevent.socket
    from geventwebsocket.handler import WebSocketHandler

    left, right = socket.socketpair()
    with left, right:
        sock = gevent.socket.socket(fileno=left.detach())
        small = gevent_handler()(sock, ("127.0.0.1", 1), None)
        stock = WebSocketHandler(sock, ("127.0.0.1", 1), None)
        assert sys.getsizeof(stock.rfile) - sys.getsizeof(small.rfile) == 8192 - CONNECTION_BUFFER
        right.sendall(b"GET / HTTP/1.1\r\n")
        assert small.rfile.readline() == b"GET / HTTP/1.1\r\n"
        sock.close()


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port`` (``ss`` shows it as Send-Q)."""
    output = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(output.split()[2])


@pytest.mark.live
@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_run_serves_with_a_deep_listen_backlog(mode: str, tmp_path: Path) -> None:
    pytest.importorskip(mode)
    server = LiveServer(mode, {}, tmp_path / "server.log", run=True)
    server.start()
    try:
        assert listen_backlog(server.port) == min(BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
        user = new_user()
        assert server.connect(auth=server.token(user)).client.connected
        server.close_sockets()
    finally:
        server.stop()
