"""A deploy, measured: how long a drain of many sockets takes, and how their tabs spread over the reconnect.

    python bench/drain.py [--tabs 5000] [--users 1000] [--budget 25] [--mode eventlet] [--out DIR]

Two server processes (``DashboardRealtime.run``, the given async mode, Redis as the message queue) behind
nginx with the project's docs/nginx.conf, B as A's backup so that every tab starts on A. The tabs are the
official socket.io-client on Node (tests/js/tabs.mjs: transports ["websocket"], the client's defaults
otherwise, permessage-deflate offered). Then SIGTERM to A, with ``DASHBOARD_WS_DRAIN_ON_SIGTERM``: A drains
within the budget and ends; each tab reconnects by itself through nginx to B. Every time is from the SIGTERM.
At the end one event per user is emitted through nginx, and each tab must receive its user's.

The settings are the defaults but two: long-polling off (round robin behind nginx), and the per-address
handshake rate raised, since every tab here comes from 127.0.0.1. Needs nginx, Redis on 127.0.0.1:6379 and
``npm ci --prefix tests/js``.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import report  # noqa: E402

from tests.live_server import LiveServer  # noqa: E402
from tests.nginx_conf import NGINX_CONF, NginxProxy, nginx_binary, with_upstreams  # noqa: E402
from tests.node_tabs import NodeTabs  # noqa: E402
from tests.redis_server import SHARED_REDIS_URL, free_port, private_channel  # noqa: E402

TIMEOUT = 300.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 3)


def deploy_config(budget: float) -> dict[str, Any]:
    """The settings of the deploy benchmarks: Redis, websocket only, metrics, the drain on SIGTERM within
    ``budget``, and a per-address handshake rate that lets every tab come from 127.0.0.1."""
    return {
        "DASHBOARD_WS_MESSAGE_QUEUE": SHARED_REDIS_URL, "DASHBOARD_WS_CHANNEL": private_channel(),
        "DASHBOARD_WS_SOCKETIO_OPTIONS": {"transports": ["websocket"]},
        "DASHBOARD_WS_METRICS_PATH": "/metrics",
        "DASHBOARD_WS_DRAIN_ON_SIGTERM": True, "DASHBOARD_WS_DRAIN_TIMEOUT": budget,
        "DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS": 100_000.0,
    }


def behind_nginx(nginx: str, a: LiveServer, backups: list[LiveServer], workdir: Path) -> NginxProxy:
    """Start ``a`` and ``backups`` and nginx in front of them with docs/nginx.conf, the others as A's backups:
    every tab starts on A, and goes to one of them once A refuses or is gone."""
    for server in (a, *backups):
        server.start()
    port, prefix = free_port(), workdir / "nginx"
    upstreams = [a.url.removeprefix("http://")] + [server.url.removeprefix("http://") + " backup" for server in backups]
    conf = with_upstreams(NGINX_CONF.read_text(encoding="utf-8"), port, upstreams, prefix)
    sticky = conf.index("upstream dashboard_app_sticky {")
    proxy = NginxProxy(conf[:sticky] + conf[sticky:].replace(" backup;", ";"), port, prefix)
    proxy.start(nginx, "/api/health", 60)
    return proxy


def stop_all(tabs: NodeTabs | None, proxy: NginxProxy | None, *servers: LiveServer) -> None:
    """The tabs first (so that the servers see them leave), then nginx, then the servers."""
    if tabs is not None:
        tabs.close()
    if proxy is not None:
        proxy.stop(30)
    for server in servers:
        server.stop()


def wait_for(tabs: NodeTabs, kind: str, count: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while len(tabs.kinds(kind)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(tabs.kinds(kind))} of {count} {kind} within {timeout}s")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tabs", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=25.0, help="DASHBOARD_WS_DRAIN_TIMEOUT (its default)")
    parser.add_argument("--mode", choices=("eventlet", "gevent"), default="eventlet")
    parser.add_argument("--spacing", type=float, default=5.0, help="ms between two tabs' first connect")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit("nginx is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    config = deploy_config(args.budget)
    a = LiveServer(args.mode, config, workdir / "a.log", run=True)
    b = LiveServer(args.mode, config, workdir / "b.log", run=True)
    proxy: NginxProxy | None = None
    tabs: NodeTabs | None = None
    results: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(), "args": vars(args) | {"out": None}}
    try:
        proxy = behind_nginx(nginx, a, [b], workdir)
        users = [f"bench-{index}" for index in range(args.users)]
        tokens = {user: a.token(user) for user in users}
        (workdir / "tokens").write_text("\n".join(tokens[user] for user in users), encoding="utf-8")
        tabs = NodeTabs(proxy.url, f"@{workdir / 'tokens'}", args.tabs, spacing=args.spacing, timeout=TIMEOUT)
        wait_for(tabs, "connect", args.tabs)
        results["before"] = {"a_sockets": a.metric("dashboard_ws_sockets"), "b_sockets": b.metric("dashboard_ws_sockets")}

        started = time.time()
        a.signal(signal.SIGTERM)
        wait_for(tabs, "connect", 2 * args.tabs)
        exit_code = a.wait_exit(timeout=TIMEOUT)
        drained = re.findall(r"drain_finished\s+closed=(\d+) open=(\d+) seconds=([\d.]+)", a.log)
        seen = tabs.drain()
        closed = [event["t"] / 1000 - started for event in seen if event["kind"] == "disconnect"]
        reconnected = [event["t"] / 1000 - started for event in seen if event["kind"] == "connect" and event["t"] / 1000 > started]
        errors = Counter(event["message"] for event in seen if event["kind"] == "connect_error" and event["t"] / 1000 > started)
        results["drain"] = {
            "a_exit_code": exit_code,
            "drain_finished": {"closed": int(drained[-1][0]), "open": int(drained[-1][1]), "seconds": float(drained[-1][2])},
            "disconnect_reasons": Counter(event["reason"] for event in seen if event["kind"] == "disconnect"),
            "closed_s": {"first": percentile(closed, 0), "p50": percentile(closed, 50), "last": percentile(closed, 100)},
            "reconnected_s": {"first": percentile(reconnected, 0), "p50": percentile(reconnected, 50),
                              "p95": percentile(reconnected, 95), "last": percentile(reconnected, 100)},
            "reconnect_after_close_s": {"p50": percentile([r - c for r, c in zip(sorted(reconnected), sorted(closed))], 50)},
            "connect_errors": errors,
            "b_sockets": b.metric("dashboard_ws_sockets"),
            "b_refused": {reason: b.metric("dashboard_ws_connection_attempts_total", outcome="refused", reason=reason)
                          for reason in ("handshake_rate", "too_many_pending")},
        }
        sent = {}
        for user in users:
            response = requests.post(proxy.url + "/api/dashboard/errors", json={"code": "DEPLOYED", "message": "after"},
                                     headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=30)
            sent[user] = response.json()["event"]["eventId"]
        wait_for(tabs, "event", args.tabs, timeout=60)
        received = {(event["tab"], event["envelope"]["eventId"]) for event in tabs.drain() if event["kind"] == "event"}
        expected = {(tab, sent[users[tab % args.users]]) for tab in range(args.tabs)}
        results["after"] = {"tabs_with_their_event": len(received & expected), "unexpected": len(received - expected)}
    finally:
        stop_all(tabs, proxy, a, b)
    report(results, args.out)


if __name__ == "__main__":
    main()
