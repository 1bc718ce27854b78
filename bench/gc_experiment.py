"""Experiment: one server, one GC setting, the figures that garbage collection moves (BENCHMARKS.md, "GC").

    python bench/gc_experiment.py --servers ext --levels 5000,10000 --rates 1000,2000 --window 8 \\
        --ext-config '{"DASHBOARD_WS_GC_FREEZE_INTERVAL": 1}'
    python bench/gc_experiment.py --leak --servers ext --levels 5000 --rates 1500 --window 20 \\
        --ext-config '{"DASHBOARD_WS_GC_FREEZE_INTERVAL": 1}'
    python bench/gc_experiment.py --churn --servers ext --levels 5000 \\
        --ext-config '{"DASHBOARD_WS_GC_FREEZE_INTERVAL": 0.2}'

Takes ``bench/run.py``'s options and uses its server, clients and phases, one run, no baselines:

- default: ramps through ``--levels`` (CPU per handshake, connect p99, the GC pauses during each step), then
  emits at each of ``--rates`` to every connected user (p99, p99.9, GC pauses, CPU per event);
- ``--leak``: at the first level, three emit phases at the first rate, the server's RSS after each, then
  everything disconnected: whether freezing the heap keeps garbage (``frozen`` is ``gc.get_freeze_count()``);
- ``--churn``: ``CHURN_CYCLES`` times, connect the first level's users and disconnect them all: the server's
  RSS with every user connected, after each cycle (whether disconnected sockets' state is freed or held),
  and how long the disconnect storm took.

Set ``BENCH_GC_CENSUS=1`` to have the server log what the young generations hold at each long collection.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

LEAK = "--leak" in sys.argv
CHURN = "--churn" in sys.argv
CHURN_CYCLES = 6


def main() -> None:
    args = run.parse_args([a for a in sys.argv[1:] if a not in ("--leak", "--churn")])
    kind = args.servers[0]
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        out = Path(tmp)
        (out / "logs").mkdir()
        tokens = out / "tokens.json"
        tokens.write_text(json.dumps(run.mint_tokens(max(args.levels))))
        bench = run.Bench(kind, args, out, tokens, 1, time.monotonic() + args.time_limit)
        bench.server = run.start_server(kind, args, out / "logs" / "server.log")
        bench.clients = [run.Client(i, out / "logs" / f"client{i}.log") for i in range(args.clients)]
        try:
            bench.connect(0, 20, 1)
            bench.emit_phase("warmup", 50, 20, 1, 1.0)
            bench.disconnect_all()
            bench.base_rss = bench.server.rss()
            (leak if LEAK else churn if CHURN else ramp_and_rates)(bench, args)
        finally:
            for client in bench.clients:
                client.stop()
            bench.server.stop()


def ramp_and_rates(bench: run.Bench, args) -> None:
    for level in args.levels:
        bench.server.stats(reset=True)
        bench.ramp_to(level)
        gc = bench.server.stats()["gc"]
        print(f"ramp to {level}: GC collections {gc['collections']}, longest pause per generation "
              f"{gc['pause_max_ms']} ms", flush=True)
    users = bench.connected_users
    for rate in args.rates:
        r = bench.emit_phase(f"rate{rate}", rate, users, 1, args.window)
        print(f"{rate}/s to {users} users: p99 {r['p99_ms']:.1f} ms, p99.9 {r['p999_ms']:.1f} ms, GC collections "
              f"{r['gc']['collections']}, longest pauses {r['gc']['pause_max_ms']} ms, "
              f"{r['server_cpu_per_event_us']} us CPU/event", flush=True)


def leak(bench: run.Bench, args) -> None:
    level, rate = args.levels[0], args.rates[0]
    bench.ramp_to(level)
    rss0 = bench.server.rss()
    for i in range(3):
        r = bench.emit_phase(f"leak{i}", rate, level, 1, args.window)
        print(f"after {(i + 1) * args.window:g} s at {rate}/s: RSS +{(bench.server.rss() - rss0) / 2**20:.1f} MB, "
              f"p99 {r['p99_ms']:.1f} ms, longest GC pauses {r['gc']['pause_max_ms']} ms", flush=True)
    bench.disconnect_all()
    with urllib.request.urlopen(bench.server.url + "/bench/heap", timeout=120) as resp:
        frozen = json.load(resp)["frozen"]
    print(f"all {level} disconnected: RSS {(bench.server.rss() - rss0) / 2**20:+.1f} MB, frozen objects {frozen}")


def churn(bench: run.Bench, args) -> None:
    level = args.levels[0]
    for cycle in range(1, CHURN_CYCLES + 1):
        bench.server.stats(reset=True)
        bench.ramp_to(level)
        rss = bench.server.rss()
        bench.disconnect_all()
        gc = bench.server.stats()["gc"]
        storm = bench.result["disconnects"][-1]
        print(f"cycle {cycle}: {level} connected, RSS +{(rss - bench.base_rss) / 2**20:.1f} MB; all disconnected in "
              f"{storm['seconds']} s ({storm['left']} left), RSS +{(bench.server.rss() - bench.base_rss) / 2**20:.1f} MB; "
              f"GC collections {gc['collections']}, longest pauses {gc['pause_max_ms']} ms", flush=True)


if __name__ == "__main__":
    main()
