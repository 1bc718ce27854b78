"""Benchmark: events delivered end to end through Redis, and the latency that the message queue adds.

    /work/venv/bin/python bench/queue_latency.py [--mode eventlet] [--events 2000] [--samples 300]

Everything runs on this machine, over loopback: real server processes (``tests/serve.py``, the test app), the
machine's Redis (``REDIS_URL``, default ``redis://127.0.0.1:6379/0``) on a channel of this run's own, and
python-socketio clients over WebSockets in this process. Bounded in count (``--events``, ``--samples``) and
in time (``--time-limit`` per phase); it stops its servers whatever happens.

1. Throughput: 1, then 2, write-only emitters, each a process of its own (the extension with ``init_app``
   and no server, as a worker would use it), emit ``--events`` events in all to one user, each one event
   after the other as fast as it can; that user has one socket on each of 1, then 2, server processes.
   Reported: emits/s, and events/s delivered to every socket (from the first emit to the last event on the
   slowest socket). Each emit validates its payload and waits for Redis to answer its PUBLISH.
2. Latency: ``--samples`` sequential requests, each emitting one event at once (``POST /api/imports``), timed
   from sending the request to the event's arrival on the user's socket, in three set-ups: one process
   without a queue; with the queue, the socket on the emitting process; with the queue, the socket on
   another process (the event travels through Redis). The queue's added latency is the last minus the first.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import requests
import socketio
import structlog

from tests.live_server import LiveServer, new_user
from tests.redis_server import SHARED_REDIS_URL

NAMESPACE = "/dashboard"
PARTS = [{"id": str(uuid.uuid4()), "title": "Tower", "theme": "Castle", "build_status": "BUILT",
          "coverage_percentage": 100, "last_updated_at": "2024-05-01T10:00:00Z"}]


class Receiver:
    """A WebSocket-only client that records when each event arrives, by eventId."""

    def __init__(self, url: str, token: str) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.changed = threading.Condition()
        self.client = socketio.Client(reconnection=False, handle_sigint=False)
        self.client.on("*", self._on_event, namespace=NAMESPACE)
        self.client.connect(url, auth={"token": token}, transports=["websocket"], namespaces=[NAMESPACE], wait_timeout=15)

    def _on_event(self, event: str, envelope: Any) -> None:
        now = time.monotonic()
        with self.changed:
            self.arrived[envelope["eventId"]] = now
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, predicate: Any, deadline: float) -> bool:
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def close(self) -> None:
        self.client.disconnect()


def start(mode: str, config: dict[str, Any], log_dir: Path, name: str) -> LiveServer:
    server = LiveServer(mode, config, log_dir / f"{name}.log")
    server.start()
    return server


def emit_only(config: dict[str, Any], user: str, events: int, time_limit: float) -> None:
    """``--emit-only``: the extension in a process with no server, ``init_app`` and emits in an app context."""
    from flask import Flask
    from flask_jwt_extended import JWTManager

    from flask_dashboard_ws import DashboardRealtime
    from tests.server_app import JWT_SECRET

    app = Flask("bench_emitter")
    app.config.update(JWT_SECRET_KEY=JWT_SECRET, DASHBOARD_WS_ASYNC_MODE="threading", **config)
    JWTManager(app)
    dashboard = DashboardRealtime(app)
    summary = {"total_mocs": 1, "total_wishlist_items": 0, "mocs_by_build_status": {"ADDED": 1, "IN_PROGRESS": 0, "BUILT": 0},
               "mocs_by_coverage_status": {"FULL_INVENTORY": 0, "PARTIAL_ORDERED": 0, "NONE": 1}}
    deadline = time.monotonic() + time_limit
    with app.app_context():
        started = time.monotonic()
        sent = 0
        while sent < events and time.monotonic() < deadline:
            dashboard.emit_summary_updated(user, summary)
            sent += 1
        emitted = time.monotonic()
    print(json.dumps({"started": started, "emitted": emitted, "sent": sent}), flush=True)


def throughput(mode: str, config: dict[str, Any], processes: int, emitters: int, events: int, time_limit: float,
               log_dir: Path) -> dict[str, Any]:
    servers = [start(mode, config, log_dir, f"throughput-{processes}-{index}") for index in range(processes)]
    receivers: list[Receiver] = []
    try:
        user = new_user()
        receivers = [Receiver(server.url, server.token(user)) for server in servers]
        deadline = time.monotonic() + time_limit

        def run_emitters(count: int, emitters: int) -> dict[str, Any]:
            command = [sys.executable, __file__, "--emit-only", "--user", user, "--events", str(count // emitters),
                       "--config", json.dumps(config), "--time-limit", str(time_limit)]
            running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(emitters)]
            reports = []
            for process in running:
                output, _ = process.communicate(timeout=time_limit + 60)
                if process.returncode != 0:
                    raise RuntimeError(f"an emitter failed with exit status {process.returncode}")
                reports.append(json.loads(output.strip().splitlines()[-1]))
            return {"sent": sum(r["sent"] for r in reports), "started": min(r["started"] for r in reports),
                    "emitted": max(r["emitted"] for r in reports)}

        run_emitters(1, 1)  # warm-up: every server's listener is subscribed once its socket is connected
        if not all(receiver.wait_for(lambda r: r.count >= 1, deadline) for receiver in receivers):
            raise RuntimeError("the warm-up event did not arrive")
        stats = run_emitters(events, emitters)
        sent, started = stats["sent"], stats["started"]
        complete = all(receiver.wait_for(lambda r: r.count >= sent + 1, deadline) for receiver in receivers)
        finished = max(max(receiver.arrived.values()) for receiver in receivers)
        return {
            "sent": sent,
            "emits_per_s": sent / (stats["emitted"] - started),
            "delivered_per_socket_per_s": sent / (finished - started),
            "deliveries_per_s": sent * len(receivers) / (finished - started),
            "complete": complete,
        }
    finally:
        for receiver in receivers:
            receiver.close()
        for server in servers:
            server.stop()


def latencies(emitting: LiveServer, receiving: LiveServer, samples: int, time_limit: float) -> list[float]:
    user = new_user()
    token = emitting.token(user)
    receiver = Receiver(receiving.url, token)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    result = []
    deadline = time.monotonic() + time_limit
    try:
        for index in range(samples + 10):  # the first 10 warm up and are not counted
            if time.monotonic() > deadline:
                break
            sent = time.monotonic()
            response = session.post(emitting.url + "/api/imports", json=PARTS, timeout=15)
            response.raise_for_status()
            event_id = response.json()["event"]["eventId"]
            if not receiver.wait_for(lambda r, wanted=event_id: wanted in r.arrived, deadline):
                raise RuntimeError("an event did not arrive")
            if index >= 10:
                result.append((receiver.arrived[event_id] - sent) * 1000)
    finally:
        receiver.close()
        session.close()
    return result


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49]:6.2f} ms   p99 {cuts[98]:6.2f} ms   (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("threading", "eventlet", "gevent"), default="eventlet")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds, per phase")
    parser.add_argument("--emit-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # As an app would in production: the extension's per-event debug lines are not printed in this process.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.emit_only:
        emit_only(json.loads(args.config), args.user, args.events, args.time_limit)
        return

    channel = f"dashboard-ws-bench-{uuid.uuid4().hex}"
    queue = {"DASHBOARD_WS_MESSAGE_QUEUE": SHARED_REDIS_URL, "DASHBOARD_WS_CHANNEL": channel}
    log_dir = Path(tempfile.mkdtemp(prefix="dashboard-ws-bench-"))
    print(f"mode={args.mode} redis={SHARED_REDIS_URL} channel={channel} logs={log_dir}", flush=True)

    print("\nThroughput: write-only emitter processes -> Redis -> the user's socket on each of N server processes")
    for emitters in (1, 2):
        for processes in (1, 2):
            stats = throughput(args.mode, queue, processes, emitters, args.events, args.time_limit, log_dir)
            print(f"  {emitters} emitter(s), {processes} server process(es): {stats['sent']} events; "
                  f"emitted {stats['emits_per_s']:5.0f}/s; "
                  f"delivered {stats['delivered_per_socket_per_s']:5.0f} events/s to each socket "
                  f"({stats['deliveries_per_s']:5.0f} deliveries/s in all){'' if stats['complete'] else '  INCOMPLETE'}",
                  flush=True)

    print("\nLatency: request that emits at once -> event on the user's socket")
    plain = start(args.mode, {}, log_dir, "latency-no-queue")
    try:
        without = latencies(plain, plain, args.samples, args.time_limit)
    finally:
        plain.stop()
    first, second = start(args.mode, queue, log_dir, "latency-1"), start(args.mode, queue, log_dir, "latency-2")
    try:
        local = latencies(first, first, args.samples, args.time_limit)
        remote = latencies(second, first, args.samples, args.time_limit)
    finally:
        first.stop()
        second.stop()
    print(f"  one process, no queue:                {percentiles(without)}")
    print(f"  queue, socket on the emitting process: {percentiles(local)}")
    print(f"  queue, socket on another process:      {percentiles(remote)}")
    base, through = statistics.quantiles(without, n=100, method="inclusive"), statistics.quantiles(remote, n=100, method="inclusive")
    print(f"  added by the queue (another process minus no queue): p50 {through[49] - base[49]:+.2f} ms, "
          f"p99 {through[98] - base[98]:+.2f} ms")


if __name__ == "__main__":
    main()
