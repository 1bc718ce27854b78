"""AWS offline, for the tests of the apigateway backend: dynalite for DynamoDB, serverless-offline for the rest.

Both come from example_app's devDependencies (``npm ci --prefix example_app``, pinned in its lockfile).
serverless-offline runs the Python handlers with the ``python3`` of ``VIRTUAL_ENV`` (this interpreter's
environment), in persistent processes that inherit this process's environment: that is how the handlers get
the endpoints of dynalite and of the emulator's own Lambda API, and the tests' short intervals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "example_app" / "node_modules"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# Any values do: the emulators check no signature, but boto3 signs every request.
OFFLINE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline", "AWS_DEFAULT_REGION": "eu-west-1"}


def flask_environ(config: dict[str, Any]) -> dict[str, str]:
    """``app.config`` values as the environment variables ``from_prefixed_env`` reads (JSON unless a string)."""
    return {f"FLASK_{key}": value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def missing_tools() -> str | None:
    """Why the emulators cannot run here, or None."""
    for tool in ("dynalite", "serverless", "serverless-offline"):
        if not (NODE_MODULES / tool).is_dir():
            return f"{tool} is not installed: run `npm ci --prefix example_app`"
    return None


class Process:
    """A node process in its own session, logged to a file, stopped with its whole process group."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.name} exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.log_path.name}: no {pattern!r} within {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


class Dynalite(Process):
    """DynamoDB in memory on 127.0.0.1, on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        args = ["node", str(NODE_MODULES / "dynalite" / "cli.js"), "--host", "127.0.0.1", "--port", str(self.port),
                "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
        super().__init__(args, workdir, dict(os.environ), workdir / "dynalite.log")
        self.wait_for(r"listening at")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.url, region_name="eu-west-1",
                            aws_access_key_id="offline", aws_secret_access_key="offline")


def create_connections_table(client: Any, name: str) -> None:
    """The table as example_app/serverless.yml declares it (dynalite has no TTL, which the sweeper makes up for)."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "connectionId", "AttributeType": "S"},
            {"AttributeName": "userId", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "userId",
            "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
    )
    # Even with --createTableMs 0, dynalite makes the table ACTIVE a moment later (writes to it fail with
    # ResourceNotFoundException until then): the waiter's first check is at once, the next ones a second apart.
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


class Offline(Process):
    """``serverless offline`` for the service in ``service_dir``, on free ports, stage ``local``."""

    def __init__(
        self, service_dir: Path, workdir: Path, env: dict[str, str], params: dict[str, str] | None = None,
        websocket_port: int | None = None,
    ) -> None:
        self.http_port, self.lambda_port = free_port(), free_port()
        self.websocket_port = websocket_port or free_port()
        params = {
            "connectionsEndpoint": self.connections_endpoint,
            "websocketUrl": self.websocket_url,
            "pageOrigin": self.http_url,
            **(params or {}),
        }
        args = [
            str(NODE_MODULES / ".bin" / "serverless"), "offline", "start", "--stage", "local", "--host", "127.0.0.1",
            "--httpPort", str(self.http_port), "--websocketPort", str(self.websocket_port),
            "--lambdaPort", str(self.lambda_port),
            *[f"--param={name}={value}" for name, value in params.items()],
        ]
        full_env = {
            **os.environ,
            **OFFLINE_CREDENTIALS,
            "HOME": str(workdir),  # serverless writes ~/.serverlessrc
            "SLS_TELEMETRY_DISABLED": "1",
            "SLS_NOTIFICATIONS_MODE": "off",
            "VIRTUAL_ENV": sys.prefix,  # the handlers' python3: this interpreter's environment
            "PYTHONPATH": str(REPO),
            "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{self.lambda_port}",
            "FLASK_DASHBOARD_WS_APIGATEWAY_ENDPOINT": self.connections_endpoint,
            **env,
        }
        super().__init__(args, service_dir, full_env, workdir / f"offline-{self.websocket_port}.log")
        self.wait_for(r"\[http for websocket\] listening")

    @property
    def connections_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.websocket_port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.websocket_port}/local"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def function_name(self, service: str, function: str) -> str:
        return f"{service}-local-{function}"
