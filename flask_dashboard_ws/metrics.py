"""Prometheus metrics of one process (opt-in: ``DASHBOARD_WS_METRICS_PATH``; the ``[metrics]`` extra).

Each app gets a registry of its own, not prometheus-client's global one, so that two apps in a process (or a
test suite's many) never clash. Durations are histograms, not summaries, so that they add up across
processes: scrape every process as its own target and sum in PromQL. Labels are low-cardinality only: an
event type, a reason, an outcome; never a user id or a sid.

An emit is the hot path: prometheus-client's counters and histograms take a lock per value they change (three
per emit, about 4 µs on this machine in place), so the emit's counts are kept by :class:`EmitCounts` under one
lock and turned into metric families only when scraped, through prometheus-client's custom collector
interface (about 1.5 µs per emit; BENCHMARKS.md "Metrics").
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .config import ConfigError
from .events import EventType

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - exercised by installs without the extra
    CollectorRegistry = None
    Collector = object

PREFIX = "dashboard_ws"

# Seconds. An emit is validation and a hand-off (tens of microseconds; milliseconds with a queue), a
# handshake's authentication a token check and the app's callbacks (a blocklist or user lookup may do I/O).
EMIT_BUCKETS = (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
AUTH_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PUBLISH_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# What ``dashboard_ws_disconnects_total``'s ``reason`` label says, from python-socketio's reasons and the
# extension's own causes.
DISCONNECT_REASONS = {
    "client disconnect": "client",
    "server disconnect": "server",
    "ping timeout": "ping_timeout",
    "transport close": "transport",
    "transport error": "transport",
}


def require_prometheus_client() -> None:
    if CollectorRegistry is None:
        raise ConfigError(
            "DASHBOARD_WS_METRICS_PATH needs prometheus-client: pip install 'flask-dashboard-ws[metrics]'"
        )


class Metrics:
    """The metrics of one app; ``sockets`` reads its connections at scrape time."""

    def __init__(self, connections: Callable[[], Mapping[str, Any]]) -> None:
        require_prometheus_client()
        self.registry = registry = CollectorRegistry()
        self.sockets = Gauge(f"{PREFIX}_sockets", "Authenticated sockets connected to this process.", registry=registry)
        self.sockets.set_function(lambda: len(connections()))
        self.users = Gauge(f"{PREFIX}_users", "Distinct users with a socket in this process.", registry=registry)
        self.users.set_function(lambda: len({identity.user_id for identity in list(connections().values())}))
        self.connection_attempts = Counter(
            f"{PREFIX}_connection_attempts", "Socket.IO CONNECTs to the namespace, by outcome and refusal reason.",
            ["outcome", "reason"], registry=registry,
        )
        self.disconnects = Counter(
            f"{PREFIX}_disconnects", "Authenticated sockets that ended, by reason.", ["reason"], registry=registry
        )
        self.dropped = Counter(f"{PREFIX}_events_dropped", "Events not sent, by reason.", ["reason"], registry=registry)
        self.invalid = Counter(f"{PREFIX}_validation_errors", "Emits refused by validation (nothing sent), by type.",
                               ["type"], registry=registry)
        self.auth_seconds = Histogram(
            f"{PREFIX}_handshake_auth_duration_seconds",
            "A CONNECT's authentication: finding and checking the token, with the app's callbacks.",
            buckets=AUTH_BUCKETS, registry=registry,
        )
        self.publish_seconds = Histogram(
            f"{PREFIX}_queue_publish_duration_seconds", "Publishing one message to the Redis queue, failures included.",
            buckets=PUBLISH_BUCKETS, registry=registry,
        )
        self.publish_failures = Counter(
            f"{PREFIX}_queue_publish_failures", "Messages the Redis queue did not take.", registry=registry
        )
        self.queue_unreachable = Gauge(
            f"{PREFIX}_queue_unreachable_seconds",
            "How long the Redis queue has been unreachable (0 while it is reachable).", registry=registry,
        )
        self.gc_pause_seconds = Histogram(
            f"{PREFIX}_gc_reclaim_pause_seconds", "The collector's reclaims: how long each paused the process.",
            buckets=PAUSE_BUCKETS, registry=registry,
        )
        self.emits = EmitCounts()
        registry.register(self.emits)
        self._invalid = {kind.value: self.invalid.labels(kind.value) for kind in EventType}

    def event_emitted(self, kind: str, seconds: float) -> None:
        self.emits.record(kind, seconds)

    def event_invalid(self, kind: str) -> None:
        self._invalid.get(kind, self.invalid.labels("unknown")).inc()

    def event_dropped(self, reason: str) -> None:
        self.dropped.labels(reason).inc()

    def connection_attempt(self, outcome: str, reason: str = "") -> None:
        self.connection_attempts.labels(outcome, reason).inc()

    def disconnected(self, reason: str | None) -> None:
        self.disconnects.labels(DISCONNECT_REASONS.get(reason or "", reason or "unknown")).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class EmitCounts(Collector):
    """``dashboard_ws_events_emitted_total`` and ``dashboard_ws_emit_duration_seconds``, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._emitted = {kind.value: 0 for kind in EventType}
        self._buckets = [0] * (len(EMIT_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0

    def record(self, kind: str, seconds: float) -> None:
        index = bisect.bisect_left(EMIT_BUCKETS, seconds)  # the first bucket whose bound is >= seconds
        with self._lock:
            self._emitted[kind] += 1
            self._buckets[index] += 1
            self._sum += seconds

    def collect(self) -> Iterator[Any]:
        with self._lock:
            emitted, buckets, total = dict(self._emitted), list(self._buckets), self._sum
        counter = CounterMetricFamily(
            f"{PREFIX}_events_emitted", "Events handed to the sockets or the queue, by type.", labels=["type"]
        )
        for kind, count in emitted.items():
            counter.add_metric([kind], count)
        yield counter
        cumulative, running = [], 0
        for bound, count in zip([*map(str, EMIT_BUCKETS), "+Inf"], buckets):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(
            f"{PREFIX}_emit_duration_seconds",
            "From the emit call until the event is handed to the sockets or the queue (validation included).",
            buckets=cumulative, sum_value=total,
        )
