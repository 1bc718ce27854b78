"""The SIGTERM drain under the servers apps deploy with besides the project's own: gunicorn's workers (eventlet,
gevent with the extension's gevent-websocket worker, gthread for threading), and Flask-SocketIO's ``socketio.run``.

An orchestrator sends SIGTERM to gunicorn's master, which closes its listening socket, sends SIGTERM to its
workers and waits ``graceful_timeout`` for them before it kills them. The worker's SIGTERM handler is gunicorn's
(``Worker.init_signals`` runs before the app is loaded), so ``DASHBOARD_WS_DRAIN_ON_SIGTERM`` drains first and
hands the signal on: the worker stops accepting, waits for its requests, and exits; then the master exits 0.
Every gunicorn here is asked for a port of its own (``--bind 127.0.0.1:0``) and says which in its log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.integration.test_drain import dashboard_socket, frames_until_closed
from tests.live_server import (
    HTTP_TIMEOUT,
    REPO_ROOT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    LiveServer,
    new_user,
    stop_checking_logs,
)

pytestmark = pytest.mark.live

SOCKETS = 5
BUDGET = 2.0  # DASHBOARD_WS_DRAIN_TIMEOUT
GRACEFUL = 20  # gunicorn's --graceful-timeout: well above the budget, so that a worker left to time out shows
# What gunicorn adds to the budget: its workers look at their ``alive`` flag once a second, then the master reaps.
EXIT_SLACK = 3.0
WAIT = 30.0


def gunicorn_version() -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version("gunicorn"))[:2])


def worker_options(async_mode: str) -> list[str]:
    """The worker Flask-SocketIO's deployment docs give for the async mode (``-w 1``: Socket.IO needs sticky
    sessions, which gunicorn's balancing between workers cannot give); skip the test when it is not installed."""
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed")
    if async_mode == "eventlet":
        if importlib.util.find_spec("gunicorn.workers.geventlet") is None:
            pytest.skip(f"gunicorn {version('gunicorn')} has no eventlet worker (removed in 26.0): "
                        "test it with gunicorn<26")
        return ["-k", "eventlet"]
    if async_mode == "gevent":
        if importlib.util.find_spec("geventwebsocket") is not None:  # engine.io then expects its handler
            return ["-k", "flask_dashboard_ws.gunicorn_worker.GeventWebSocketWorker"]  # with the gate's hook
        return ["-k", "gevent"]  # simple-websocket
    return ["--threads", "20"]  # gthread: one thread per WebSocket (simple-websocket)


class GunicornServer(LiveServer):
    """``gunicorn -w 1 'tests.server_app:app_from_env()'`` in a subprocess of its own session, with the
    LiveServer's log, tokens and helpers. Access log off (gunicorn's default): it would show query strings."""

    def __init__(self, async_mode: str, config: dict[str, Any], log_path: Path, options: list[str]) -> None:
        super().__init__(async_mode, config, log_path)
        self.options = options

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "-w", "1", "--bind", "127.0.0.1:0",
                   "--graceful-timeout", str(GRACEFUL), *self.options]
        if gunicorn_version() >= (25, 1):  # else a control socket in $XDG_RUNTIME_DIR or ~/.gunicorn, shared
            command.append("--no-control-socket")
        command.append("tests.server_app:app_from_env()")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1",
               "DASHBOARD_WS_TEST_ASYNC_MODE": self.async_mode, "DASHBOARD_WS_TEST_CONFIG": json.dumps(self.config)}
        self._process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # its own process group: the workers too, for stop()
        )
        self._reader = threading.Thread(target=self._read_output, name="gunicorn-output", daemon=True)
        self._reader.start()
        try:
            line = self.wait_for_log(r"Listening at: http://127\.0\.0\.1:\d+", timeout=START_TIMEOUT, until_exit=True)
            if not line:
                raise RuntimeError(f"gunicorn exited before listening:\n{self.log}")
            self.port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
            self.url = f"http://127.0.0.1:{self.port}"
            self._wait_for_worker()
        except BaseException:
            self.stop()
            raise

    def _wait_for_worker(self) -> None:
        """The master listens before its worker has loaded the app: wait until the worker answers."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if requests.get(self.url + "/api/health", timeout=HTTP_TIMEOUT).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn's worker did not answer:\n{self.log}")
            time.sleep(0.05)  # a poll interval: the loop waits for the condition

    def stop(self) -> None:
        """SIGTERM to the master, as an orchestrator does; if it has not exited once its workers had their
        graceful_timeout, kill its whole process group (before reaping it, so that the group is still ours)."""
        self.close_sockets()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=GRACEFUL + STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self._process.stdout.close()


@pytest.fixture
def start_gunicorn(async_mode: str, tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], GunicornServer]]:
    """``start_gunicorn(config)``: gunicorn with one worker of the async mode under test, stopped when the test
    ends; then no token the test made may be in its log."""
    started: list[GunicornServer] = []
    options = worker_options(async_mode)

    def start(config: dict[str, Any]) -> GunicornServer:
        server = GunicornServer(async_mode, config, tmp_path / f"gunicorn-{len(started) + 1}.log", options)
        started.append(server)
        server.start()
        return server

    yield start
    stop_checking_logs(started)


def watch(sockets: list[websocket.WebSocket]) -> tuple[list[threading.Thread], list[tuple[list[str], float]]]:
    """A thread per socket that records what the server sends until it closes the connection."""
    seen: list[tuple[list[str], float]] = []
    watchers = [threading.Thread(target=lambda ws=ws: seen.append(frames_until_closed(ws))) for ws in sockets]
    for watcher in watchers:
        watcher.start()
    return watchers, seen


def join_all(watchers: list[threading.Thread], sockets: list[websocket.WebSocket]) -> None:
    for watcher in watchers:
        watcher.join(timeout=WAIT)
    for ws in sockets:
        ws.shutdown()


def handshake_status(url: str) -> int:
    """The HTTP status a new WebSocket handshake gets (101 if it was upgraded: then it is closed at once)."""
    try:
        ws = websocket.create_connection(f"ws://{url.removeprefix('http://')}/socket.io/?EIO=4&transport=websocket",
                                         timeout=WAIT)
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    ws.close()
    return 101


def readiness_turned_503(url: str) -> bool:
    """Poll readiness until it answers 503; False if it answered 200 until the worker stopped listening."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=HTTP_TIMEOUT).status_code == 503:
                return True
        except requests.ConnectionError:
            return False
        time.sleep(0.02)  # a poll interval: the loop waits for the condition
    return False


