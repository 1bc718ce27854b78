"""What connection state recovery adds to an emit, in the same process and the same window.

    python bench/recovery_cost.py [--emits 2000] [--pairs 15]

An emit: ``emit_summary_updated(..., defer=False)`` to a user with no socket, from a process that serves no
sockets (a worker), through the machine's Redis with per-user channels: validation, envelope, and the publish
(PUBLISH without recovery; with ``DASHBOARD_WS_RECOVERY``, the script that appends to the user's stream, trims
it and publishes). Two apps, recovery off and on, alternate in short runs; each pair gives a difference, and
the median difference is what recovery adds. The same pairs with recovery off in both (A/A) show what the
method cannot resolve. ``--users`` spreads the emits over that many users (one stream each).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from flask import Flask
from flask_jwt_extended import JWTManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SUMMARY, log_warnings_to_stderr, report  # noqa: E402

from flask_dashboard_ws import DashboardRealtime  # noqa: E402
from tests.redis_server import SHARED_REDIS_URL  # noqa: E402

def app(recovery: bool) -> tuple[Flask, DashboardRealtime]:
    flask_app = Flask(f"recovery-{recovery}-{uuid.uuid4().hex[:6]}")
    flask_app.config.update(JWT_SECRET_KEY="k" * 64, DASHBOARD_WS_ASYNC_MODE="threading",
                            DASHBOARD_WS_MESSAGE_QUEUE=SHARED_REDIS_URL,
                            DASHBOARD_WS_CHANNEL=f"bench-recovery-{uuid.uuid4().hex}", DASHBOARD_WS_RECOVERY=recovery)
    JWTManager(flask_app)
    return flask_app, DashboardRealtime(flask_app)


def per_emit_us(flask_app: Flask, dashboard: DashboardRealtime, emits: int, users: int) -> float:
    with flask_app.app_context():
        started = time.perf_counter()
        for index in range(emits):
            dashboard.emit_summary_updated(f"bench-user-{index % users}", SUMMARY, defer=False)
        return (time.perf_counter() - started) / emits * 1e6


def pairs(first: tuple[Flask, DashboardRealtime], second: tuple[Flask, DashboardRealtime], count: int, emits: int,
          users: int) -> list[float]:
    differences = []
    for index in range(count):
        order = (first, second) if index % 2 == 0 else (second, first)
        times = {id(candidate): per_emit_us(*candidate, emits, users) for candidate in order}
        differences.append(times[id(second)] - times[id(first)])
    return differences


def summary(differences: list[float]) -> dict[str, float]:
    quartiles = statistics.quantiles(differences, n=4)
    return {"median_us": round(statistics.median(differences), 2), "q1_us": round(quartiles[0], 2),
            "q3_us": round(quartiles[2], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emits", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    log_warnings_to_stderr()
    off, on, off_again = app(False), app(True), app(False)
    per_emit_us(*off, args.emits, args.users)  # warm-up: connections, script cache, imports
    per_emit_us(*on, args.emits, args.users)
    baseline = [per_emit_us(*off, args.emits, args.users) for _ in range(3)]
    results = {
        "args": vars(args) | {"out": None},
        "emit_us_without_recovery": round(statistics.median(baseline), 2),
        "added_by_recovery": summary(pairs(off, on, args.pairs, args.emits, args.users)),
        "a_a": summary(pairs(off, off_again, args.pairs, args.emits, args.users)),
    }
    report(results, args.out)


if __name__ == "__main__":
    main()
