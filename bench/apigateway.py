"""The apigateway backend on loopback: connect time, emit-to-receive time, and what each costs in AWS calls.

    python bench/apigateway.py [--connections 30] [--events 100]

Runs the tests' service (tests/apigateway/service) under serverless-offline with dynalite, and the official
socket.io-client on Node (tests/js/tabs.mjs: transports ["websocket"], the stage as the path, the
client's defaults otherwise, permessage-deflate offered). Two counting proxies sit in front of DynamoDB and of
the connections API, so that every DynamoDB operation and every post is counted; Lambda invocations and
their durations come from serverless-offline's log. Needs `npm ci --prefix example_app` and
`npm ci --prefix tests/js`, and boto3 (the [aws] extra).

Connect time is from the tab's io() call to its ``connect`` event ($connect, the asynchronous open invocation,
the open packet, the CONNECT packet in $default and its answer), one connection at a time. Emit-to-receive
time is from just before ``emit_summary_updated`` in this process to the tab's event, for a user with one
tab and for one with five. The emulator is not AWS: its Lambda runs in warm local processes and its network
is loopback, so these times are lower bounds, and the counts are what carries over.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import log_warnings_to_stderr  # noqa: E402
from tests.apigateway.aws_app import summary  # noqa: E402
from tests.apigateway.emulator import (  # noqa: E402
    OFFLINE_CREDENTIALS,
    Dynalite,
    Offline,
    create_connections_table,
    flask_environ,
)
from tests.node_tabs import NodeTabs  # noqa: E402
from tests.redis_server import free_port  # noqa: E402

SERVICE_DIR = REPO / "tests" / "apigateway" / "service"
TABLE = "bench-connections"
CONFIG = {
    "DASHBOARD_WS_BACKEND": "apigateway",
    "DASHBOARD_WS_APIGATEWAY_TABLE": TABLE,
    "DASHBOARD_WS_APIGATEWAY_REGION": "eu-west-1",
    "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": 20,
    "DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 30,
    "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 1,
}
INVOCATION = re.compile(r"\(λ: (\w+)\) RequestId: \S+\s+Duration: ([\d.]+) ms")


class _QuietServer(ThreadingHTTPServer):
    """A handler process that exits resets its idle keep-alive connections: not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class CountingProxy:
    """Forwards HTTP requests to ``upstream`` and counts them: by ``X-Amz-Target`` (DynamoDB) or by method."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # The answer goes out in two writes: without this, Nagle's algorithm and the client's delayed
                # ACK would hold the second for ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.headers.get("X-Amz-Target", "").rpartition(".")[2] or self.command
                with owner._lock:
                    owner.counts[kind] += 1
                upstream = http.client.HTTPConnection(owner.upstream.hostname, owner.upstream.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers))
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def invocations(log: str) -> list[tuple[str, float]]:
    return [(name, float(ms)) for name, ms in INVOCATION.findall(log)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    log_warnings_to_stderr()
    os.environ.update(OFFLINE_CREDENTIALS)
    workdir = Path(tempfile.mkdtemp(prefix="bench-apigateway-"))
    dynalite = Dynalite(workdir)
    dynamodb = CountingProxy(dynalite.url)
    client = dynalite.client()
    create_connections_table(client, TABLE)
    client.close()
    service_dir = workdir / "service"
    shutil.copytree(SERVICE_DIR, service_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (service_dir / "node_modules").symlink_to(REPO / "example_app" / "node_modules")
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.url,
        "TEST_REVOKED_FILE": str(workdir / "revoked"),
        **flask_environ(CONFIG),
    }
    # The connections proxy needs the emulator's port, and the emulator the proxy's URL: the proxy forwards
    # to a port chosen first, then the emulator is started on it.
    websocket_port = free_port()
    connections_proxy = CountingProxy(f"http://127.0.0.1:{websocket_port}")
    env["FLASK_DASHBOARD_WS_APIGATEWAY_ENDPOINT"] = connections_proxy.url
    offline = Offline(service_dir, workdir, env, websocket_port=websocket_port)
    # This process emits as a REST Lambda would, straight to the emulators (no proxy in the measured path);
    # botocore's own hooks count its calls.
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynalite.url
    from tests.apigateway import aws_app

    app = aws_app.create_app({**CONFIG, "DASHBOARD_WS_APIGATEWAY_ENDPOINT": offline.connections_endpoint})
    dashboard = aws_app.dashboard
    emitted: Counter[str] = Counter()
    state = app.extensions["dashboard_ws"]
    for aws_client in (state.table.client, state.api.client):
        aws_client.meta.events.register("before-call.*.*", lambda model, **kwargs: emitted.update([model.name]))
    tabs: list[NodeTabs] = []
    results: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(), "args": vars(args) | {"out": None}}
    try:
        with app.app_context():
            from flask_jwt_extended import create_access_token

            def token(user: str) -> str:
                return create_access_token(user)

            # Warm-up: each function's first invocations start Python and import the app (cold starts).
            for index in range(3):
                warm = NodeTabs(offline.websocket_url, token(f"warm{index}"))
                warm.wait_kind("connect")
                tabs.append(warm)
            wait_until(lambda: len(invocations(offline.log())) >= 9, "warm-up invocations")
            sweep(offline)  # the sweep function's cold start too (nothing is due yet)

            # Connect: one connection at a time; then all of them close, to count a connection's whole life.
            before_db, before_posts, before_log = dynamodb.snapshot(), connections_proxy.snapshot(), len(invocations(offline.log()))
            connect_ms = []
            measured = []
            for index in range(args.connections):
                tab = NodeTabs(offline.websocket_url, token(f"c{index}"))
                opening = tab.wait_kind("opening")
                connected = tab.wait_kind("connect")
                connect_ms.append(connected["t"] - opening["t"])
                measured.append(tab)
            for tab in measured:
                tab.close()
            wait_until(lambda: len(dynamodb_items()) == 3, "the measured connections' items to go")
            per_connection_db = dynamodb.snapshot() - before_db
            per_connection_posts = connections_proxy.snapshot() - before_posts
            connection_invocations = invocations(offline.log())[before_log:]
            results["connect_ms"] = {"p50": percentile(connect_ms, 50), "p95": percentile(connect_ms, 95),
                                     "min": min(connect_ms), "max": max(connect_ms), "n": len(connect_ms)}
            results["per_connection"] = {
                "lambda_invocations": len(connection_invocations) / args.connections,
                "lambda_ms": sorted(ms for _, ms in connection_invocations),
                "dynamodb": {op: n / args.connections for op, n in sorted(per_connection_db.items())},
                "posts": {op: n / args.connections for op, n in sorted(per_connection_posts.items())},
            }

            # Emit to receive, with 1 and with 5 tabs of one user.
            for tab_count in (1, 5):
                user = f"tabs{tab_count}"
                tab = NodeTabs(offline.websocket_url, token(user), tab_count)
                tabs.append(tab)
                tab.wait_connected(tab_count)
                before = Counter(emitted)
                latencies, slowest = [], []
                for number in range(args.events):
                    sent = time.time() * 1000
                    envelope = dashboard.emit_summary_updated(user, summary(number))
                    arrivals = [tab.wait_for(lambda seen, i=i: seen["kind"] == "event" and seen["tab"] == i
                                             and seen["envelope"]["eventId"] == envelope["eventId"])["t"]
                                for i in range(tab_count)]
                    latencies.extend(arrival - sent for arrival in arrivals)
                    slowest.append(max(arrivals) - sent)
                calls = Counter(emitted) - before
                results[f"emit_{tab_count}_tabs"] = {
                    "receive_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "n": len(latencies)},
                    "last_tab_ms": {"p50": percentile(slowest, 50), "p95": percentile(slowest, 95)},
                    "per_event_calls": {op: n / args.events for op, n in sorted(calls.items())},
                }

            # One sweep once every connection is due for a ping: their last one was the open packet.
            time.sleep(CONFIG["DASHBOARD_WS_APIGATEWAY_PING_INTERVAL"] + 1)
            connected = len(dynamodb_items())
            before_db, before_posts, before_log = dynamodb.snapshot(), connections_proxy.snapshot(), len(invocations(offline.log()))
            swept = sweep(offline)
            wait_until(lambda: len(invocations(offline.log())) - before_log >= 1 + connected, "the pongs")
            sweep_invocations = invocations(offline.log())[before_log:]
            results["sweep"] = {
                "connections": connected,
                "result": swept,
                "dynamodb": dict(dynamodb.snapshot() - before_db),
                "posts": dict(connections_proxy.snapshot() - before_posts),
                "lambda_invocations": Counter(name for name, _ in sweep_invocations),
                "sweep_ms": [ms for name, ms in sweep_invocations if name == "sweep"],
            }
    finally:
        for tab in tabs:
            tab.close()
        offline.stop()
        dynalite.stop()
        dynamodb.stop()
        connections_proxy.stop()
    text = json.dumps(results, indent=2, default=dict)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(text + "\n")


def dynamodb_items() -> list[Any]:
    """Read straight from dynalite (os.environ's endpoint), not through the counting proxy."""
    import boto3

    client = boto3.client("dynamodb")
    try:
        return client.scan(TableName=TABLE)["Items"]
    finally:
        client.close()


def sweep(offline: Offline) -> Any:
    import boto3

    client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{offline.lambda_port}")
    try:
        answer = client.invoke(FunctionName="dashboard-ws-test-local-sweep", Payload=b"{}")
        return json.loads(answer["Payload"].read())
    finally:
        client.close()


if __name__ == "__main__":
    main()