def test_sigterm_to_gunicorn_drains_its_worker_then_gunicorn_exits_0(start_gunicorn) -> None:
    server = start_gunicorn({"DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": BUDGET,
                             "DASHBOARD_WS_READY_PATH": "/readyz"})
    token = server.token(new_user())
    sockets = [dashboard_socket(server.url, token) for _ in range(SOCKETS)]
    assert requests.get(server.url + "/readyz", timeout=HTTP_TIMEOUT).status_code == 200
    watchers, seen = watch(sockets)

    started = time.monotonic()
    server.signal(signal.SIGTERM)  # to the master, as an orchestrator does
    assert readiness_turned_503(server.url), server.log[-3000:]
    assert handshake_status(server.url) == 503  # the worker still listens meanwhile: a proxy retries elsewhere
    assert server.wait_exit(timeout=GRACEFUL + WAIT) == 0, server.log[-3000:]
    exited = time.monotonic() - started
    join_all(watchers, sockets)

    assert len(seen) == SOCKETS
    assert not [frame for frames, _ in seen for frame in frames if frame.startswith("41")], seen
    assert all(frames[-1:] == ["1"] for frames, _ in seen), seen  # engine.io's CLOSE, then the transport closed
    assert max(when for _, when in seen) - started <= BUDGET + 1.0
    log = server.log
    assert re.search(rf"drain_finished .*closed={SOCKETS} open=0", log), log[-3000:]
    assert exited <= BUDGET + EXIT_SLACK, f"gunicorn took {exited:.1f}s:\n{log[-3000:]}"  # not graceful_timeout
    assert "Worker exiting" in log and "SIGKILL" not in log and "graceful timeout" not in log, log[-3000:]


def test_sigterm_after_a_drain_ends_gunicorn_at_once(start_gunicorn) -> None:
    """A preStop hook drained the worker: the SIGTERM that follows stops it without a second drain, and its
    WebSocket requests have ended already (under eventlet too), so the worker does not wait out graceful_timeout."""
    server = start_gunicorn({"DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": 60.0})
    token = server.token(new_user())
    sockets = [dashboard_socket(server.url, token) for _ in range(SOCKETS)]
    watchers, seen = watch(sockets)
    report = server.request("POST", "/api/test/drain?timeout=1.0", token).json()
    assert report["closed"] == SOCKETS and report["open"] == 0, report
    join_all(watchers, sockets)

    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=GRACEFUL + WAIT) == 0, server.log[-3000:]
    assert time.monotonic() - started <= EXIT_SLACK, server.log[-3000:]
    assert len(seen) == SOCKETS and len(re.findall(r"drain_started", server.log)) == 1


def test_sigterm_drains_under_flask_socketio_run(async_mode: str, tmp_path: Path) -> None:
    """``socketio.run`` installs no SIGTERM handler (eventlet's and gevent's servers neither): the drain runs,
    then SIGTERM's default action ends the process."""
    if async_mode == "threading":
        pytest.skip("socketio.run serves threading with the Werkzeug development server")
    server = LiveServer(async_mode, {"DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": BUDGET},
                        tmp_path / "socketio-run.log", socketio_run=True)
    server.start()
    try:
        token = server.token(new_user())
        sockets = [dashboard_socket(server.url, token) for _ in range(SOCKETS)]
        watchers, seen = watch(sockets)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait_exit(timeout=BUDGET + WAIT) == -signal.SIGTERM
        assert time.monotonic() - started <= BUDGET + EXIT_SLACK
        join_all(watchers, sockets)
        assert len(seen) == SOCKETS and not [frame for frames, _ in seen for frame in frames if frame.startswith("41")]
        assert re.search(rf"drain_finished .*closed={SOCKETS} open=0", server.log), server.log[-3000:]
    finally:
        server.stop()
    assert not server.leaked_tokens()
