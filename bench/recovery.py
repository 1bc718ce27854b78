"""A restart under load, measured: the events a process's tabs miss while they reconnect, with and without
connection state recovery, and the ``/api/dashboard`` re-fetches that recovery saves.

    python bench/recovery.py [--processes 4] [--tabs 5000] [--users 1000] [--rate 200] [--budget 25]
        [--mode eventlet] [--runs off,on] [--out DIR]

Each run: ``--processes`` server processes (``DashboardRealtime.run``, Redis as the message queue) behind nginx
with the project's docs/nginx.conf, the others as A's backups so that every tab starts on A. The tabs are the official
socket.io-client on Node (tests/js/tabs.mjs: transports ["websocket"], the client's defaults otherwise,
permessage-deflate offered). A worker thread in this process (a write-only emitter, as in docs/workers.md)
emits ``dashboard:error`` events to the users, round robin at ``--rate`` per second, from before the restart
until every tab is back. A is restarted as a deploy does it: SIGTERM with ``DASHBOARD_WS_DRAIN_ON_SIGTERM``,
and each tab reconnects by itself through nginx to one of the others.

Then, per tab, against every event emitted to its user: lost (never received, by a tab whose reconnects were
all recovered; a tab that re-fetched got the missed state from ``/api/dashboard``), duplicated (received twice
or more), out of order. Each reconnect that is not ``recovered`` is one ``GET /api/dashboard`` by the example page;
the ``recovered`` ones are the re-fetches avoided. The run ``off`` is the same with ``DASHBOARD_WS_RECOVERY``
off: its losses are what recovery saves.

Needs nginx, Redis on 127.0.0.1:6379 and ``npm ci --prefix tests/js``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import log_warnings_to_stderr, report  # noqa: E402
from drain import TIMEOUT, behind_nginx, deploy_config, percentile, stop_all, wait_for  # noqa: E402

from tests.live_server import LiveServer  # noqa: E402
from tests.nginx_conf import NginxProxy, nginx_binary  # noqa: E402
from tests.node_tabs import NodeTabs  # noqa: E402
from tests.server_app import create_app  # noqa: E402


class Worker(threading.Thread):
    """Emits ``dashboard:error`` to ``users`` round robin, ``rate`` per second, until stopped; keeps each user's
    event ids in the order they were emitted."""

    def __init__(self, config: dict[str, Any], users: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.app = create_app("threading", config)
        self.users = users
        self.rate = rate
        self.emitted: dict[str, list[str]] = defaultdict(list)
        self.failed = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with self.app.app_context():
            for index in range(10**9):
                if self._stopping.wait(max(0.0, started + index / self.rate - time.monotonic())):
                    return
                user = self.users[index % len(self.users)]
                try:
                    envelope = self.app.dashboard.emit_error(user, "TICK", str(index), defer=False)  # type: ignore[attr-defined]
                except ConnectionError:
                    self.failed += 1
                    continue
                self.emitted[user].append(envelope["eventId"])

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)


def run_once(args: argparse.Namespace, nginx: str, recovery: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    config = deploy_config(args.budget) | {"DASHBOARD_WS_RECOVERY": recovery}
    a = LiveServer(args.mode, config, workdir / "a.log", run=True)
    others = [LiveServer(args.mode, config, workdir / f"{name}.log", run=True) for name in "bcdefg"[:args.processes - 1]]
    proxy: NginxProxy | None = None
    tabs: NodeTabs | None = None
    worker: Worker | None = None
    try:
        proxy = behind_nginx(nginx, a, others, workdir)
        users = [f"bench-{index}" for index in range(args.users)]
        (workdir / "tokens").write_text("\n".join(a.token(user) for user in users), encoding="utf-8")
        tabs = NodeTabs(proxy.url, f"@{workdir / 'tokens'}", args.tabs, spacing=args.spacing, timeout=TIMEOUT)
        wait_for(tabs, "connect", args.tabs)

        worker = Worker(config, users, args.rate)
        worker.start()
        wait_for(tabs, "event", args.tabs // len(users) * len(users), timeout=60)  # a round reached every tab
        processes = [psutil.Process(server._process.pid) for server in others]
        cpu_before = sum(sum(process.cpu_times()[:2]) for process in processes)
        started = time.time()
        a.signal(signal.SIGTERM)
        wait_for(tabs, "connect", 2 * args.tabs)
        back = time.time() - started
        others_cpu = sum(sum(process.cpu_times()[:2]) for process in processes) - cpu_before
        a.wait_exit(timeout=TIMEOUT)
        time.sleep(args.after)  # a few more rounds on the other processes, as live events
        worker.stop()
        last = {user: ids[-1] for user, ids in worker.emitted.items()}
        tab_user = [users[tab % len(users)] for tab in range(args.tabs)]
        wait_for_last(tabs, tab_user, last)
        return summary(tabs.drain(), tab_user, worker, started, back, others) | {
            "others_cpu_s_until_all_back": round(others_cpu, 2)}
    finally:
        if worker is not None and worker.is_alive():
            worker.stop()
        stop_all(tabs, proxy, a, *others)


def wait_for_last(tabs: NodeTabs, tab_user: list[str], last: dict[str, str], timeout: float = 60) -> None:
    """Until every tab has its user's last event (within ``timeout``: what is missing then is lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = {(event["tab"], event["envelope"]["eventId"]) for event in tabs.kinds("event")}
        if all((tab, last[user]) in got for tab, user in enumerate(tab_user)):
            return
        time.sleep(0.2)


