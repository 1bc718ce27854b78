"""What every benchmark server and the harness share: the JWT secret, the event, tokens, limits, GC probe, and
how a benchmark reports its results.

Import nothing heavy here: the eventlet/gevent servers import this module before they monkey patch.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# HS256, as flask-jwt-extended's default. 64 bytes: PyJWT warns about shorter keys for HS512.
JWT_SECRET = "flask-dashboard-ws benchmarks: not a secret, never use it in production 0123456789"
JWT_ALGORITHM = "HS256"
NAMESPACE = "/dashboard"
EVENT = "dashboard:recentMocAdded"  # every benchmark emit is this event (UUID, URL and datetime validation)
TITLE_PREFIX = "bench:"  # payload.title = "bench:<epoch ms of the emit's scheduled send time>"
# The dashboard:summaryUpdated payload of the per-emit cost benchmarks (metrics_cost.py, recovery_cost.py).
SUMMARY = {
    "totalMocs": 3, "totalWishlistItems": 1,
    "mocsByBuildStatus": {"ADDED": 1, "IN_PROGRESS": 1, "BUILT": 1},
    "mocsByCoverageStatus": {"FULL_INVENTORY": 2, "PARTIAL_ORDERED": 1, "NONE": 0},
}
USER_PREFIX = "u"  # user i is "u<i>", the JWT's sub; its room is "user:u<i>"

# Limits every server under test gets (see BENCHMARKS.md): eventlet's WSGI server accepts 1,024 simultaneous
# connections by default and Flask-SocketIO's run() listens with a backlog of 50.
LISTEN_BACKLOG = 1024
EVENTLET_MAX_SIZE = 100_000


def raise_nofile_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one (root cannot raise the hard one here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def mint_tokens(n_users: int, lifetime_s: int = 4 * 3600) -> list[str]:
    """Real access tokens for users u0..u<n-1>, with the claims flask-jwt-extended's create_access_token sets."""
    import jwt

    now = int(time.time())
    tokens = []
    for i in range(n_users):
        claims = {
            "fresh": False,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "type": "access",
            "sub": f"{USER_PREFIX}{i}",
            "nbf": now,
            "exp": now + lifetime_s,
        }
        tokens.append(jwt.encode(claims, JWT_SECRET, algorithm=JWT_ALGORITHM))
    return tokens


# BENCH_GC_CENSUS=1 in a server's environment: before each gen-1 collection, count the young generations'
# objects by type, and print the census of those that took over 15 ms to the server's log (slow; experiments).
CENSUS = bool(os.environ.get("BENCH_GC_CENSUS"))


def young_census(top: int = 8) -> tuple[int, list[tuple[str, int]]]:
    import collections

    objects = gc.get_objects(0) + gc.get_objects(1)
    return len(objects), collections.Counter(type(o).__name__ for o in objects).most_common(top)


class GcProbe:
    """Times every garbage collection of this process (gc.callbacks), for the ``/bench/stats`` endpoint."""

    def __init__(self) -> None:
        self._start = 0.0
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.collections = [0, 0, 0]
        self.pause_total_ms = 0.0
        self.pause_max_ms = [0.0, 0.0, 0.0]
        self.pauses_over_20ms = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if CENSUS and info.get("generation", 0) == 1:
                self._census = young_census()
            self._start = time.perf_counter()
            return
        pause = (time.perf_counter() - self._start) * 1000.0
        generation = info.get("generation", 0)
        if CENSUS and generation == 1 and pause > 15.0:
            print(f"gc census: gen1 pause {pause:.1f} ms over {self._census}", file=sys.stderr, flush=True)
        self.collections[generation] += 1
        self.pause_total_ms += pause
        self.pause_max_ms[generation] = max(self.pause_max_ms[generation], pause)
        if pause > 20.0:
            self.pauses_over_20ms += 1

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        data = {
            "collections": list(self.collections),
            "pause_total_ms": round(self.pause_total_ms, 3),
            "pause_max_ms": [round(p, 3) for p in self.pause_max_ms],
            "pauses_over_20ms": self.pauses_over_20ms,
            "gc_counts": list(gc.get_count()),
            "gc_threshold": list(gc.get_threshold()),
        }
        if reset:
            self.reset()
        return data


def heap_census(top: int = 25, freeze: bool = False) -> dict[str, Any]:
    """What the collector walks: tracked objects by type, and what three full collections in a row take and find.

    ``freeze=True`` calls ``gc.freeze()`` first, as ``DASHBOARD_WS_GC_FREEZE_INTERVAL`` does (for experiments).
    """
    import collections

    if freeze:
        gc.freeze()
    objects = gc.get_objects()
    by_type = collections.Counter(type(o).__name__ for o in objects).most_common(top)
    del objects
    times, found = [], []
    for _ in range(3):
        start = time.perf_counter()
        found.append(gc.collect())
        times.append(round((time.perf_counter() - start) * 1000, 1))
    return {"unreachable": found, "tracked": sum(gc.get_count()) + len(gc.get_objects()), "frozen": gc.get_freeze_count(),
            "full_collection_ms": times, "by_type": by_type}


def garbage_census(top: int = 30) -> dict[str, Any]:
    """What a reclaim would free, by type: unfreeze, then one full collection that keeps its garbage to count it.

    For experiments: it pauses the server as a reclaim does, and the frozen heap is frozen again after it.
    """
    import collections

    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        by_type = collections.Counter(type(o).__name__ for o in gc.garbage).most_common(top)
        frames = collections.Counter(f"{o.f_code.co_filename.rsplit('/', 2)[-1]}:{o.f_code.co_name}"
                                     for o in gc.garbage if type(o).__name__ == "frame").most_common(top)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        gc.freeze()
    return {"frozen_before": frozen, "unreachable": found, "by_type": by_type, "frames": frames}


def announce(port: int) -> None:
    """The harness waits for this line on the server's standard output."""
    print(f"PORT {port}", flush=True)


def report(results: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's results as JSON, and keep them in ``out``/results.json when it is given."""
    text = json.dumps(results, indent=2)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(text + "\n")


def log_warnings_to_stderr() -> None:
    """The extension's log lines on standard error, warnings only: a benchmark's results go to standard output."""
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
