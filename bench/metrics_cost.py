"""What the Prometheus metrics add to an emit and to a handshake, in the same process and the same window.

    python bench/metrics_cost.py [--emits 20000] [--repeats 7]

An emit: ``emit_summary_updated(..., defer=False)`` to a user with no socket (validation, envelope, the
hand-off to python-socketio: every per-event cost but the socket writes), on one app with metrics
configured, whose metrics are switched off and on between short runs (``state.metrics = None``). Each pair
of runs gives a difference; the median difference is what metrics add, and the same pairs with metrics off
both times (A/A) show what the method cannot resolve. A handshake: what the namespace adds when metrics
are on (one histogram observation and one labelled counter increment), timed on its own, since a whole
handshake's noise is larger than it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import structlog
from flask import Flask
from flask_jwt_extended import JWTManager

from common import SUMMARY
from flask_dashboard_ws import DashboardRealtime


def app(metrics: bool) -> tuple[Flask, DashboardRealtime]:
    flask_app = Flask(f"metrics-{metrics}")
    flask_app.config.update(JWT_SECRET_KEY="k" * 64, DASHBOARD_WS_ASYNC_MODE="threading",
                            DASHBOARD_WS_METRICS_PATH="/metrics" if metrics else None)
    JWTManager(flask_app)
    return flask_app, DashboardRealtime(flask_app)


def per_emit_us(flask_app: Flask, dashboard: DashboardRealtime, emits: int) -> float:
    with flask_app.app_context():
        started = time.perf_counter()
        for _ in range(emits):
            dashboard.emit_summary_updated("nobody", SUMMARY, defer=False)
        return (time.perf_counter() - started) / emits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emits", type=int, default=5000, help="emits per run")
    parser.add_argument("--repeats", type=int, default=31, help="pairs of runs")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))  # as in production
    flask_app, dashboard = app(True)
    state = flask_app.extensions["dashboard_ws"]
    metrics = state.metrics
    per_emit_us(flask_app, dashboard, 2000)  # warm-up

    def paired(first: object, second: object) -> list[float]:
        differences = []
        for _ in range(args.repeats):
            state.metrics = first
            before = per_emit_us(flask_app, dashboard, args.emits)
            state.metrics = second
            differences.append(per_emit_us(flask_app, dashboard, args.emits) - before)
        return differences

    same, added = paired(None, None), paired(None, metrics)
    state.metrics = metrics
    started = time.perf_counter()
    for _ in range(args.emits):
        metrics.auth_seconds.observe(0.0003)
        metrics.connection_attempt("accepted")
    handshake_us = (time.perf_counter() - started) / args.emits * 1e6
    result = {
        "emit_added_us": _spread(added),
        "emit_a_a_us": _spread(same),
        "emit_us_with_metrics": round(per_emit_us(flask_app, dashboard, args.emits), 2),
        "handshake_metrics_us": round(handshake_us, 2),
    }
    print(json.dumps(result, indent=2))


def _spread(values: list[float]) -> dict[str, float]:
    first, median, third = statistics.quantiles(values, n=4)
    return {"median": round(median, 2), "q1": round(first, 2), "q3": round(third, 2)}


if __name__ == "__main__":
    main()
