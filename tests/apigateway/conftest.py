"""Fixtures for the apigateway backend: dynalite, serverless-offline running the tests' service, and the
official socket.io-client on Node.

These tests need boto3 (the ``[aws]`` extra) and ``npm ci --prefix example_app``; the tox environment
``py311-aws`` has both and sets ``DASHBOARD_WS_TEST_AWS=1``, under which anything missing fails the run instead
of skipping it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.apigateway.aws_app import summary
from tests.node_tabs import NodeTabs
from tests.apigateway.emulator import (
    OFFLINE_CREDENTIALS,
    REPO,
    Dynalite,
    Offline,
    create_connections_table,
    flask_environ,
    missing_tools,
)

REQUIRED = os.environ.get("DASHBOARD_WS_TEST_AWS") == "1"

if importlib.util.find_spec("boto3") is None and not REQUIRED:
    collect_ignore_glob = ["test_*.py"]  # the [aws] extra is not installed: tox's py311-aws runs these

SERVICE_DIR = Path(__file__).parent / "service"
WAIT = 20.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_closed_by_server(ws: websocket.WebSocket) -> None:
    """Read until the server closes the WebSocket; fail if it does not within the socket's timeout."""
    try:
        while ws.recv():  # "" once the close frame has arrived
            pass
    except websocket.WebSocketTimeoutException:
        raise AssertionError("the server did not close the connection") from None
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dynalite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dynalite]:
    reason = missing_tools()
    if reason:
        _unavailable(reason)
    if shutil.which("node") is None:
        _unavailable("node is not installed")
    server = Dynalite(tmp_path_factory.mktemp("dynalite"))
    yield server
    server.stop()


class AwsService:
    """The tests' service under serverless-offline, its table in dynalite, and an app like its own."""

    SERVICE = "dashboard-ws-test"

    def __init__(self, dynalite: Dynalite, workdir: Path, config: dict[str, Any]) -> None:
        self.table = f"connections-{uuid.uuid4().hex[:12]}"
        self.dynamodb = dynalite.client()
        create_connections_table(self.dynamodb, self.table)
        self.revoked_file = workdir / "revoked"
        self.config = {
            "DASHBOARD_WS_BACKEND": "apigateway",
            "DASHBOARD_WS_APIGATEWAY_TABLE": self.table,
            "DASHBOARD_WS_APIGATEWAY_REGION": "eu-west-1",
            **config,
        }
        service_dir = workdir / "service"
        shutil.copytree(SERVICE_DIR, service_dir, ignore=shutil.ignore_patterns("__pycache__"))
        (service_dir / "node_modules").symlink_to(REPO / "example_app" / "node_modules")
        self.env = {
            "AWS_ENDPOINT_URL_DYNAMODB": dynalite.url,
            "TEST_REVOKED_FILE": str(self.revoked_file),
            **flask_environ(self.config),
        }
        # The in-process app (tokens, emits) reaches the same emulators: its boto3 reads these.
        os.environ.update(OFFLINE_CREDENTIALS)
        os.environ.update({key: self.env[key] for key in ("AWS_ENDPOINT_URL_DYNAMODB", "TEST_REVOKED_FILE")})
        self.offline = Offline(service_dir, workdir, self.env)
        self.config["DASHBOARD_WS_APIGATEWAY_ENDPOINT"] = self.offline.connections_endpoint
        from tests.apigateway import aws_app

        self.app = aws_app.create_app(self.config)
        self.dashboard = aws_app.dashboard
        self.tabs: list[NodeTabs] = []
        self.minted: list[str] = []

    # -- tokens

    def token(self, user_id: str, expires: timedelta | None = None, refresh: bool = False) -> str:
        from flask_jwt_extended import create_access_token, create_refresh_token

        with self.app.app_context():
            if refresh:
                token = create_refresh_token(user_id)
            else:
                token = create_access_token(user_id, expires_delta=expires if expires is not None else timedelta(hours=1))
        self.minted.append(token)
        return token

    def revoke(self, token: str) -> None:
        from flask_jwt_extended import decode_token

        with self.app.app_context():
            jti = decode_token(token)["jti"]
        with open(self.revoked_file, "a") as file:
            file.write(jti + "\n")

    # -- clients and emits

    def connect(self, token: str, tabs: int = 1) -> NodeTabs:
        client = NodeTabs(self.offline.websocket_url, token, tabs)
        self.tabs.append(client)
        return client

    def emit_summary(self, user_id: str, total: int) -> dict[str, Any]:
        with self.app.app_context():
            return self.dashboard.emit_summary_updated(user_id, summary(total))

    def emit_from_another_process(self, user_id: str, total: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, **flask_environ(self.config)}
        return subprocess.run(
            [sys.executable, "-m", "tests.apigateway.aws_app", user_id, json.dumps(summary(total))],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )

    def sweep(self) -> dict[str, Any]:
        """Invoke the sweep function through the emulator's Lambda API, as the schedule would."""
        import boto3

        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{self.offline.lambda_port}", region_name="eu-west-1",
                              aws_access_key_id="offline", aws_secret_access_key="offline")
        try:
            answer = client.invoke(FunctionName=f"{self.SERVICE}-local-sweep", Payload=b"{}")
            return json.loads(answer["Payload"].read())
        finally:
            client.close()

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table)["Items"]

    def close_clients(self) -> None:
        while self.tabs:
            self.tabs.pop().close()

    def stop(self) -> None:
        self.close_clients()
        self.offline.stop()
        state = self.app.extensions["dashboard_ws"]
        for client in (self.dynamodb, state.table.client, state.api.client):
            client.close()


@pytest.fixture(scope="module")
def start_service(dynalite: Dynalite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., AwsService]]:
    """``start_service(config)``: a service with these ``DASHBOARD_WS_*`` values, stopped when the module ends."""
    services: list[AwsService] = []

    def start(config: dict[str, Any] | None = None) -> AwsService:
        service = AwsService(dynalite, tmp_path_factory.mktemp("aws"), config or {})
        services.append(service)
        return service

    yield start
    for service in services:
        service.stop()
    # Every handler's log lines and serverless-offline's own, for every token the tests made.
    leaked = [token[:20] for service in services for token in service.minted if token in service.offline.log()]
    if leaked:
        pytest.fail(f"tokens found in the emulator's log: {leaked}")


@pytest.fixture
def close_clients() -> Iterator[Callable[[AwsService], AwsService]]:
    """``close_clients(service)``: the clients that the test opens on ``service`` are closed when it ends."""
    used: list[AwsService] = []

    def register(service: AwsService) -> AwsService:
        used.append(service)
        return service

    yield register
    for service in used:
        service.close_clients()


@pytest.fixture(scope="module")
def module_service(start_service: Callable[..., AwsService], request: pytest.FixtureRequest) -> AwsService:
    """One service per test module, with the module's ``CONFIG``."""
    return start_service(request.module.CONFIG)


@pytest.fixture
def service(module_service: AwsService, close_clients: Callable[[AwsService], AwsService]) -> AwsService:
    """The module's service; the clients a test opens are closed when it ends."""
    return close_clients(module_service)
