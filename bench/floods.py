"""Floods from abusive clients (issue #10): what each costs another user, and the server's memory and CPU.

    python bench/floods.py                                  # eventlet and gevent, every flood, about 9 minutes
    python bench/floods.py --modes gevent --floods events,slow --window 5
    python bench/floods.py --code before=/tmp/before        # also another tree's code (a git worktree): 19 min

For each ``--code`` (``after`` is this tree; ``label=path`` adds the ``flask_dashboard_ws`` of another tree,
put first on ``PYTHONPATH`` of this tree's ``bench/servers/ext_app.py``) and each ``--modes`` async mode, it
starts the extension's server with no settings (the defaults as installed), connects ``--victims`` users
with one lean socket each (``bench/loadgen/client.js``, from 127.0.0.1, 25 per second so that the default
per-address handshake rate of 30/s admits them all), and emits to them at ``--rate`` events/s from a thread
(POST /bench/emit every 20 ms, open loop: each event's title carries its due time, so its latency includes a
late request). Then, for each flood, three ``--window`` s windows: before, during, after the flood. In each:
the victims' delivery p50/p99/max (events received in the window), events due in the window and received in
it, the server's RSS (start, end, max, sampled every 250 ms) and its CPU %. After each flood: ``GET
/bench/stats`` (connections, engine.io sessions, the limits' counts by reason, GC collections and pauses
since the flood's 'before' window began).

The floods (``bench/loadgen/flood.js``, Node ``ws`` and ``http``; what it achieved is recorded with each):

* ``events``: 2 authenticated sockets sending ``42/dashboard,["x",{}]`` as fast as they take them,
  reconnecting when closed;
* ``refused``: 2 engine.io sessions sending CONNECTs with a bad token as fast as they can, reopened when closed;
* ``pending``: up to 3,000 engine.io sessions held open, never connecting (answering pings), from 100
  addresses;
* ``binary``: 2 authenticated sockets sending a binary-event header announcing 999,999 attachments, then
  15,000-byte attachments that never complete;
* ``closeconnect``: up to 5,000 polling sessions, each a handshake then one POST "1\\x1e40/dashboard,{token}"
  (CLOSE then CONNECT), from 100 addresses; the server's connection count after shows leaked entries;
* ``slow``: one authenticated socket that stops reading while ``--slow-rate`` events/s (193-character titles)
  are emitted to its user;
* ``connect1``: 3,000 valid connects (100 at once) from one address (with the defaults, mostly refused);
* ``connect100``: the same from 100 addresses (many clients; the per-process rate still applies).

Source addresses: 127.x.y.z are all loopback on Linux and the server sees each as a client address, so "many
clients" need no setting changed. Attackers never use 127.0.0.1 (the victims' address).

Everything is bounded in count and in time (``--time-limit``); every process it starts is stopped when it
ends. Output: ``bench/results/<UTC time>-floods/`` with ``results.json`` and ``summary.md`` (a table per code
and mode); logs in ``logs/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import requests  # noqa: E402

from common import mint_tokens, raise_nofile_limit  # noqa: E402
from run import NODE, Client, Server, _exit_on_sigterm, _stop_children, log, pct, spawn  # noqa: E402

FLOODS = ("events", "refused", "pending", "binary", "closeconnect", "slow", "connect1", "connect100")
P99_LIMIT_MS = 100.0  # the bound for another user's delivery p99 under a flood
ATTACKER = "127.0.0.2"
MANY = "127.0.1.1-100"
# Users: victims are u0..u<victims-1>; attackers' tokens come after.
EVENTS_USER, BINARY_USER, SLOW_USER, CLOSECONNECT_USER, CONNECT1_USER, CONNECT100_USER = 500, 502, 510, 600, 1000, 4000
N_TOKENS = 7000


def flood_args(name: str, tokens_file: Path) -> list[str]:
    tf = ["--tokens-file", str(tokens_file)]
    return {
        "events": ["--kind", "events", "--workers", "2", "--addresses", ATTACKER, *tf, "--first-user", str(EVENTS_USER)],
        "refused": ["--kind", "refused", "--workers", "2", "--addresses", ATTACKER],
        "pending": ["--kind", "pending", "--sessions", "3000", "--concurrency", "50", "--addresses", MANY],
        "binary": ["--kind", "binary", "--workers", "2", "--addresses", ATTACKER, *tf, "--first-user", str(BINARY_USER)],
        "closeconnect": ["--kind", "closeconnect", "--sessions", "5000", "--concurrency", "50", "--addresses", MANY,
                         *tf, "--first-user", str(CLOSECONNECT_USER)],
        "slow": ["--kind", "slow", "--addresses", ATTACKER, *tf, "--first-user", str(SLOW_USER)],
        "connect1": ["--kind", "connect", "--sessions", "3000", "--concurrency", "100", "--addresses", "127.0.0.3",
                     *tf, "--first-user", str(CONNECT1_USER)],
        "connect100": ["--kind", "connect", "--sessions", "3000", "--concurrency", "100", "--addresses", "127.0.2.1-100",
                       *tf, "--first-user", str(CONNECT100_USER)],
    }[name]


class Emitter(threading.Thread):
    """POST /bench/emit every ``tick`` s with the events due by then (open loop), to ``users`` at ``rate``/s.

    Each event's title is ``bench:<due time, epoch ms>``. ``due`` records (due time, acknowledged) per event.
    """

    def __init__(self, url: str, users: list[str], rate: float, title_pad: int = 0, tick: float = 0.02,
                 max_batch: int = 500) -> None:
        super().__init__(daemon=True)
        self.url, self.users, self.rate, self.tick, self.max_batch = url, users, rate, tick, max_batch
        self.pad = "-" * title_pad
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[float] = []  # due times (epoch s) of acknowledged events
        self.failed: list[float] = []
        self.post_lag_ms: list[tuple[float, float]] = []  # (sent at, how late after the oldest event's due time)
        self.rng = random.Random(1)

    def run(self) -> None:
        session = requests.Session()
        start = time.time()
        sent = 0
        while not self.stop_event.is_set():
            now = time.time()
            due_n = int((now - start) * self.rate)
            batch = []
            while sent < due_n and len(batch) < self.max_batch:
                batch.append(start + sent / self.rate)
                sent += 1
            if batch:
                body = {"events": [[self.rng.choice(self.users), f"bench:{d * 1000:.3f}{self.pad}"] for d in batch]}
                t_send = time.time()
                try:
                    ok = session.post(self.url + "/bench/emit", json=body, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                with self.lock:
                    (self.acked if ok else self.failed).extend(batch)
                    self.post_lag_ms.append((t_send, (t_send - batch[0]) * 1000))
            if sent >= int((time.time() - start) * self.rate):
                self.stop_event.wait(self.tick)

    def count(self, t0: float, t1: float) -> tuple[int, int]:
        with self.lock:
            return (sum(1 for d in self.acked if t0 <= d < t1), sum(1 for d in self.failed if t0 <= d < t1))

    def lag(self, t0: float, t1: float) -> float | None:
        with self.lock:
            lags = sorted(lag for at, lag in self.post_lag_ms if t0 <= at < t1)
        return round(pct(lags, 0.99), 1) if lags else None

    def stop(self) -> None:
        self.stop_event.set()
        self.join(40)


class Sampler(threading.Thread):
    """The server's RSS every 250 ms (for the windows' maxima)."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            try:
                self.samples.append((time.time(), self.server.rss()))
            except Exception:
                return

    def max_between(self, t0: float, t1: float) -> int | None:
        values = [rss for at, rss in list(self.samples) if t0 <= at <= t1]
        return max(values) if values else None


