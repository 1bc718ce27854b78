"""Helpers for the live-server tests: a server subprocess, its log, tokens for it and Socket.IO clients.

Nothing here sleeps to synchronise: every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
import socketio
from flask_jwt_extended import create_access_token, create_refresh_token

from tests.server_app import JWT_SECRET, create_app

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "/dashboard"
DISCONNECTED = "<disconnected>"  # what DashboardSocket.next_event() gives once the socket is disconnected

# Deadlines, generous for a busy 2-core machine; waits end as soon as their condition holds.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
EVENT_TIMEOUT = 15.0
HTTP_TIMEOUT = 15.0


def new_user() -> str:
    """A user id no other test uses, so tests sharing a server cannot see each other's events."""
    return f"user-{uuid.uuid4().hex[:12]}"


def stop_checking_logs(servers: list[LiveServer]) -> None:
    """Stop ``servers``; then no token a test made for one may be in its log."""
    for server in servers:
        server.stop()
    leaks = {str(server.log_path): server.leaked_tokens() for server in servers if server.leaked_tokens()}
    assert not leaks, f"tokens found in server logs: {leaks}"


class LiveServer:
    """``python -m tests.serve`` in a subprocess; its output is kept in memory and in ``log_path``."""

    def __init__(self, async_mode: str, config: dict[str, Any], log_path: Path, run: bool = False,
                 socketio_run: bool = False) -> None:
        self.async_mode = async_mode
        self.run = run  # serve with DashboardRealtime.run, as the README's quick start does
        self.socketio_run = socketio_run  # serve with Flask-SocketIO's socketio.run
        self.config = config
        self.log_path = log_path
        self.url = ""
        self.tokens: list[str] = []  # every token a test made for this server, for the log check
        self._twin = create_app("threading", config)  # same JWT settings, to mint tokens in this process
        self._lines: list[str] = []
        self._output = threading.Condition()
        self._output_ended = False
        self._sockets: list[DashboardSocket] = []

    # The process

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.serve", "--mode", self.async_mode, "--config", json.dumps(self.config)]
        command += ["--run"] if self.run else []
        command += ["--socketio-run"] if self.socketio_run else []
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        self._process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read_output, name=f"server-output-{self.async_mode}", daemon=True)
        self._reader.start()
        try:
            line = self.wait_for_log(r"^PORT \d+$|\bserving\b.*\bport=\d+", timeout=START_TIMEOUT, until_exit=True)
        except BaseException:
            self.stop()
            raise
        if not line:
            self.stop()
            raise RuntimeError(f"the {self.async_mode} server exited before listening:\n{self.log}")
        self.port = int(re.search(r"(?:^PORT |\bport=)(\d+)", line).group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int) -> None:
        self._process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; its return code (minus the signal that ended it)."""
        return self._process.wait(timeout=timeout)

    def stop(self) -> None:
        """Close the test's sockets, then terminate the server (kill it if it does not end in time)."""
        self.close_sockets()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self._process.stdout.close()

    def _read_output(self) -> None:
        with open(self.log_path, "w", encoding="utf-8") as log_file:
            for line in self._process.stdout:
                log_file.write(line)
                log_file.flush()
                with self._output:
                    self._lines.append(line.rstrip("\n"))
                    self._output.notify_all()
        with self._output:
            self._output_ended = True
            self._output.notify_all()

    # The log

    @property
    def log(self) -> str:
        with self._output:
            return "\n".join(self._lines)

    def log_since(self, mark: int) -> str:
        with self._output:
            return "\n".join(self._lines[mark:])

    def log_mark(self) -> int:
        """A position in the log, for ``wait_for_log(..., since=mark)``."""
        with self._output:
            return len(self._lines)

    def wait_for_log(self, pattern: str, since: int = 0, timeout: float = EVENT_TIMEOUT, until_exit: bool = False) -> str:
        """Wait until a line after ``since`` matches ``pattern`` and return it.

        With ``until_exit``, return ``""`` if the output ends first instead of failing.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = since
        with self._output:
            while True:
                for line in self._lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self._lines)
                if self._output_ended:
                    if until_exit:
                        return ""
                    raise AssertionError(f"the server exited without logging /{pattern}/:\n{self.log}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matched /{pattern}/ within {timeout}s:\n{self.log}")
                self._output.wait(remaining)

    def leaked_tokens(self) -> list[str]:
        """The tokens whose whole text, or signature, the log shows."""
        log = self.log
        leaked = []
        for token in self.tokens:
            signature = token.rpartition(".")[2]
            if token in log or (len(signature) >= 20 and signature in log):
                leaked.append(token)
        return leaked

    # The process's own state (tests/server_app.py's /api/test/state)

    def state(self) -> dict[str, Any]:
        response = requests.get(self.url + "/api/test/state", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def wait_for_state(self, timeout: float = EVENT_TIMEOUT, **expected: Any) -> dict[str, Any]:
        """Poll the state until the ``expected`` fields hold; fail with the last state at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.state()
            if all(current[key] == value for key, value in expected.items()):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"server state {current} did not reach {expected} within {timeout}s")
            time.sleep(0.05)  # a poll interval, not a synchronisation: the loop waits for the condition

    # Tokens

    def token(self, identity: str, **kwargs: Any) -> str:
        """An access token as the app issues it (``create_access_token`` with the app's settings)."""
        with self._twin.app_context():
            return self._remember(create_access_token(identity, **kwargs))

    def refresh_token(self, identity: str) -> str:
        with self._twin.app_context():
            return self._remember(create_refresh_token(identity))

    def forge(self, key: str | None = JWT_SECRET, algorithm: str = "HS256", **claims: Any) -> str:
        """A token with flask-jwt-extended's claims, changed by ``claims`` (``None`` removes one)."""
        now = int(time.time())
        payload = {"sub": new_user(), "type": "access", "fresh": False, "jti": str(uuid.uuid4())}
        payload.update(iat=now, nbf=now, exp=now + 900)
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return self._remember(jwt.encode(payload, key, algorithm=algorithm))

    def _remember(self, token: str) -> str:
        self.tokens.append(token)
        return token

    # HTTP and Socket.IO

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the server's Prometheus metrics (``DASHBOARD_WS_METRICS_PATH = "/metrics"``), 0 if absent."""
        from prometheus_client.parser import text_string_to_metric_families

        response = requests.get(self.url + "/metrics", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def request(self, method: str, path: str, token: str, json: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.request(method, self.url + path, headers=headers, json=json, timeout=HTTP_TIMEOUT)

    def emitted(self, method: str, path: str, token: str, json: Any = None, status: int = 200) -> dict[str, Any]:
        """Call a route that emits one event and return the envelope it reports."""
        response = self.request(method, path, token, json)
        assert response.status_code == status, response.text
        return response.json()["event"]

    def attempt(
        self,
        auth: Any = None,
        query: str | None = None,
        header: str | None = None,
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> DashboardSocket:
        """Try to connect to /dashboard with a token in the ``auth`` payload, the ``query`` string, the
        Authorization ``header`` (as a Bearer token) and/or the access ``cookie``; does not raise."""
        sock = DashboardSocket(origin)
        self._sockets.append(sock)
        url, headers = self.url, dict(headers or {})
        if query is not None:
            url += "?" + urlencode({"token": query})
        if header is not None:
            headers["Authorization"] = f"Bearer {header}"
        if cookie is not None:
            headers["Cookie"] = f"access_token_cookie={cookie}"
        sock.connect(url, headers=headers, auth=None if auth is None else {"token": auth})
        return sock

    def connect(self, **sources: Any) -> DashboardSocket:
        """Like ``attempt``, but the connection must succeed."""
        sock = self.attempt(**sources)
        assert sock.client.connected, f"connection refused: {sock.error!r} {sock.connect_error!r}"
        return sock

    def close_sockets(self) -> None:
        for sock in self._sockets:
            sock.client.disconnect()
        self._sockets.clear()


class DashboardSocket:
    """A python-socketio client of the /dashboard namespace (WebSocket only) that records what it sees."""

    def __init__(self, origin: str | None = None) -> None:
        # websocket-client sends the server's own origin unless told another one.
        options = {"websocket_extra_options": {"origin": origin}} if origin else {}
        self.client = socketio.Client(reconnection=False, handle_sigint=False, **options)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.error: Exception | None = None  # what connect() raised
        self.connect_error: Any = None  # what the server's connect_error carried (set before connect() raises)
        self.client.on("*", lambda event, *data: self.events.put((event, *data)), namespace=NAMESPACE)
        self.client.on("connect_error", self._on_connect_error, namespace=NAMESPACE)
        self.client.on("disconnect", lambda *reason: self.events.put((DISCONNECTED, *reason)), namespace=NAMESPACE)

    def connect(self, url: str, headers: dict[str, str], auth: Any) -> None:
        try:
            self.client.connect(
                url,
                headers=headers,
                auth=auth,
                transports=["websocket"],
                namespaces=[NAMESPACE],
                wait_timeout=CONNECT_TIMEOUT,
            )
        except socketio.exceptions.ConnectionError as exc:
            self.error = exc

    def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    @property
    def sid(self) -> str:
        return self.client.get_sid(NAMESPACE)

    def next_event(self, timeout: float = EVENT_TIMEOUT) -> tuple[str, Any]:
        """The next ``(event name, data)`` received (or ``(DISCONNECTED, reason)``), waiting up to ``timeout``."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event received within {timeout}s") from None


class ServerPool:
    """One live server per distinct config for one async mode, started on first use."""

    def __init__(self, async_mode: str, log_dir: Path) -> None:
        self.async_mode = async_mode
        self.log_dir = log_dir
        self._servers: dict[str, LiveServer] = {}

    def get(self, config: dict[str, Any]) -> LiveServer:
        key = json.dumps(config, sort_keys=True)
        if key not in self._servers:
            log_path = self.log_dir / f"server-{self.async_mode}-{len(self._servers)}.log"
            server = LiveServer(self.async_mode, config, log_path)
            server.start()
            self._servers[key] = server
        return self._servers[key]

    def stop_all(self) -> list[LiveServer]:
        servers = list(self._servers.values())
        for server in servers:
            server.stop()
        self._servers.clear()
        return servers
