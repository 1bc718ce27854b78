"""The benchmark suite: the extension against the naive Flask-SocketIO app, python-socketio under uvicorn and
Node.js socket.io, on this machine, over loopback, with the same tokens, event and load.

    python bench/run.py --quick                 # smoke run, about two minutes
    python bench/run.py                         # the full suite (see BENCHMARKS.md for its duration)
    python bench/run.py --servers ext,naive --repeats 3 --levels 1000,5000 --profile

Each repeat starts every server afresh (one process, ephemeral port) and runs, in order: a connect ramp
through ``--levels`` (RSS per connection, handshakes/s, server CPU per handshake, connect latency), idle CPU,
emit-to-receive latency at ``--rates`` with ``--latency-users`` connected users, server CPU per event
emitted from a view (one event per request), the sustained maximum (delivered events/s while p99 <= 50 ms)
with one socket per user, the rest of the ramp, and the sustained maximum again with ``--tabs`` sockets per
user. Then the microbenchmark (pytest-benchmark) of the per-event envelope cost. Everything is bounded in
count and in time (``--time-limit``); every process it starts is stopped when it ends.

Output: ``bench/results/<UTC time>/`` with ``results.json`` (every run, and the median with its spread),
``summary.md`` (the table, ratios to the naive baseline and to Node), ``latency.png`` and, with
``--profile``, py-spy profiles of the extension's connect and emit paths.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import datetime as dt
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import JWT_SECRET, mint_tokens, raise_nofile_limit  # noqa: E402

PYTHON = sys.executable
NODE = shutil.which("node") or "node"
# ext-redisN: N processes sharing Redis with per-user channels; ext-redisN-shared: with the one shared channel.
REDIS_GROUPS = {f"ext-redis{n}{mode}": (n, mode or "-user") for n in (1, 2, 4) for mode in ("", "-shared")}
# ext-stock, ext-gevent-stock: the same as before issue #14: DASHBOARD_WS_LEAN_SOCKETS off (engine.io's own writer
# and ping tasks) and the WSGI servers' own connection buffers (ext_app.py --stock-server).
SERVER_KINDS = ("ext", "ext-defaults", "ext-gevent", "ext-threading", "ext-stock", "ext-gevent-stock", *REDIS_GROUPS,
                "naive", "asgi", "node")
SERVER_LABELS = {
    "ext": "flask-dashboard-ws",
    "ext-defaults": "flask-dashboard-ws, defaults",
    **{kind: f"flask-dashboard-ws, {n} process{'es' if n > 1 else ''} + Redis, {mode[1:]} channels"
       for kind, (n, mode) in REDIS_GROUPS.items()},
    "ext-gevent": "flask-dashboard-ws, gevent",
    "ext-stock": "flask-dashboard-ws, engine.io's sockets",
    "ext-gevent-stock": "flask-dashboard-ws, gevent, engine.io's sockets",
    "ext-threading": "flask-dashboard-ws, threading",
    "naive": "naive Flask-SocketIO",
    "asgi": "python-socketio ASGI/uvicorn",
    "node": "Node socket.io 4.8",
}
P99_LIMIT_MS = 50.0
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")  # ext-redisN

_children: list[subprocess.Popen] = []


def _stop_children() -> None:
    for proc in _children:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in _children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


atexit.register(_stop_children)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """``kill`` (SIGTERM) would end the harness without atexit, leaving its servers running (it did once)."""
    sys.exit(128 + signum)


def _preexec() -> None:
    raise_nofile_limit()
    os.setpgrp()  # a Ctrl-C to the harness reaches the harness only; it stops its children itself


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "BENCH_JWT_SECRET": JWT_SECRET, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_preexec, cwd=str(ROOT), **kwargs)
    _children.append(proc)
    return proc


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------------------
# Processes under test and load processes


def start_server(kind: str, args: argparse.Namespace, log_path: Path) -> "Server | ServerGroup":
    if kind in REDIS_GROUPS:
        processes, channels = REDIS_GROUPS[kind]
        return ServerGroup(kind, args, log_path, processes, channels[1:])
    return Server(kind, args, log_path)


class Server:
    """One server under test in its own process; prints ``PORT n`` once it listens."""

    def __init__(self, kind: str, args: argparse.Namespace, log_path: Path, ext_config: str | None = None) -> None:
        self.kind = kind
        if ext_config is not None:  # a process of a ServerGroup
            cmd = [PYTHON, str(BENCH / "servers/ext_app.py"), "--mode", args.ext_mode, "--log", args.ext_log,
                   "--config", ext_config]
        elif kind == "ext-defaults":  # the extension as installed: eventlet, no --ext-config
            cmd = [PYTHON, str(BENCH / "servers/ext_app.py"), "--mode", "eventlet", "--log", args.ext_log]
        elif kind.startswith("ext"):
            variant = kind.removesuffix("-stock")
            mode = variant.partition("-")[2] or args.ext_mode  # "ext" runs in --ext-mode; "ext-gevent" in gevent
            config = args.ext_config
            if variant != kind:
                config = json.dumps({**json.loads(config), "DASHBOARD_WS_LEAN_SOCKETS": False})
            cmd = [PYTHON, str(BENCH / "servers/ext_app.py"), "--mode", mode, "--log", args.ext_log,
                   "--config", config] + (["--stock-server"] if variant != kind else [])
        elif kind == "naive":
            cmd = [PYTHON, str(BENCH / "baselines/naive_app.py")]
        elif kind == "asgi":
            cmd = [PYTHON, str(BENCH / "baselines/asgi_app.py")]
        elif kind == "node":
            cmd = [NODE, *args.node_args.split(), str(BENCH / "baselines/node_server.js")]
        else:
            raise ValueError(kind)
        self.log_file = open(log_path, "w")
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=self.log_file, text=True)
        self.port = self._wait_port(60)
        self.url = f"http://127.0.0.1:{self.port}"
        self.urls = [self.url]
        self.ps = psutil.Process(self.proc.pid)
        if args.server_cpu is not None:  # the set-up: the server on one core, the load on the rest
            self.ps.cpu_affinity([args.server_cpu])
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _wait_port(self, timeout: float) -> int:
        result: queue.Queue = queue.Queue()

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                match = re.match(r"PORT (\d+)", line)
                if match:
                    result.put(int(match.group(1)))
                    return
                self.log_file.write(line)
            result.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            port = result.get(timeout=timeout)
        except queue.Empty:
            port = None
        if port is None:
            raise RuntimeError(f"{self.kind} server did not start; see {self.log_file.name}")
        return port

    def _drain_stdout(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.log_file.write(line)

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def cpu_system(self) -> float:
        return self.ps.cpu_times().system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def fds(self) -> int:
        return self.ps.num_fds()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/bench/stats{'?reset=1' if reset else ''}", timeout=30) as resp:
            return json.load(resp)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


class ServerGroup:
    """Several extension processes sharing Redis (measurement 5): one server to the harness.

    Each process runs ``ext_app.py`` in ``--ext-mode`` with ``--ext-config`` plus
    ``DASHBOARD_WS_MESSAGE_QUEUE`` (the machine's Redis, ``REDIS_URL``) and a channel of this run's own.
    The load clients spread their sockets over the processes; the driver posts every emit to the first, so
    every event reaches its sockets through Redis. CPU, RSS, descriptors, connections and GC are summed
    (GC pauses: the longest of any process).
    """

    def __init__(self, kind: str, args: argparse.Namespace, log_path: Path, processes: int, channels: str) -> None:
        config = {**json.loads(args.ext_config), "DASHBOARD_WS_MESSAGE_QUEUE": REDIS_URL,
                  "DASHBOARD_WS_CHANNEL": f"bench-{uuid.uuid4().hex}", "DASHBOARD_WS_QUEUE_CHANNELS": channels}
        self.kind = kind
        self.members: list[Server] = []
        try:
            for i in range(processes):
                member_log = log_path.with_name(f"{log_path.stem}{i + 1}{log_path.suffix}")
                self.members.append(Server(kind, args, member_log, ext_config=json.dumps(config)))
        except Exception:
            self.stop()
            raise
        self.urls = [m.url for m in self.members]
        self.url = self.urls[0]
        self.proc = self.members[0].proc

    def cpu(self) -> float:
        return sum(m.cpu() for m in self.members)

    def cpu_system(self) -> float:
        return sum(m.cpu_system() for m in self.members)

    def rss(self) -> int:
        return sum(m.rss() for m in self.members)

    def fds(self) -> int:
        return sum(m.fds() for m in self.members)

    def stats(self, reset: bool = False) -> dict[str, Any]:
        stats = [m.stats(reset) for m in self.members]
        gcs = [s["gc"] for s in stats]
        return {
            "connections": sum(s["connections"] for s in stats),
            "gc": {
                "collections": [sum(g["collections"][i] for g in gcs) for i in range(3)],
                "pause_total_ms": round(sum(g["pause_total_ms"] for g in gcs), 3),
                "pause_max_ms": [max(g["pause_max_ms"][i] for g in gcs) for i in range(3)],
                "pauses_over_20ms": sum(g["pauses_over_20ms"] for g in gcs),
            },
        }

    def stop(self) -> None:
        for m in self.members:
            m.stop()


class Client:
    """One Node load-client process (bench/loadgen/client.js), driven over stdin/stdout."""

    def __init__(self, index: int, log_path: Path) -> None:
        self.index = index
        self.log_file = open(log_path, "w")
        self.proc = spawn([NODE, str(BENCH / "loadgen/client.js")], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=self.log_file, text=True, bufsize=1)
        self.ps = psutil.Process(self.proc.pid)
        self._replies: dict[int, queue.Queue] = collections.defaultdict(queue.Queue)
        self._next_id = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            try:
                msg = json.loads(line)
            except ValueError:
                self.log_file.write(line)
                continue
            with self._lock:  # a defaultdict is not safe to fill from two threads: one lock for both
                replies = self._replies[msg.get("id", -1)]
            replies.put(msg)

    def send(self, cmd: str, **fields: Any) -> int:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
            self._replies[msg_id]  # its queue exists before the answer can arrive
        self.proc.stdin.write(json.dumps({"id": msg_id, "cmd": cmd, **fields}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return msg_id

    def wait(self, msg_id: int, timeout: float) -> dict[str, Any]:
        with self._lock:
            replies = self._replies[msg_id]
        try:
            reply = replies.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"client {self.index} did not answer {msg_id} within {timeout:.0f} s") from None
        with self._lock:
            self._replies.pop(msg_id, None)
        if "error" in reply:
            raise RuntimeError(f"client {self.index}: {reply['error']}")
        return reply

    def call(self, cmd: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        return self.wait(self.send(cmd, **fields), timeout)

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def all_call(clients: list[Client], cmd: str, timeout: float = 60, per_client: list[dict] | None = None) -> list[dict]:
    ids = [c.send(cmd, **(per_client[i] if per_client else {})) for i, c in enumerate(clients)]
    return [c.wait(i, timeout) for c, i in zip(clients, ids)]


def system_busy() -> float:
    """Busy CPU seconds of the whole machine so far (every core), to see what else ran during a phase."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# --------------------------------------------------------------------------------------------------------------
# One server, one repeat


class Bench:
    def __init__(self, kind: str, args: argparse.Namespace, run_dir: Path, tokens_file: Path, repeat: int,
                 deadline: float) -> None:
        self.kind = kind
        self.args = args
        self.run_dir = run_dir
        self.tokens_file = tokens_file
        self.repeat = repeat
        self.deadline = deadline
        self.prefix = f"{kind}-r{repeat}"
        self.result: dict[str, Any] = {"server": kind, "repeat": repeat, "ramp": [], "idle": [], "latency": [],
                                       "view": None, "max_search": {}, "errors": []}
        self.connected_users = 0  # users 0..n-1 are connected, one socket each (the ramp's state)

    # -- helpers ---------------------------------------------------------------------------------------------
    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def split(self, first: int, end: int) -> list[tuple[int, int]]:
        n = len(self.clients)
        size = end - first
        bounds = [first + size * i // n for i in range(n + 1)]
        return [(bounds[i], bounds[i + 1]) for i in range(n)]

    def connect(self, first: int, end: int, tabs: int) -> dict[str, Any]:
        """Connect users [first, end) with ``tabs`` sockets each; server CPU and wall time of the whole step."""
        per_client = [{"url": self.server.urls[i % len(self.server.urls)], "tokens_file": str(self.tokens_file), "users": list(r), "tabs": tabs,
                       "concurrency": self.args.connect_concurrency, "timeout_ms": 20000,
                       "lean": self.args.client == "lean",
                       "rate": self.args.ramp_rate / len(self.clients) if self.args.ramp_rate else 0}
                      for i, r in enumerate(self.split(first, end))]
        cpu0, sys0, busy0 = self.server.cpu(), self.server.cpu_system(), system_busy()
        ccpu0 = [c.cpu() for c in self.clients]
        replies = all_call(self.clients, "connect", timeout=60 + (end - first) * tabs / 20, per_client=per_client)
        cpu1, sys1, busy1 = self.server.cpu(), self.server.cpu_system(), system_busy()
        ccpu1 = [c.cpu() for c in self.clients]
        ok = sum(r["connected"] for r in replies)
        failed = sum(r["failed"] for r in replies)
        failures: dict[str, int] = collections.Counter()
        for r in replies:
            failures.update(r["failures"])
        retries = sum(r.get("retries", 0) for r in replies)  # handshakes refused (HTTP 429) and retried
        wall = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1000.0
        connect_ms = sorted(ms for r in replies for ms in r["connect_ms"])
        clients_cpu = sum(b - a for a, b in zip(ccpu0, ccpu1))
        return {
            "attempted": (end - first) * tabs, "connected": ok, "failed": failed, "failures": dict(failures),
            "retries": retries,
            "wall_s": round(wall, 3), "handshakes_per_s": round(ok / wall, 1) if wall > 0 else None,
            "server_cpu_s": round(cpu1 - cpu0, 3), "server_cpu_system_s": round(sys1 - sys0, 3),
            "server_cpu_per_handshake_us": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None,
            "server_cpu_pct": round((cpu1 - cpu0) / wall * 100, 1) if wall > 0 else None,
            "connect_ms_p50": pct(connect_ms, 0.5), "connect_ms_p99": pct(connect_ms, 0.99),
            "connect_ms_max": connect_ms[-1] if connect_ms else None,
            "clients_cpu_pct": round(clients_cpu / wall * 100, 1) if wall > 0 else None,
            "client_max_cpu_pct": round(max(b - a for a, b in zip(ccpu0, ccpu1)) / wall * 100, 1) if wall > 0 else None,
            "other_cpu_pct": round(((busy1 - busy0) - (cpu1 - cpu0) - clients_cpu) / wall * 100, 1) if wall > 0 else None,
        }

    def wait_server_connections(self, expected: int, timeout: float = 30) -> int:
        """Poll the server until it reports ``expected`` sockets; a busy server may not answer for a while."""
        deadline = time.monotonic() + timeout
        n = -1
        while time.monotonic() < deadline:
            try:
                n = self.server.stats()["connections"]
            except OSError:  # the stats request timed out: the server is still busy with the sockets
                continue
            if n == expected:
                return n
            time.sleep(0.25)
        return n

    def disconnect_all(self) -> None:
        """Close every socket and wait until the server has processed the disconnects.

        A Python server handles ~500-1,000 disconnects a second (handler, context, log line each), so
        with 19,500 sockets that takes up to a minute, during which it answers nothing else.
        """
        held = self.server_connections_hint()
        disconnect_start = time.monotonic()
        all_call(self.clients, "disconnect", timeout=60)
        left = self.wait_server_connections(0, timeout=30 + held / 200)
        self.result.setdefault("disconnects", []).append(
            {"sockets": held, "seconds": round(time.monotonic() - disconnect_start, 1), "left": left})
        self.connected_users = 0

    def server_connections_hint(self) -> int:
        try:
            return self.server.stats()["connections"]
        except OSError:
            return 20_000

    def run_driver(self, emit_rate: float, users: int, duration: float, max_batch: int) -> dict[str, Any]:
        cmd = [NODE, str(BENCH / "loadgen/driver.js"), "--url", self.server.url, "--rate", str(emit_rate),
               "--duration", str(duration), "--users", str(users), "--max-batch", str(max_batch),
               "--concurrency", str(self.args.driver_concurrency), "--seed", str(1000 + self.repeat)]
        proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=duration + 60)
        for line in out.splitlines():
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"driver failed: {out[-2000:]}")

    def emit_phase(self, label: str, emit_rate: float, users: int, tabs: int, duration: float,
                   max_batch: int | None = None) -> dict[str, Any]:
        """Emit at ``emit_rate`` to random users of ``users`` (each with ``tabs`` sockets) for ``duration``."""
        max_batch = max_batch or self.args.max_batch
        all_call(self.clients, "reset")
        self.server.stats(reset=True)
        cpu0, busy0, t0 = self.server.cpu(), system_busy(), time.monotonic()
        ccpu0 = [c.cpu() for c in self.clients]
        driver = self.run_driver(emit_rate, users, duration, max_batch)
        expected = driver["acked"] * tabs
        # Drain: wait for every acknowledged event to arrive, or for arrivals to stop for 2 s (at most 15 s).
        last, last_change, drain_deadline = -1, time.monotonic(), time.monotonic() + 15
        while time.monotonic() < drain_deadline:
            got = sum(r["received"] for r in all_call(self.clients, "count"))
            if got >= expected:
                break
            if got != last:
                last, last_change = got, time.monotonic()
            elif time.monotonic() - last_change > 2:
                break
            time.sleep(0.05)
        cpu1, busy1, t1 = self.server.cpu(), system_busy(), time.monotonic()
        ccpu1 = [c.cpu() for c in self.clients]
        reports = all_call(self.clients, "report", timeout=60)
        gc_stats = self.server.stats().get("gc")
        lat = sorted(x for r in reports for x in r["latencies_ms"])
        delivered = sum(r["received"] for r in reports)
        wall = t1 - t0
        clients_cpu = sum(b - a for a, b in zip(ccpu0, ccpu1))
        server_cpu = cpu1 - cpu0
        send_window = driver["send_window_s"]
        result = {
            "label": label, "emit_rate": emit_rate, "target_delivered_per_s": emit_rate * tabs, "users": users,
            "tabs": tabs, "duration_s": duration, "max_batch": max_batch,
            "scheduled": driver["scheduled"], "acked": driver["acked"], "failed_events": driver["failed_events"],
            "requests": driver["requests"], "expected": expected, "delivered": delivered,
            "lost": expected - delivered, "bad_events": sum(r["bad_events"] for r in reports),
            "unexpected_disconnects": sum(r["unexpected_disconnects"] for r in reports),
            "delivered_per_s": round(delivered / send_window, 1),
            "p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "p99_ms": pct(lat, 0.99),
            "p999_ms": pct(lat, 0.999), "max_ms": lat[-1] if lat else None,
            "server_cpu_s": round(server_cpu, 3), "server_cpu_pct": round(server_cpu / wall * 100, 1),
            "server_cpu_per_event_us": round(server_cpu / driver["acked"] * 1e6, 1) if driver["acked"] else None,
            "server_cpu_per_delivery_us": round(server_cpu / delivered * 1e6, 1) if delivered else None,
            "wall_s": round(wall, 2),
            "clients_cpu_pct": round(clients_cpu / wall * 100, 1),
            "client_max_cpu_pct": round(max(b - a for a, b in zip(ccpu0, ccpu1)) / wall * 100, 1),
            "driver_cpu_pct": round(driver["cpu_us"] / 1e6 / max(driver["wall_s"], 1e-9) * 100, 1),
            "driver_request_ms_p50": driver["request_ms_p50"], "driver_request_ms_p99": driver["request_ms_p99"],
            "driver_max_pending": driver["max_pending"], "driver_lag_ms_p99": driver["lag_ms_p99"],
            "driver_lag_ms_max": driver["lag_ms_max"],
            "other_cpu_pct": round(((busy1 - busy0) - server_cpu - clients_cpu - driver["cpu_us"] / 1e6) / wall * 100, 1),
            "gc": gc_stats,
        }
        result["passed"] = bool(
            lat and result["p99_ms"] <= P99_LIMIT_MS and delivered >= 0.99 * driver["scheduled"] * tabs
            and driver["acked"] >= 0.99 * driver["scheduled"] and (driver["lag_ms_p99"] or 0) <= P99_LIMIT_MS
        )
        log(f"  {self.kind} {label}: {emit_rate:g} ev/s x{tabs} tabs -> delivered {delivered}/{expected} "
            f"({result['delivered_per_s']:.0f}/s) p50 {_f(result['p50_ms'])} p99 {_f(result['p99_ms'])} "
            f"p99.9 {_f(result['p999_ms'])} ms; server {result['server_cpu_pct']}% "
            f"({_f(result['server_cpu_per_event_us'])} us/event), clients {result['clients_cpu_pct']}% "
            f"(max {result['client_max_cpu_pct']}%), driver lag p99 {_f(driver['lag_ms_p99'])} ms, "
            f"other {result['other_cpu_pct']}%")
        return result

    def idle_phase(self, connections: int, duration: float) -> dict[str, Any]:
        profile = None
        if self.args.profile_idle and connections == max(self.args.levels) and self.kind in self.args.profile_servers:
            profile = self.profiler(f"idle{connections}")
        cpu0, busy0, t0 = self.server.cpu(), system_busy(), time.monotonic()
        time.sleep(duration)
        cpu1, busy1, t1 = self.server.cpu(), system_busy(), time.monotonic()
        if profile:
            profile.stop()
        result = {"connections": connections, "duration_s": round(t1 - t0, 2),
                  "server_cpu_pct": round((cpu1 - cpu0) / (t1 - t0) * 100, 2),
                  "machine_busy_pct": round((busy1 - busy0) / (t1 - t0) * 100, 1)}
        log(f"  {self.kind} idle with {connections} connections: {result['server_cpu_pct']}% of a core")
        return result

    def max_search(self, label: str, users: int, tabs: int) -> dict[str, Any]:
        """Raise the delivered rate step by step until p99 passes 50 ms (or events are lost)."""
        steps = []
        best = None
        rates = list(self.args.search_rates)
        lowest = rates[0] / 8  # when even the first step fails, halve down to this
        while rates:
            rate = rates.pop(0)
            if self.time_left() < self.args.search_window + 20:
                self.result["errors"].append(f"{label}: stopped for the time limit")
                break
            step = self.emit_phase(f"{label}@{rate:g}", rate / tabs, users, tabs, self.args.search_window)
            steps.append(step)
            if step["passed"]:
                best = step["delivered_per_s"]
                if rate < self.args.search_rates[0]:
                    break  # found on the way down
            elif best is None and rate / 2 >= lowest:
                rates = [rate / 2]
            else:
                break
        failing = [s["target_delivered_per_s"] for s in steps if not s["passed"]]
        return {"users": users, "tabs": tabs, "sustained_delivered_per_s": best,
                "first_failing_rate": min(failing) if failing else None, "steps": steps}

    def ramp_to(self, level: int) -> bool:
        """Connect users up to ``level`` (one socket each); False when the server refused or dropped some."""
        first = self.connected_users
        profile = self.profiler("connect") if self.args.profile and first == 0 and self.kind in self.args.profile_servers else None
        step = self.connect(first, level, 1)
        if profile:
            profile.stop()
        time.sleep(self.args.settle)
        held = self.server.stats()["connections"]
        rss = self.server.rss()
        step.update({
            "level": level, "held": held, "rss_mb": round(rss / 2**20, 1), "fds": self.server.fds(),
            "rss_per_conn_kb": round((rss - self.base_rss) / held / 1024, 1) if held else None,
        })
        self.result["ramp"].append(step)
        self.connected_users = level
        log(f"  {self.kind} ramp to {level}: held {held}, {step['handshakes_per_s']} handshakes/s, "
            f"{step['server_cpu_per_handshake_us']} us CPU/handshake, connect p99 {_f(step['connect_ms_p99'])} ms, "
            f"RSS {step['rss_mb']} MB ({step['rss_per_conn_kb']} KB/conn), failed {step['failed']} {step['failures']}, "
            f"retried {step['retries']}")
        return step["failed"] <= 0.01 * step["attempted"] and held >= 0.99 * level

    def profiler(self, what: str) -> "Profiler":
        return Profiler(self.server.proc.pid, self.run_dir / f"profile-{self.prefix}-{what}.txt")

    # -- the sequence --------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        a = self.args
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.server = start_server(self.kind, a, logs / f"{self.prefix}-server.log")
        self.clients = [Client(i, logs / f"{self.prefix}-client{i}.log") for i in range(a.clients)]
        try:
            self._sequence()
        except Exception as exc:  # keep what was measured; the report shows the error
            log(f"  {self.kind}: ERROR {exc!r}")
            self.result["errors"].append(repr(exc))
        finally:
            for c in self.clients:
                c.stop()
            self.server.stop()
        return self.result

    def _sequence(self) -> None:
        a = self.args
        log(f"{self.kind} (repeat {self.repeat}) on {self.server.url}")
        # Warm-up: a few connections and events, so that lazy imports and first-call costs are behind us.
        self.connect(0, min(20, a.latency_users), 1)
        self.emit_phase("warmup", 50, min(20, a.latency_users), 1, 1.0)
        self.disconnect_all()
        time.sleep(a.settle)
        self.base_rss = self.server.rss()
        self.result["base_rss_mb"] = round(self.base_rss / 2**20, 1)

        levels = sorted(set(a.levels) | {a.latency_users})
        top_ok = True
        for level in levels:
            if self.time_left() < 30:
                self.result["errors"].append(f"time limit before ramp to {level}")
                break
            if not self.ramp_to(level):
                self.result["errors"].append(f"ramp to {level} incomplete")
                top_ok = False
                break
            if level == a.latency_users:
                if a.skip_emits:
                    self.result["idle"].append(self.idle_phase(level, a.idle_window))
                else:
                    self._emit_suite(level)
                    self._tabs_suite()
        self.result["max_connections_held"] = max((s["held"] for s in self.result["ramp"]), default=0)
        top = self.connected_users
        if top_ok and top != a.latency_users and self.time_left() > a.idle_window + a.window + 20:
            self.result["idle"].append(self.idle_phase(top, a.idle_window))
            if not a.skip_emits:
                self.result["latency"].append(self.emit_phase(f"top@{a.top_rate}", a.top_rate, top, 1, a.window))
        if top and self.time_left() > 60:
            self.disconnect_all()  # the disconnect storm at the top level, timed (bounded: see disconnect_all)
            log(f"  {self.kind} disconnect of {top}: {self.result['disconnects'][-1]}")

    def _tabs_suite(self) -> None:
        """The sustained maximum with --tabs sockets per user, between the ramp's levels (the same sockets in all).

        Run at the latency level rather than after the top one, so that the server's disconnect of the
        ramp's sockets takes seconds, not minutes (python-socketio's stock manager is O(sockets) per
        disconnect); the ramp then resumes from no sockets.
        """
        a = self.args
        if a.tabs <= 1 or self.time_left() < 60:
            return
        self.disconnect_all()
        users = a.tab_users or max(1, a.latency_users // a.tabs)
        step = self.connect(0, users, a.tabs)
        log(f"  {self.kind} {users} users x {a.tabs} tabs: {step['connected']} connected")
        self.result["tabs_connect"] = step
        time.sleep(a.settle)
        self.result["max_search"][f"tabs{a.tabs}"] = self.max_search(f"max-tabs{a.tabs}", users, a.tabs)
        self.disconnect_all()

    def _emit_suite(self, users: int) -> None:
        a = self.args
        self.result["idle"].append(self.idle_phase(users, a.idle_window))
        for rate in a.rates:
            profile = None
            if a.profile and rate == a.profile_rate and self.kind in a.profile_servers:
                profile = self.profiler(f"emit{rate}")
            self.result["latency"].append(self.emit_phase(f"fixed@{rate}", rate, users, 1, a.window))
            if profile:
                profile.stop()
        profile = self.profiler("view") if a.profile and self.kind in a.profile_servers else None
        self.result["view"] = self.emit_phase(f"view@{a.view_rate}", a.view_rate, users, 1, a.window, max_batch=1)
        if profile:
            profile.stop()
        self.result["max_search"]["tabs1"] = self.max_search("max-tabs1", users, 1)


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------------------
# Profiles (py-spy)


class Profiler:
    """``py-spy record`` on a server process until stopped; then a summary of its hottest frames."""

    def __init__(self, pid: int, summary_path: Path) -> None:
        self.summary_path = summary_path
        self.raw_path = summary_path.parent / "logs" / summary_path.with_suffix(".collapsed").name
        self.raw_path.parent.mkdir(exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        self.proc = spawn([py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--nonblocking",
                           "--output", str(self.raw_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.raw_path.exists():
            self.summary_path.write_text(summarise_profile(self.raw_path))


def summarise_profile(raw_path: Path, top: int = 30) -> str:
    """Self and inclusive sample shares per function, overall and for flask_dashboard_ws's own frames."""
    self_counts: collections.Counter = collections.Counter()
    incl_counts: collections.Counter = collections.Counter()
    total = 0
    idle = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        if any(f.startswith(("wait (", "select (", "poll (", "epoll")) or "hub.py" in f and "wait" in f
               for f in frames[-2:]):
            idle += n
        self_counts[frames[-1]] += n
        for f in set(frames):
            incl_counts[f] += n
    if not total:
        return "no samples\n"
    out = [f"{raw_path.name}: {total} samples (~{idle * 100 // total}% in the hub's wait/poll)", "",
           "self (share of samples):"]
    out += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in self_counts.most_common(top)]
    out += ["", "inclusive (share of samples):"]
    out += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in incl_counts.most_common(top)]
    ext = [(f, c) for f, c in incl_counts.most_common() if "flask_dashboard_ws" in f]
    out += ["", "inclusive, flask_dashboard_ws frames:"]
    out += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in ext[:top]]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------------
# Microbenchmark, machine, summary


def run_micro(run_dir: Path, quick: bool) -> dict[str, Any]:
    out = run_dir / "logs" / "micro.json"
    out.parent.mkdir(exist_ok=True)
    cmd = [PYTHON, "-m", "pytest", str(BENCH / "micro"), "-q", "-p", "no:cacheprovider", "--benchmark-only",
           f"--benchmark-json={out}", "--benchmark-columns=min,median,mean,stddev,rounds",
           "-W", r"ignore:\s*Eventlet is deprecated:Warning", "--rootdir", str(BENCH / "micro"),
           "-c", str(BENCH / "micro/pytest.ini")]
    if quick:
        cmd += ["--benchmark-max-time=0.3", "--benchmark-min-rounds=200"]
    else:
        cmd += ["--benchmark-max-time=2", "--benchmark-min-rounds=2000"]
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text, _ = proc.communicate(timeout=600)
    (run_dir / "logs" / "micro.txt").write_text(text)
    if not out.exists():
        return {"error": text[-3000:]}
    data = json.loads(out.read_text())
    return {b["name"]: {"median_us": round(b["stats"]["median"] * 1e6, 2), "mean_us": round(b["stats"]["mean"] * 1e6, 2),
                        "min_us": round(b["stats"]["min"] * 1e6, 2), "stddev_us": round(b["stats"]["stddev"] * 1e6, 2),
                        "rounds": b["stats"]["rounds"]}
            for b in data["benchmarks"]}


def machine_info() -> dict[str, Any]:
    def sh(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except Exception as exc:
            return repr(exc)

    lscpu = sh(["lscpu"])
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Hypervisor vendor", "L2 cache", "L3 cache")
    versions = {}
    for name in ("flask", "flask_socketio", "socketio", "engineio", "eventlet", "gevent", "marshmallow",
                 "flask_jwt_extended", "jwt", "uvicorn", "structlog"):
        try:
            from importlib.metadata import version

            dist = {"flask_socketio": "Flask-SocketIO", "socketio": "python-socketio", "engineio": "python-engineio",
                    "flask_jwt_extended": "Flask-JWT-Extended", "jwt": "PyJWT"}.get(name, name)
            versions[dist] = version(dist)
        except Exception:
            pass
    node_pkgs = {}
    for pkg in ("socket.io", "socket.io-client", "jsonwebtoken"):
        try:
            node_pkgs[pkg] = json.loads((BENCH / "node_modules" / pkg / "package.json").read_text())["version"]
        except Exception:
            pass
    return {
        "lscpu": {k: v.strip() for line in lscpu.splitlines() if ":" in line
                  for k, v in [line.split(":", 1)] if k.strip() in keep},
        "free": sh(["free", "-h"]).strip(),
        "kernel": platform.release(), "python": platform.python_version(), "node": sh([NODE, "--version"]).strip(),
        "nofile_limit": raise_nofile_limit(), "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
        "loadavg_at_start": os.getloadavg(), "python_packages": versions, "node_packages": node_pkgs,
        "git_head": sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip(),
        "git_dirty_package": bool(sh(["git", "-C", str(ROOT), "status", "--porcelain", "flask_dashboard_ws"]).strip()),
    }


def flatten(run: dict[str, Any]) -> dict[str, float]:
    """The headline figures of one run, as name -> value, for medians across repeats."""
    m: dict[str, float] = {}
    for step in run.get("ramp", []):
        lv = step["level"]
        m[f"rss_per_conn_kb@{lv}"] = step["rss_per_conn_kb"]
        m[f"handshakes_per_s@{lv}"] = step["handshakes_per_s"]
        m[f"cpu_per_handshake_us@{lv}"] = step["server_cpu_per_handshake_us"]
        m[f"connect_p99_ms@{lv}"] = step["connect_ms_p99"]
        m[f"held@{lv}"] = step["held"]
    ramp = run.get("ramp", [])
    if len(ramp) >= 2 and ramp[-1]["held"] > ramp[-2]["held"]:
        # Between the two top levels: free of the heap that earlier phases left behind (see BENCHMARKS.md).
        top, below = ramp[-1], ramp[-2]
        m[f"rss_marginal_kb@{top['level']}"] = round(
            (top["rss_mb"] - below["rss_mb"]) * 1024 / (top["held"] - below["held"]), 1)
    m["max_connections_held"] = run.get("max_connections_held")
    for idle in run.get("idle", []):
        m[f"idle_cpu_pct@{idle['connections']}"] = idle["server_cpu_pct"]
    for lat in run.get("latency", []):
        key = f"{lat['emit_rate']:g}/s@{lat['users']}"
        for p in ("p50_ms", "p99_ms", "p999_ms"):
            m[f"{p}@{key}"] = lat[p]
        m[f"cpu_per_event_us@{key}"] = lat["server_cpu_per_event_us"]
        m[f"lost@{key}"] = lat["lost"]
    idle_pct = {idle["connections"]: idle["server_cpu_pct"] for idle in run.get("idle", [])}

    def net_us(phase: dict[str, Any]) -> float | None:
        """Server CPU per event less the idle (heartbeat) CPU measured with as many connections."""
        rate = idle_pct.get(phase["users"] * phase["tabs"])
        if rate is None or not phase["acked"]:
            return None
        return round((phase["server_cpu_s"] - rate / 100 * phase["wall_s"]) / phase["acked"] * 1e6, 1)

    for lat in run.get("latency", []):
        m[f"net_cpu_per_event_us@{lat['emit_rate']:g}/s@{lat['users']}"] = net_us(lat)
    if run.get("view"):
        m["view_cpu_per_event_us"] = run["view"]["server_cpu_per_event_us"]
        m["view_net_cpu_per_event_us"] = net_us(run["view"])
        m["view_p99_ms"] = run["view"]["p99_ms"]
    for name, search in run.get("max_search", {}).items():
        m[f"sustained_delivered_per_s_{name}"] = search["sustained_delivered_per_s"]
    for d in run.get("disconnects", []):
        # The storms at the latency level and at the top level. left < 0: the server never answered the
        # harness until the wait's bound, so how many it had processed is unknown (see the report's notes).
        if d["sockets"] >= 1000 and d["left"] >= 0:
            m[f"disconnect_per_s@{d['sockets']}"] = round((d["sockets"] - d["left"]) / d["seconds"], 1)
    gc_max = [lat["gc"]["pause_max_ms"] for lat in run.get("latency", []) if lat.get("gc")]
    for search in run.get("max_search", {}).values():
        gc_max += [s["gc"]["pause_max_ms"] for s in search["steps"] if s.get("gc")]
    if gc_max:
        m["gc_max_pause_ms"] = max(max(x) for x in gc_max)
    return {k: v for k, v in m.items() if v is not None}


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    values: dict[str, list[float]] = collections.defaultdict(list)
    for run in runs:
        for k, v in flatten(run).items():
            values[k].append(v)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)} for k, v in values.items()}


