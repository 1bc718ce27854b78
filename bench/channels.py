"""What a process pays for events to users it has no socket of: the shared channel against per-user channels.

    python bench/channels.py [--processes 4] [--users 200] [--events 4000] [--rate 1000] [--rounds 3]

``--processes`` eventlet processes (``DashboardRealtime.run``) on the machine's Redis, each with ``--users``
users of one tab each: the official socket.io-client on Node (tests/js/tabs.mjs, transports ["websocket"], the
client's defaults otherwise). This process emits ``--events`` events at ``--rate`` a second to the first
process's users only, as a worker would (a write-only emitter), and waits until their tabs have them all. The
other processes hold none of those users: what each spends in that window, less what it spends in an idle
window as long (its own tabs' heartbeats), is its cost of other processes' events. CPU times come from /proc (user + system). The two
modes of ``DASHBOARD_WS_QUEUE_CHANNELS`` alternate over ``--rounds`` rounds, each on fresh processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import log_warnings_to_stderr, report  # noqa: E402

from tests.live_server import LiveServer  # noqa: E402
from tests.node_tabs import NodeTabs  # noqa: E402
from tests.redis_server import SHARED_REDIS_URL, private_channel  # noqa: E402
from tests.server_app import create_app  # noqa: E402

TIMEOUT = 120.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_for(tabs: NodeTabs, kind: str, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while len(tabs.kinds(kind)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(tabs.kinds(kind))} of {count} {kind} within {TIMEOUT}s")
        time.sleep(0.05)


def one_round(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config = {"DASHBOARD_WS_MESSAGE_QUEUE": SHARED_REDIS_URL, "DASHBOARD_WS_CHANNEL": private_channel(),
              "DASHBOARD_WS_QUEUE_CHANNELS": mode, "DASHBOARD_WS_SOCKETIO_OPTIONS": {"transports": ["websocket"]},
              "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 10_000.0}
    names = "abcdefgh"[:args.processes]
    servers = [LiveServer("eventlet", config, workdir / f"{mode}-{name}.log", run=True) for name in names]
    tabs: list[NodeTabs] = []
    try:
        for server in servers:
            server.start()
        users = {name: [f"{name}-{index}" for index in range(args.users)] for name in names}
        for server, name in zip(servers, names):
            tokens = workdir / f"tokens-{name}"
            tokens.write_text("\n".join(server.token(user) for user in users[name]), encoding="utf-8")
            tabs.append(NodeTabs(server.url, f"@{tokens}", args.users, spacing=2, timeout=TIMEOUT))
        for tab in tabs:
            wait_for(tab, "connect", args.users)
        emitter = create_app("threading", config)  # accepts no socket: it only publishes, as a worker does
        pids = [server._process.pid for server in servers]
        time.sleep(2.0)  # the connections' own start-up work settles before anything is measured

        started, before = time.monotonic(), [cpu_seconds(pid) for pid in pids]
        time.sleep(args.events / args.rate)  # the idle window, as long as the emitting one
        idle = [cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before)]
        idle_seconds = time.monotonic() - started

        started, before = time.monotonic(), [cpu_seconds(pid) for pid in pids]
        with emitter.app_context():
            for index in range(args.events):
                due = started + index / args.rate
                if (ahead := due - time.monotonic()) > 0:
                    time.sleep(ahead)
                emitter.dashboard.emit_error(users["a"][index % args.users], "BENCH", f"event {index}")
        wait_for(tabs[0], "event", args.events)
        busy = [cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before)]
        busy_seconds = time.monotonic() - started
        extra = [b - i * busy_seconds / idle_seconds for b, i in zip(busy, idle)]
        others = [round(cpu / args.events * 1e6, 2) for cpu in extra[1:]]
        return {
            "mode": mode,
            "events": args.events,
            "seconds": round(busy_seconds, 3),
            "a_us_per_event": round(extra[0] / args.events * 1e6, 2),
            "others_us_per_event": others,
            "others_median_us_per_event": statistics.median(others),
            "others_cpu_s": {"emitting": [round(cpu, 3) for cpu in busy[1:]], "idle": [round(cpu, 3) for cpu in idle[1:]]},
            "others_events_received": [len(tab.kinds("event")) for tab in tabs[1:]],
        }
    finally:
        for tab in tabs:
            tab.close()
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4, choices=range(2, 9))
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    log_warnings_to_stderr()
    workdir = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    rounds = [one_round(mode, args, workdir) for _ in range(args.rounds) for mode in ("shared", "user")]
    summary = {mode: {key: statistics.median(r[key] for r in rounds if r["mode"] == mode)
                      for key in ("a_us_per_event", "others_median_us_per_event")} for mode in ("shared", "user")}
    results = {"when": datetime.now(timezone.utc).isoformat(), "args": vars(args) | {"out": None},
               "rounds": rounds, "median": summary}
    report(results, args.out)


if __name__ == "__main__":
    main()
