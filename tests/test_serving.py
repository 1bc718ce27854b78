"""flask_dashboard_ws/serving.py: compression declined on the Socket.IO path, and DashboardRealtime.run."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from flask_dashboard_ws.serving import BACKLOG, DeclineCompression, raise_open_files_limit
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