def summary(seen: list[dict[str, Any]], tab_user: list[str], worker: Worker, started: float, back: float,
            others: list[LiveServer]) -> dict[str, Any]:
    received: dict[int, list[str]] = defaultdict(list)
    connects: dict[int, list[bool]] = defaultdict(list)
    for event in seen:
        if event["kind"] == "event" and event["name"] == "dashboard:error":
            received[event["tab"]].append(event["envelope"]["eventId"])
        elif event["kind"] == "connect":
            connects[event["tab"]].append(bool(event.get("recovered")))
    lost = lost_refetched = duplicated = out_of_order = tabs_losing = 0
    examples: list[list[Any]] = []
    for tab, user in enumerate(tab_user):
        order = {event_id: index for index, event_id in enumerate(worker.emitted[user])}
        got = received[tab]
        missing = len(set(order) - set(got))
        if all(connects[tab][1:]):
            lost += missing
        else:
            lost_refetched += missing
        tabs_losing += missing > 0
        duplicated += len(got) - len(set(got))
        if len(got) != len(set(got)) and len(examples) < 3:
            examples.append(timeline(seen, tab, {e for e in got if got.count(e) > 1}))
        positions = [order[event_id] for event_id in got if event_id in order]
        out_of_order += sum(1 for first, second in zip(positions, positions[1:]) if second <= first)
    reconnects = [recovered for flags in connects.values() for recovered in flags[1:]]
    gaps = [event["t"] / 1000 - started for event in seen if event["kind"] == "disconnect"]
    return {
        "emitted": sum(len(ids) for ids in worker.emitted.values()),
        "emit_failures": worker.failed,
        "expected_deliveries": sum(len(worker.emitted[user]) for user in tab_user),
        "lost": lost, "missed_by_tabs_that_refetched": lost_refetched, "tabs_that_missed_events": tabs_losing, "duplicated": duplicated, "out_of_order": out_of_order,
        "duplicate_examples": examples,
        "reconnects": len(reconnects),
        "recovered": sum(reconnects),
        "refetches_of_api_dashboard": len(reconnects) - sum(reconnects),
        "disconnect_reasons": Counter(event["reason"] for event in seen if event["kind"] == "disconnect"),
        "closed_s": {"first": percentile(gaps, 0), "p50": percentile(gaps, 50), "last": percentile(gaps, 100)},
        "all_back_s": round(back, 2),
        "others_sockets": [server.metric("dashboard_ws_sockets") for server in others],
    }


def timeline(seen: list[dict[str, Any]], tab: int, duplicates: set[str]) -> list[Any]:
    """What ``tab`` observed, for a duplicate: its connects and disconnects, and the duplicated events."""
    return [(event["t"], event["kind"], event.get("reason") or event.get("recovered") or event.get("offset"))
            for event in seen if event["tab"] == tab and (event["kind"] in ("connect", "disconnect")
                                                          or event.get("envelope", {}).get("eventId") in duplicates)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4, choices=range(2, 8))
    parser.add_argument("--tabs", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second, to the users round robin")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of events once every tab is back")
    parser.add_argument("--budget", type=float, default=25.0, help="DASHBOARD_WS_DRAIN_TIMEOUT (its default)")
    parser.add_argument("--mode", choices=("eventlet", "gevent"), default="eventlet")
    parser.add_argument("--spacing", type=float, default=5.0, help="ms between two tabs' first connect")
    parser.add_argument("--runs", default="off,on", help="recovery off and/or on, in this order")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit("nginx is not installed")
    log_warnings_to_stderr()
    results: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(), "args": vars(args) | {"out": None}}
    for run in args.runs.split(","):
        results[f"recovery_{run}"] = run_once(args, nginx, recovery=run == "on")
    report(results, args.out)


if __name__ == "__main__":
    main()