# --------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: small loads, one repeat, about two minutes")
    p.add_argument("--servers", default="ext,naive,asgi,node",
                   help=f"comma-separated, of: {','.join(SERVER_KINDS)} (ext-gevent, ext-threading: the extension in that "
                        "mode with --ext-config; ext-defaults: eventlet without --ext-config)")
    p.add_argument("--repeats", type=int, help="runs per server (median and spread); default 3, quick 1")
    p.add_argument("--levels", help="connection ramp levels, e.g. 1000,5000,10000,19500")
    p.add_argument("--latency-users", type=int, help="connected users for the latency and max tests (default 5000)")
    p.add_argument("--rates", help="fixed emit rates for the latency test, events/s (default 100,1000,5000)")
    p.add_argument("--search-rates", help="delivered events/s steps of the sustained-maximum search")
    p.add_argument("--top-rate", type=float, help="emit rate at the top ramp level (default 1000)")
    p.add_argument("--view-rate", type=float, help="requests/s of the one-event-per-request phase (default 200)")
    p.add_argument("--window", type=float, help="seconds per fixed-rate phase (default 5)")
    p.add_argument("--search-window", type=float, help="seconds per sustained-maximum step (default 4)")
    p.add_argument("--idle-window", type=float,
                   help="seconds of the idle measurement (default 25: one ping interval, so every socket is pinged once)")
    p.add_argument("--tabs", type=int, default=10, help="sockets per user in the multi-tab test (1 to skip)")
    p.add_argument("--tab-users", type=int, help="users in the multi-tab test (default: latency-users / tabs)")
    p.add_argument("--clients", type=int, default=4, help="load-client processes")
    p.add_argument("--client", choices=("lean", "official"), default="lean",
                   help="lean: the Socket.IO protocol over ws (cheap); official: socket.io-client 4.8")
    p.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight per client process")
    p.add_argument("--ramp-rate", type=float, default=0,
                   help="handshakes started per second in all, evenly spaced (as browsers arrive); 0: as fast as "
                        "--connect-concurrency allows")
    p.add_argument("--driver-concurrency", type=int, default=8, help="emit requests in flight")
    p.add_argument("--max-batch", type=int, default=500, help="most events per emit request")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait after each ramp step")
    p.add_argument("--ext-mode", default="eventlet", choices=("eventlet", "gevent", "threading"))
    p.add_argument("--ext-log", default="info", choices=("info", "default", "off"))
    p.add_argument("--ext-config", default="{}", help="JSON of extra app.config keys for the extension's server")
    p.add_argument("--profile", action="store_true", help="py-spy the connect ramp, one emit rate and the view phase")
    p.add_argument("--profile-servers", default="ext", help="servers to profile with --profile (comma-separated)")
    p.add_argument("--profile-rate", type=float, default=1000)
    p.add_argument("--profile-idle", action="store_true", help="py-spy the idle phase at the top level (--profile-servers)")
    p.add_argument("--server-cpu", type=int, help="pin every server process to this CPU (e.g. 1)")
    p.add_argument("--node-args", default="", help="extra node options for the Node server, e.g. --cpu-prof")
    p.add_argument("--skip-emits", action="store_true", help="only the connect ramp and the idle CPU")
    p.add_argument("--no-micro", action="store_true", help="skip the microbenchmark")
    p.add_argument("--micro-only", action="store_true", help="only the microbenchmark")
    p.add_argument("--time-limit", type=float, help="seconds for the whole suite (default: quick 600, full 3600)")
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--label", default="", help="a name added to the results folder")
    p.add_argument("--update-doc", action="store_true", help="write the table into BENCHMARKS.md's results section")
    args = p.parse_args(argv)

    def ints(s: str) -> list[int]:
        return [int(float(x)) for x in s.split(",") if x]

    q = args.quick
    args.servers = [s for s in args.servers.split(",") if s]
    for s in args.servers:
        if s not in SERVER_KINDS:
            p.error(f"unknown server {s!r}")
    args.profile_servers = [s for s in args.profile_servers.split(",") if s]
    args.repeats = args.repeats or (1 if q else 3)
    args.levels = ints(args.levels) if args.levels else ([200, 500] if q else [1000, 5000, 10000, 19500])
    args.latency_users = args.latency_users or (500 if q else 5000)
    args.rates = ints(args.rates) if args.rates else ([100, 1000] if q else [100, 1000, 5000])
    args.search_rates = ints(args.search_rates) if args.search_rates else (
        [2000, 4000, 8000] if q else [2000, 4000, 8000, 12000, 16000, 24000, 32000, 48000])
    args.top_rate = args.top_rate or (100 if q else 1000)
    args.view_rate = args.view_rate or (100 if q else 200)
    args.window = args.window or (2.0 if q else 5.0)
    args.search_window = args.search_window or (2.0 if q else 4.0)
    args.idle_window = args.idle_window or (2.0 if q else 25.0)
    args.time_limit = args.time_limit or (600 if q else 3600)
    if q and args.tabs == 10:
        args.tabs = 5
    return args


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    raise_nofile_limit()
    started = time.monotonic()
    deadline = started + args.time_limit
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(args.out) / (stamp + (f"-{args.label}" if args.label else "") + ("-quick" if args.quick else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"results in {run_dir}")
    if not (BENCH / "node_modules" / "socket.io").exists():
        log("installing the Node packages (npm ci --prefix bench)")
        subprocess.run(["npm", "ci", "--prefix", str(BENCH), "--no-audit", "--no-fund"], check=True)

    results: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(PYTHON).name, "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "config": {k: v for k, v in vars(args).items()},
        "machine": machine_info(),
        "servers": {},
    }
    out_json = run_dir / "results.json"

    def save() -> None:
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        out_json.write_text(json.dumps(results, indent=1))

    if not args.micro_only:
        with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
            tokens_file = Path(tmp) / "tokens.json"
            n_users = max(max(args.levels), args.latency_users)
            tokens_file.write_text(json.dumps(mint_tokens(n_users)))
            for repeat in range(1, args.repeats + 1):
                for kind in args.servers:  # interleaved, so slow drifts of the machine hit every server alike
                    if time.monotonic() > deadline - 30:
                        log("time limit reached")
                        break
                    entry = results["servers"].setdefault(kind, {"label": SERVER_LABELS[kind], "runs": []})
                    entry["runs"].append(Bench(kind, args, run_dir, tokens_file, repeat, deadline).run())
                    entry["summary"] = summarise(entry["runs"])
                    save()
    if not args.no_micro and time.monotonic() < deadline:
        log("microbenchmark (pytest-benchmark)")
        results["micro"] = run_micro(run_dir, args.quick)
        for name, stats in results["micro"].items():
            if isinstance(stats, dict):
                log(f"  {name}: median {stats['median_us']} us")
    save()

    import report

    report.write_all(results, run_dir, update_doc=args.update_doc)
    log(f"done in {time.monotonic() - started:.0f} s: {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
