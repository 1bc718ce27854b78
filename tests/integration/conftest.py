"""Fixtures for the live-server tests: real server processes in each async mode under test.

``DASHBOARD_WS_TEST_ASYNC_MODES`` (comma-separated; default ``threading,eventlet``) chooses the modes;
every live test runs once per mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer, ServerPool, stop_checking_logs

KNOWN_MODES = ("threading", "eventlet", "gevent")
ASYNC_MODES = [mode.strip() for mode in os.environ.get("DASHBOARD_WS_TEST_ASYNC_MODES", "threading,eventlet").split(",") if mode.strip()]
_unknown = sorted(set(ASYNC_MODES) - set(KNOWN_MODES))
if _unknown or not ASYNC_MODES:
    raise pytest.UsageError(f"DASHBOARD_WS_TEST_ASYNC_MODES: expected some of {', '.join(KNOWN_MODES)}, got {_unknown or 'nothing'}")


@pytest.fixture(scope="session", params=ASYNC_MODES)
def async_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server_pool(async_mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The servers of one async mode. At the end, once each has stopped and its whole log is in, no token
    any test made for it may appear in that log (the query-string source, tracebacks, anything)."""
    pool = ServerPool(async_mode, tmp_path_factory.mktemp(f"live-{async_mode}"))
    yield pool
    leaks = {str(server.log_path): server.leaked_tokens() for server in pool.stop_all()}
    leaks = {path: tokens for path, tokens in leaks.items() if tokens}
    if leaks:
        pytest.fail(f"tokens found in server logs: {leaks}")


@pytest.fixture
def start_server(server_pool: ServerPool) -> Iterator[Callable[..., LiveServer]]:
    """``start_server(config)``: the live server with those extra ``app.config`` values (JSON-able).

    Servers live for the whole session; the sockets a test opens are closed when it ends.
    """
    used: list[LiveServer] = []

    def start(config: dict[str, Any] | None = None) -> LiveServer:
        server = server_pool.get(config or {})
        used.append(server)
        return server

    yield start
    for server in used:
        server.close_sockets()


@pytest.fixture
def live_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """The server with the app's default config (tokens in the Authorization header only)."""
    return start_server()


@pytest.fixture
def start_servers(async_mode: str, tmp_path: Path) -> Iterator[Callable[..., list[LiveServer]]]:
    """``start_servers(config, count, run=False)``: that many server processes of the async mode under test,
    each on its own port (served by ``DashboardRealtime.run`` with ``run``), stopped when the test ends; then
    no token the test made may be in their logs."""
    started: list[LiveServer] = []

    def start(config: dict[str, Any], count: int = 2, run: bool = False) -> list[LiveServer]:
        servers = []
        for _ in range(count):
            server = LiveServer(async_mode, config, tmp_path / f"server-{len(started) + 1}.log", run)
            server.start()
            started.append(server)
            servers.append(server)
        return servers

    yield start
    stop_checking_logs(started)
