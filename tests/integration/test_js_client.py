"""The official JavaScript client (socket.io-client 4 on Node.js) against a live server."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.live_server import EVENT_TIMEOUT, LiveServer, new_user

pytestmark = [pytest.mark.live, pytest.mark.js]

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "dashboard_client.mjs"
NODE_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not installed: the js tests need Node.js 18 or later on PATH")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("socket.io-client is not installed for the js tests: run `npm ci --prefix tests/js`")
    return executable


class NodeClient:
    """``dashboard_client.mjs`` in a subprocess; ``next()`` returns its observations one by one."""

    def __init__(self, node: str, url: str, token: str, events: int = 1, reconnect: bool = False) -> None:
        self.process = subprocess.Popen(
            [node, str(SCRIPT), url, token, str(events)] + (["reconnect"] if reconnect else []),
            cwd=JS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node printed nothing within {timeout}s") from None
        assert line is not None, f"node exited early; stderr:\n{self.process.stderr.read()}"
        return json.loads(line)

    def exit_code(self) -> int:
        return self.process.wait(timeout=NODE_TIMEOUT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=NODE_TIMEOUT)
        self._reader.join(timeout=NODE_TIMEOUT)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def run_node(node: str) -> Iterator[Any]:
    clients: list[NodeClient] = []

    def run(url: str, token: str, events: int = 1, reconnect: bool = False) -> NodeClient:
        clients.append(NodeClient(node, url, token, events, reconnect))
        return clients[-1]

    yield run
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        pytest.param(lambda s: "not-a-jwt", "token_invalid", id="malformed"),
        pytest.param(lambda s: s.token(new_user(), expires_delta=timedelta(seconds=-30)), "token_expired", id="expired"),
    ],
)
def test_a_bad_token_gives_connect_error_with_auth_failed(
    live_server: LiveServer, run_node: Any, make_token: Any, reason: str
) -> None:
    refused = live_server.state()["limited"].get("connect_refused", 0)
    client = run_node(live_server.url, make_token(live_server))
    assert client.next() == {
        "kind": "connect_error",
        "message": "Authentication failed",
        "data": {"code": "AUTH_FAILED", "reason": reason},
    }
    assert client.exit_code() == 0
    # The server closed the engine.io session after the refusal; the official client, which closes it too,
    # saw nothing else.
    assert live_server.state()["limited"]["connect_refused"] == refused + 1


def test_a_good_token_receives_the_event_in_its_envelope(live_server: LiveServer, run_node: Any) -> None:
    token = live_server.token(new_user())
    client = run_node(live_server.url, token)
    assert client.next() == {"kind": "connect"}

    moc = {"title": "Lighthouse", "theme": "Town", "buildStatus": "BUILT", "coverImageUrl": None}
    event = live_server.emitted("POST", "/api/mocs", token, moc, status=201)
    assert client.next() == {"kind": "event", "name": "dashboard:recentMocAdded", "envelope": event}
    assert client.next() == {"kind": "disconnect", "reason": "io client disconnect"}
    assert client.exit_code() == 0


def test_a_client_that_falls_behind_is_closed_and_reconnects(live_server: LiveServer, run_node: Any) -> None:
    token = live_server.token(new_user())
    client = run_node(live_server.url, token, events=1_000_000, reconnect=True)
    assert client.next() == {"kind": "connect"}
    limited = live_server.state()["limited"].get("slow_reader", 0)
    # A frozen tab (its process stopped) reads nothing: once the kernel's buffers are full, what the server
    # writes waits in the socket's queue. Bursts of 2 MB (twice DASHBOARD_WS_MAX_OUTGOING_BYTES) until it is over.
    client.process.send_signal(signal.SIGSTOP)
    try:
        for _ in range(20):
            response = requests.post(live_server.url + "/api/bursts?count=40&size=50000",
                                     headers={"Authorization": f"Bearer {token}"}, timeout=EVENT_TIMEOUT)
            assert response.status_code == 200
            if live_server.state()["limited"].get("slow_reader", 0) > limited:
                break
    finally:
        client.process.send_signal(signal.SIGCONT)
    assert live_server.state()["limited"]["slow_reader"] == limited + 1
    observations = [client.next()]
    while observations[-1]["kind"] == "event":  # the events the writer sent before the backlog was dropped
        observations.append(client.next())
    assert observations[-1] == {"kind": "disconnect", "reason": "transport close"}
    assert client.next() == {"kind": "connect"}  # the official client reconnected by itself