def get_stats(server: Server, timeout: float = 30, reset: bool = False) -> dict[str, Any]:
    """The server's counts; ``gc`` (collections and pauses since the last reset) is kept, and reset if asked."""
    try:
        with urllib.request.urlopen(f"{server.url}/bench/stats{'?reset=1' if reset else ''}", timeout=timeout) as resp:
            data = json.load(resp)
        gc = data.get("gc") or {}
        data["gc"] = {k: gc.get(k) for k in ("collections", "pause_max_ms", "pauses_over_20ms")}
        return data
    except Exception as exc:  # a server still busy with a flood may not answer in time: say so
        return {"error": repr(exc)}


class FloodRun:
    """One server (one code tree, one async mode): victims connected, the emitter running, every flood in turn."""

    def __init__(self, code: str, tree: Path | None, mode: str, args: argparse.Namespace, run_dir: Path,
                 tokens_file: Path, deadline: float) -> None:
        self.code, self.tree, self.mode, self.args = code, tree, mode, args
        self.run_dir, self.tokens_file, self.deadline = run_dir, tokens_file, deadline
        self.prefix = f"{code}-{mode}"
        self.result: dict[str, Any] = {"code": code, "tree": str(tree) if tree else str(BENCH.parent), "mode": mode,
                                       "floods": [], "errors": []}

    def run(self) -> dict[str, Any]:
        logs = self.run_dir / "logs"
        saved = os.environ.get("PYTHONPATH")
        if self.tree is not None:  # the other tree's package first: this tree's ext_app.py, its library
            os.environ["PYTHONPATH"] = str(self.tree)
        try:
            srv_args = argparse.Namespace(ext_log="info", ext_config=self.args.ext_config, ext_mode=self.mode)
            self.server = Server(f"ext-{self.mode}", srv_args, logs / f"{self.prefix}-server.log")
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        self.client = Client(0, logs / f"{self.prefix}-victims.log")
        self.sampler = Sampler(self.server)
        self.sampler.start()
        self.emitter: Emitter | None = None
        try:
            self._sequence()
        except Exception as exc:  # keep what was measured; the summary shows the error
            log(f"  {self.prefix}: ERROR {exc!r}")
            self.result["errors"].append(repr(exc))
        finally:
            if self.emitter is not None:
                self.emitter.stop()
            self.sampler.stop_event.set()
            self.client.stop()
            self.server.stop()
        return self.result

    def _connect_victims(self) -> None:
        a = self.args
        connected, failures = 0, {}
        for first in range(0, a.victims, 25):  # 25 a second: under the default 30/s per address
            t0 = time.monotonic()
            r = self.client.call("connect", timeout=60, url=self.server.url, tokens_file=str(self.tokens_file),
                                 users=[first, min(first + 25, a.victims)], tabs=1, concurrency=25,
                                 timeout_ms=20000, lean=True)
            connected += r["connected"]
            for k, v in r["failures"].items():
                failures[k] = failures.get(k, 0) + v
            time.sleep(max(0.0, 1.05 - (time.monotonic() - t0)))
        self.result["victims"] = {"connected": connected, "failures": failures}
        log(f"  {self.prefix}: {connected}/{a.victims} victims connected {failures or ''}")

    def _sequence(self) -> None:
        a = self.args
        log(f"{self.prefix} on {self.server.url} (pid {self.server.proc.pid})")
        self._connect_victims()
        self.emitter = Emitter(self.server.url, [f"u{i}" for i in range(a.victims)], a.rate)
        self.emitter.start()
        time.sleep(a.settle)
        self.result["base_rss_mb"] = round(self.server.rss() / 2**20, 1)
        self.result["stats_start"] = get_stats(self.server)
        self.client.call("reset")
        self.received_total = 0
        self.run_t0 = time.time()
        for name in a.floods:
            if self.deadline - time.monotonic() < 3 * a.window + 40:
                self.result["errors"].append(f"time limit before flood {name}")
                log(f"  {self.prefix}: time limit, skipping {name} and the rest")
                break
            self.result["floods"].append(self._flood(name))
        # Drain, then the whole run's count: every acknowledged event due since the first window, received?
        t_stop = time.time()
        self.emitter.stop()
        time.sleep(5)
        self._window("drain", time.time() - 5)
        acked, failed = self.emitter.count(self.run_t0, t_stop)
        # A window's events are counted when it closes, but a request the server answers late acknowledges events
        # due in an earlier window: count them again now that every request has been answered.
        for f in self.result["floods"]:
            for w in f["windows"]:
                w["due_at_close"] = w["due"]
                w["due"], w["failed_emits"] = self.emitter.count(w["t0"], w["t1"])
            f["lost"] = sum(w["due"] - w["received"] for w in f["windows"])
        self.result["total"] = {"acked": acked, "failed_emits": failed, "received": self.received_total,
                                "lost": acked - self.received_total}
        self.result["stats_end"] = get_stats(self.server)
        log(f"  {self.prefix}: total {self.result['total']}")

    def _window(self, label: str, t0: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close the window that began at ``t0`` (the victims' recording was reset then) and start the next."""
        t1 = time.time()
        cpu1 = self.server.cpu()
        rss1 = self.server.rss()
        rep = self.client.call("report", timeout=60)
        self.client.call("reset")
        self.received_total += rep["received"]
        lat = sorted(rep["latencies_ms"])
        emitted, failed = self.emitter.count(t0, t1) if self.emitter else (0, 0)
        w = {
            "window": label, "t0": round(t0, 3), "t1": round(t1, 3), "seconds": round(t1 - t0, 2), "due": emitted,
            "failed_emits": failed,
            "received": rep["received"], "p50_ms": _r(pct(lat, 0.5)), "p99_ms": _r(pct(lat, 0.99)),
            "max_ms": _r(lat[-1]) if lat else None, "victim_sockets": rep["sockets"],
            "victim_unexpected_disconnects": rep["unexpected_disconnects"],
            "rss_start_mb": round(self._rss0 / 2**20, 1), "rss_end_mb": round(rss1 / 2**20, 1),
            "rss_max_mb": round((self.sampler.max_between(t0, t1) or rss1) / 2**20, 1),
            "cpu_pct": round((cpu1 - self._cpu0) / (t1 - t0) * 100, 1),
            "emit_post_lag_p99_ms": self.emitter.lag(t0, t1) if self.emitter else None,
            **(extra or {}),
        }
        self._cpu0, self._rss0 = cpu1, rss1
        return w

    def _flood(self, name: str) -> dict[str, Any]:
        a = self.args
        log(f"  {self.prefix} {name}")
        windows = []
        self.client.call("reset")
        get_stats(self.server, reset=True)  # GC pauses from here to the end of the flood's 'after' window
        self._cpu0, self._rss0 = self.server.cpu(), self.server.rss()
        t0 = time.time()
        time.sleep(a.window)
        windows.append(self._window("before", t0))
        t0 = time.time()
        slow_emitter = None
        if name == "slow":  # events to the reader that stopped reading, besides the victims' stream
            slow_emitter = Emitter(self.server.url, [f"u{SLOW_USER}"], a.slow_rate, title_pad=170, max_batch=200)
            slow_emitter.start()
        cmd = [NODE, str(BENCH / "loadgen/flood.js"), "--url", self.server.url, "--duration", str(a.window),
               *flood_args(name, self.tokens_file)]
        with open(self.run_dir / "logs" / f"{self.prefix}-flood-{name}.log", "w") as err:
            proc = spawn(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                out, _ = proc.communicate(timeout=a.window + 60)
            except Exception:
                proc.kill()
                out, _ = proc.communicate()
        flood: dict[str, Any] = {}
        for line in (out or "").splitlines():
            if line.startswith("{"):
                flood = json.loads(line)
        if slow_emitter is not None:
            slow_emitter.stop()
            flood["slow_events_acked"] = len(slow_emitter.acked)
            flood["slow_events_failed"] = len(slow_emitter.failed)
        windows.append(self._window("during", t0))
        t0 = time.time()
        time.sleep(a.window)
        windows.append(self._window("after", t0))
        stats = get_stats(self.server)
        entry = {"flood": name, "flood_client": flood, "windows": windows, "stats_after": stats,
                 "lost": sum(w["due"] - w["received"] for w in windows)}
        d = windows[1]
        log(f"    {name}: flood {_brief(flood)}; during p50 {d['p50_ms']} p99 {d['p99_ms']} max {d['max_ms']} ms, "
            f"received {d['received']}/{d['due']}, RSS {d['rss_start_mb']}->{d['rss_end_mb']} (max {d['rss_max_mb']}) MB, "
            f"CPU {d['cpu_pct']}%; after p99 {windows[2]['p99_ms']} ms, RSS {windows[2]['rss_end_mb']} MB; "
            f"lost {entry['lost']}; stats {stats}")
        return entry


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _brief(f: dict[str, Any]) -> str:
    keys = ("packets_per_s", "mb_sent", "handshakes", "opened", "connected", "max_open", "refused_http",
            "closed_by_server", "posted", "post_status", "connect_ms", "slow", "slow_events_acked", "cpu_pct", "error")
    return ", ".join(f"{k}={f[k]}" for k in keys if k in f and f[k] not in ({}, None))


def achieved(f: dict[str, Any]) -> str:
    """What the flood client achieved, in a line."""
    if not f:
        return "(no report)"
    kind = f.get("kind")
    # Refused handshakes: HTTP 401 (eventlet, polling), or under gevent the 101 upgrade then a close before OPEN.
    refused = sum(f.get("refused_http", {}).values()) + f.get("errors", {}).get("closed_before_open", 0)
    hs = f"{f.get('handshakes', 0)} handshakes ({f.get('opened', 0)} opened, {refused} refused)"
    wall = f.get("wall_s") or 1
    if kind in ("events", "refused"):
        return f"{f['packets']} packets, {f['packets_per_s']}/s; {hs}"
    if kind == "binary":
        return f"{f['mb_sent']} MB in {f['packets']} packets; {hs}"
    if kind == "pending":
        return f"max {f['max_open']} held; {hs}; {f['closed_by_server']} closed by server"
    if kind == "closeconnect":
        return f"{f.get('posted', 0)} CLOSE+CONNECT posted ({f.get('posted', 0) / wall:.0f}/s); {hs}"
    if kind == "slow":
        return f"{f.get('slow')}; {f.get('slow_events_acked')} events emitted to it"
    if kind == "connect":
        return (f"{f['connected']} connected of {f['handshakes']} attempted in {f.get('connect_wall_s')} s, "
                f"{refused} refused, {f.get('connect_errors', 0)} connect errors; connect ms {f.get('connect_ms')}")
    return json.dumps(f)


def write_summary(results: dict[str, Any], path: Path) -> None:
    lines = [f"# Floods, {results['started']}", "",
             f"Victims: {results['args']['victims']} users x 1 lean socket, {results['args']['rate']:g} events/s "
             f"emitted to them; windows of {results['args']['window']} s before / during / after each flood. "
             f"Latency = receipt - due time (ms; the emitter posts every 20 ms, so a due time is up to 20 ms before "
             f"its request leaves), events received in the window; 'recv/due' = events received in the window / "
             f"events due in it (a late delivery counts in a later window); 'lost' = due - received over the "
             f"flood's three windows (negative: events due before them arrived in them). RSS start->end (max) MB; CPU % of one core. Bound: p99 <= "
             f"{P99_LIMIT_MS:g} ms.", ""]
    for run in results["runs"]:
        lines += [f"## {run['code']}, {run['mode']}", "",
                  f"Base RSS {run.get('base_rss_mb')} MB; victims {run.get('victims')}; stats at start "
                  f"{run.get('stats_start')}; total {run.get('total')}; errors {run['errors'] or 'none'}", "",
                  "| flood | window | p50 | p99 | max | recv/due | lost | RSS MB | CPU % | victims' disconnects |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for f in run["floods"]:
            for w in f["windows"]:
                over = " **>100**" if w["p99_ms"] is not None and w["p99_ms"] > P99_LIMIT_MS else ""
                lines.append(
                    f"| {f['flood'] if w['window'] == 'before' else ''} | {w['window']} | {w['p50_ms']} | "
                    f"{w['p99_ms']}{over} | {w['max_ms']} | {w['received']}/{w['due']} | "
                    f"{f['lost'] if w['window'] == 'during' else ''} | {w['rss_start_mb']}->{w['rss_end_mb']} "
                    f"({w['rss_max_mb']}) | {w['cpu_pct']} | {w['victim_unexpected_disconnects']} |")
        lines += ["", "Achieved by the flood client, and the server's stats after each flood's 'after' window:", ""]
        for f in run["floods"]:
            lines.append(f"- **{f['flood']}**: {achieved(f['flood_client'])} (flood client CPU "
                         f"{f['flood_client'].get('cpu_pct')}%). After: {f['stats_after']}")
        lines.append("")
    path.write_text("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="eventlet,gevent")
    p.add_argument("--floods", default=",".join(FLOODS))
    p.add_argument("--code", action="append", default=[],
                   help="label=path of another tree whose flask_dashboard_ws to measure too (repeatable)")
    p.add_argument("--only-code", action="store_true", help="measure only the --code trees, not this one")
    p.add_argument("--victims", type=int, default=500)
    p.add_argument("--rate", type=float, default=200.0, help="events/s emitted to the victims")
    p.add_argument("--slow-rate", type=float, default=2000.0, help="events/s emitted to the slow reader's user")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--time-limit", type=float, default=3000.0, help="seconds for the whole run")
    p.add_argument("--ext-config", default="{}", help="JSON of app.config keys for the server (default: none, as installed)")
    p.add_argument("--label", default="floods", help="a name added to the results folder")
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.floods = [f for f in args.floods.split(",") if f]
    for f in args.floods:
        if f not in FLOODS:
            p.error(f"unknown flood {f}; one of {', '.join(FLOODS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    raise_nofile_limit()
    deadline = time.monotonic() + args.time_limit
    started = dt.datetime.now(dt.timezone.utc)
    run_dir = BENCH / "results" / f"{started:%Y%m%dT%H%M%SZ}-{args.label}"
    (run_dir / "logs").mkdir(parents=True)
    codes: list[tuple[str, Path | None]] = [] if args.only_code else [("after", None)]
    for spec in args.code:
        label, _, path = spec.partition("=")
        codes.append((label, Path(path).resolve()))
    results = {"started": started.isoformat(), "args": vars(args), "runs": []}
    out_json, out_md = run_dir / "results.json", run_dir / "summary.md"
    log(f"floods: {[c for c, _ in codes]} x {args.modes}, {args.floods}; results in {run_dir}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(mint_tokens(N_TOKENS)))
            for code, tree in codes:
                for mode in args.modes:
                    if deadline - time.monotonic() < 120:
                        log(f"time limit: {code} {mode} not run")
                        continue
                    results["runs"].append(FloodRun(code, tree, mode, args, run_dir, tokens_file, deadline).run())
                    out_json.write_text(json.dumps(results, indent=1))
                    write_summary(results, out_md)
    finally:
        _stop_children()
        out_json.write_text(json.dumps(results, indent=1))
        write_summary(results, out_md)
    log(f"wrote {out_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
