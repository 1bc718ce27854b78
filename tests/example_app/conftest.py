"""Fixtures for the example app: a seeded instance folder per test, and the app served in a subprocess.

Every test gets its own instance folder (SQLite file and JWT signing key) under pytest's tmp_path, so the
developer's own ``instance/`` is never touched. The app in this process (for seeding, minting tokens and
writing behind the server's back) and the served one share that folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import socketio

REPO = Path(__file__).resolve().parents[2]
SOCKET_IO_CLIENT = REPO / "example_app" / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
NAMESPACE = "/dashboard"
DATABASE_FILE = "example_app.sqlite"


# example_app is not part of the installed distribution: import it from this checkout, as `python -m` does.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def requirement(met: bool, why: str) -> None:
    """A missing tool fails the test under CI (``CI`` set) and skips it on a developer's machine."""
    if met:
        return
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)


def wait_until(condition: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (within {timeout} s)", pytrace=False)
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_process_app() -> Any:
    """The example app in this process, in threading mode (eventlet is for the served app only)."""
    from example_app import create_app

    return create_app({"DASHBOARD_WS_ASYNC_MODE": "threading", "TESTING": True})


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database seeded once per run, copied for each test: hashing the demo passwords takes a while."""
    from example_app.cli import seed_demo_data
    from example_app.extensions import db

    folder = tmp_path_factory.mktemp("seeded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXAMPLE_APP_INSTANCE_PATH", str(folder))
        patch.delenv("DATABASE_URL", raising=False)
        app = in_process_app()
        with app.app_context():
            seed_demo_data()
            db.engine.dispose()
    return folder / DATABASE_FILE


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    requirement(
        importlib.util.find_spec("flask_sqlalchemy") is not None,
        "the example app's dependencies are missing: pip install -e '.[example]'",
    )
    path = tmp_path / "instance"
    monkeypatch.setenv("EXAMPLE_APP_INSTANCE_PATH", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


@pytest.fixture
def app(instance: Path, seeded_database: Path) -> Iterator[Any]:
    """The example app in this process, on a freshly seeded database of the test's own."""
    from example_app.extensions import db

    instance.mkdir()
    shutil.copy(seeded_database, instance / DATABASE_FILE)
    app = in_process_app()
    yield app
    with app.app_context():
        db.engine.dispose()


class ExampleServer:
    """``python -m example_app`` on a port of its own; it logs to a file, read back when a check fails."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "example_app", "--port", str(self.port)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout, f"the example app did not answer on {self.url} (log: {self.log_path})")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the example app exited with {self.process.returncode}:\n{self.log()}", pytrace=False)
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_server(app: Any, instance: Path, tmp_path: Path) -> Iterator[Callable[..., ExampleServer]]:
    """Serve the test's seeded instance folder in a subprocess; ``env`` adds variables. All are stopped."""
    servers: list[ExampleServer] = []

    def start(**env: str) -> ExampleServer:
        server = ExampleServer(free_port(), tmp_path / f"server-{len(servers)}.log", {**os.environ, **env})
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def postgres_url(instance: Path) -> Iterator[str]:
    """A new, uniquely named database on the local PostgreSQL, dropped afterwards.

    ``EXAMPLE_APP_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``) is where to connect
    to create it.
    """
    admin_url = os.environ.get("EXAMPLE_APP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    import psycopg  # the example extra, checked by the instance fixture

    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        requirement(False, f"PostgreSQL at {admin_url} is needed: {exc}")
    name = f"example_app_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None


@pytest.fixture
def server(start_server: Callable[..., ExampleServer]) -> ExampleServer:
    return start_server()


# ---- REST and Socket.IO clients ------------------------------------------------------------------------


class ApiClient:
    """A signed-in user of the REST API."""

    def __init__(self, server: ExampleServer, username: str) -> None:
        from example_app.cli import DEMO_USERS

        self.server = server
        response = requests.post(
            f"{server.url}/api/auth/login", json={"username": username, "password": DEMO_USERS[username]}, timeout=10
        )
        assert response.status_code == 200, response.text
        self.tokens = response.json()
        self.token = self.tokens["accessToken"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.server.url}{path}", headers=headers, timeout=10, **kwargs)

    def dashboard(self) -> dict[str, Any]:
        response = self.request("GET", "/api/dashboard")
        assert response.status_code == 200, response.text
        return response.json()

    def moc_id(self, title: str) -> str:
        return next(moc["id"] for moc in self.dashboard()["recentMocs"] if moc["title"] == title)

    def add_moc(self, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/api/mocs", json={"theme": "City", **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def add_wishlist_item(self, name: str) -> dict[str, Any]:
        response = self.request("POST", "/api/wishlist", json={"name": name})
        assert response.status_code == 201, response.text
        return response.json()


# What DashboardSocket.next_event() returns once the socket has been disconnected: (DISCONNECTED, reason).
DISCONNECTED = "disconnect"


class DashboardSocket:
    """A python-socketio client on ``/dashboard`` that keeps every event it receives, in order.

    Its disconnect is kept in the same queue, after the events that came before it, as ``(DISCONNECTED,
    reason)``: python-socketio's client handles both on one thread, in the order the server sent them.
    """

    def __init__(self, server: ExampleServer, token: str) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", lambda event, envelope: self.events.put((event, envelope)), namespace=NAMESPACE)
        self.client.on(
            "disconnect", lambda reason=None: self.events.put((DISCONNECTED, reason)), namespace=NAMESPACE
        )
        self.client.connect(
            server.url, namespaces=[NAMESPACE], transports=["websocket"], auth={"token": token}, wait_timeout=10
        )

    def next_event(self, timeout: float = 10) -> tuple[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no event within {timeout} s", pytrace=False)

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def user(server: ExampleServer) -> Callable[[str], ApiClient]:
    return lambda username: ApiClient(server, username)


@pytest.fixture
def dashboard_socket(server: ExampleServer) -> Iterator[Callable[[ApiClient], DashboardSocket]]:
    sockets: list[DashboardSocket] = []

    def connect(client: ApiClient) -> DashboardSocket:
        sockets.append(DashboardSocket(server, client.token))
        return sockets[-1]

    yield connect
    for sock in sockets:
        sock.close()


# ---- the page in Chromium ------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Short client timings (the page reads them from its query string) so that reconnects and polls happen fast.
FAST_TIMINGS = {
    "reconnectDelay": 200, "reconnectDelayMax": 1000, "connectTimeout": 3000, "degradedAfter": 3, "pollInterval": 500,
}

# Records each change of the connection indicator's data-state, from before the page's script first sets one.
RECORD_CONNECTION_STATES = """
window.connectionStates = [];
document.addEventListener("readystatechange", () => {
  const indicator = document.getElementById("connection");
  new MutationObserver(() => {
    const state = indicator.dataset.state;
    if (state !== window.connectionStates.at(-1)) window.connectionStates.push(state);
  }).observe(indicator, { attributes: true, attributeFilter: ["data-state"] });
}, { once: true });
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    requirement(
        importlib.util.find_spec("playwright") is not None,
        "Playwright for Python is needed: pip install -e '.[browser-tests]'",
    )
    requirement(os.access(CHROMIUM, os.X_OK), f"Debian's Chromium is needed at {CHROMIUM}: apt-get install -y chromium")
    requirement(SOCKET_IO_CLIENT.exists(), "socket.io-client is needed: npm ci --prefix example_app")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def expect(browser: Any) -> Any:
    """Playwright's ``expect``, imported once the browser fixture has checked that Playwright is there."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)  # a busy two-core machine, not a slow page: failures still fail
    return expect


class DashboardTab:
    """The dashboard in a browser context of its own, counting what it does on the network."""

    def __init__(self, context: Any, server: ExampleServer, tokens: dict[str, str] | None) -> None:
        self.timings = FAST_TIMINGS
        self.url = f"{server.url}/?{urlencode(self.timings)}"
        context.add_init_script(RECORD_CONNECTION_STATES)
        if tokens:
            # As if this tab had signed in before: the page keeps its tokens in sessionStorage.
            context.add_init_script(f"Object.entries({json.dumps(tokens)}).forEach(([k, v]) => sessionStorage.setItem(k, v));")
        self.page = context.new_page()
        self.websockets = 0
        self.requests: Counter[str] = Counter()
        self.page.on("websocket", lambda ws: setattr(self, "websockets", self.websockets + 1))
        self.page.on("request", lambda request: self.requests.update([urlsplit(request.url).path]))
        self.connection = self.page.locator("#connection")
        self.banner = self.page.locator("#degraded-banner")
        self.recent_titles = self.page.locator("#recent-mocs li .title")

    def open(self) -> None:
        self.page.goto(self.url)

    def sign_in(self, username: str) -> None:
        from example_app.cli import DEMO_USERS

        self.open()
        self.page.fill("#login-form input[name=username]", username)
        self.page.fill("#login-form input[name=password]", DEMO_USERS[username])
        self.page.click("#login-form button[type=submit]")

    def summary(self, key: str) -> Any:
        return self.page.locator(f"[data-summary={key}]")

    def connection_states(self) -> list[str]:
        return self.page.evaluate("window.connectionStates")


@pytest.fixture
def open_tab(browser: Any) -> Iterator[Callable[..., DashboardTab]]:
    """``open_tab(server, tokens=None)``: a new tab, in a browser context of its own; all are closed."""
    contexts: list[Any] = []

    def open_tab(server: ExampleServer, tokens: dict[str, str] | None = None) -> DashboardTab:
        contexts.append(browser.new_context(viewport={"width": 1280, "height": 900}))
        return DashboardTab(contexts[-1], server, tokens)

    yield open_tab
    for context in contexts:
        context.close()
