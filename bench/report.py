"""Tables and the latency chart from a ``results.json`` of ``bench/run.py``.

    python bench/report.py bench/results/<run>/results.json [--update-doc]

Writes ``summary.md`` and ``latency.png`` beside the JSON; ``--update-doc`` also replaces the section between
``<!-- results:start -->`` and ``<!-- results:end -->`` in BENCHMARKS.md with the summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ORDER = ("ext", "ext-stock", "ext-gevent", "ext-gevent-stock", "ext-threading", "ext-redis1", "ext-redis2", "ext-redis4", "ext-redis1-shared",
         "ext-redis2-shared", "ext-redis4-shared", "ext-defaults", "naive", "asgi", "node")

def runs_done(results: dict[str, Any]) -> str:
    """How many runs each server completed (fewer than asked when the suite was stopped early)."""
    counts = {s: len(e["runs"]) for s, e in results["servers"].items()}
    if len(set(counts.values())) <= 1:
        return str(next(iter(counts.values()), 0))
    return ", ".join(f"{s} {n}" for s, n in counts.items())


# (regex on the metric name, label, unit, better) in table order; "better" is "lower" or "higher".
ROWS = [
    (r"max_connections_held", "connections held (highest ramp level reached)", "", "higher"),
    (r"rss_per_conn_kb@(\d+)", "RSS per connection at {0} connections", "KB", "lower"),
    (r"rss_marginal_kb@(\d+)", "RSS per connection added by the last ramp step, up to {0}", "KB", "lower"),
    (r"handshakes_per_s@(\d+)", "connect+auth handshakes/s, ramp step to {0}", "/s", "higher"),
    (r"cpu_per_handshake_us@(\d+)", "server CPU per handshake, ramp step to {0}", "µs", "lower"),
    (r"connect_p99_ms@(\d+)", "connect p99 while ramping to {0}", "ms", "lower"),
    (r"idle_cpu_pct@(\d+)", "idle server CPU with {0} connections", "% core", "lower"),
    (r"p50_ms@([\d.]+)/s@(\d+)", "latency p50, {0} events/s, {1} users", "ms", "lower"),
    (r"p99_ms@([\d.]+)/s@(\d+)", "latency p99, {0} events/s, {1} users", "ms", "lower"),
    (r"p999_ms@([\d.]+)/s@(\d+)", "latency p99.9, {0} events/s, {1} users", "ms", "lower"),
    (r"lost@([\d.]+)/s@(\d+)", "events lost, {0} events/s, {1} users", "", "lower"),
    (r"cpu_per_event_us@([\d.]+)/s@(\d+)", "server CPU per event (batched requests), {0}/s, {1} users", "µs", "lower"),
    (r"net_cpu_per_event_us@([\d.]+)/s@(\d+)", "… less idle CPU, {0}/s, {1} users", "µs", "lower"),
    (r"view_cpu_per_event_us", "server CPU per event emitted from a view (1 event/request)", "µs", "lower"),
    (r"view_net_cpu_per_event_us", "… less idle CPU", "µs", "lower"),
    (r"sustained_delivered_per_s_tabs1$", "sustained delivered events/s, 1 socket per user (p99 ≤ 50 ms)", "/s", "higher"),
    (r"sustained_delivered_per_s_tabs(\d+)", "sustained delivered events/s, {0} sockets per user (p99 ≤ 50 ms)", "/s", "higher"),
    (r"gc_max_pause_ms", "longest GC pause during the emit phases", "ms", "lower"),
    (r"disconnect_per_s@(\d+)", "disconnects processed per second, all {0} sockets closing at once", "/s", "higher"),
]


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, float] | None) -> str:
    if not stats:
        return "–"
    if stats["n"] > 1 and stats["min"] != stats["max"]:
        return f"{_num(stats['median'])} ({_num(stats['min'])}–{_num(stats['max'])})"
    return _num(stats["median"])


def _ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
    if not a or not b or not b["median"]:
        return "–"
    return f"{a['median'] / b['median']:.2f}×"


def _row_key(name: str) -> tuple[int, tuple, str] | None:
    for i, (pattern, label, unit, better) in enumerate(ROWS):
        m = re.fullmatch(pattern, name)
        if m:
            groups = m.groups()
            nums = tuple(float(g) for g in groups)
            return i, (nums[1:] + nums[:1]) if len(nums) > 1 else nums, label.format(*[f"{float(g):g}" for g in groups])
    return None


def table(results: dict[str, Any]) -> str:
    servers = [s for s in ORDER if s in results["servers"]]
    summaries = {s: results["servers"][s].get("summary", {}) for s in servers}
    names = {n for s in servers for n in summaries[s]}
    if results["config"].get("idle_window", 25) < 20:
        # Shorter than one ping interval, and taken right after the ramp: before the first heartbeats.
        names = {n for n in names if not n.startswith(("idle_cpu_pct", "net_cpu_per_event", "view_net_cpu"))}
    rows = sorted((k, n) for n in names if (k := _row_key(n)))
    head = ["metric", "unit"] + [results["servers"][s]["label"] for s in servers]
    ratios = [(a, b) for a in ("ext", "ext-gevent") for b in ("naive", "node") if a in servers and b in servers]
    head += [f"{a} ÷ {b}" for a, b in ratios] + ["better"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (index, _, label), name in rows:
        unit, better = ROWS[index][2], ROWS[index][3]
        cells = [label, unit] + [_cell(summaries[s].get(name)) for s in servers]
        cells += [_ratio(summaries[a].get(name), summaries[b].get(name)) for a, b in ratios]
        cells.append(better)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def micro_table(micro: dict[str, Any]) -> str:
    if not micro or "error" in micro:
        return f"microbenchmark failed:\n\n```\n{(micro or {}).get('error', 'not run')}\n```"
    lines = ["| per event | extension median µs | naive (Schema per emit) median µs | ext ÷ naive |", "|---|---|---|---|"]
    for part, label in (("envelope", "validation + envelope"), ("encode", "… + Socket.IO packet JSON encoding"),
                        ("emit", "whole emit call from a view (no socket)")):
        e, n = micro.get(f"test_ext_{part}"), micro.get(f"test_naive_{part}")
        if e and n:
            lines.append(f"| {label} | {e['median_us']:.1f} | {n['median_us']:.1f} | {e['median_us'] / n['median_us']:.2f}× |")
    if micro.get("test_input_only"):
        lines.append(f"| (building the view's input, included above) | {micro['test_input_only']['median_us']:.1f} | | |")
    return "\n".join(lines)


def headroom(results: dict[str, Any]) -> str:
    """The load generator's CPU in the busiest phases: it must not be the bottleneck."""
    lines = ["| server | phase | delivered/s | server % core | clients % core (total / busiest process) | driver % core | other processes % core |",
             "|---|---|---|---|---|---|---|"]
    for s in ORDER:
        if s not in results["servers"]:
            continue
        phases = []
        for run in results["servers"][s]["runs"][:1]:
            for search in run.get("max_search", {}).values():
                if search["steps"]:
                    phases.append(max(search["steps"], key=lambda x: x["delivered_per_s"]))
        for p in phases:
            lines.append(f"| {results['servers'][s]['label']} | {p['label']} | {p['delivered_per_s']:,.0f} | "
                         f"{p['server_cpu_pct']} | {p['clients_cpu_pct']} / {p['client_max_cpu_pct']} | "
                         f"{p['driver_cpu_pct']} | {p['other_cpu_pct']} |")
    return "\n".join(lines)


def summary_md(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    cpu = m["lscpu"]
    errors = [f"- {results['servers'][s]['label']} run {r['repeat']}: {e}"
              for s in ORDER if s in results["servers"] for r in results["servers"][s]["runs"] for e in r["errors"]]
    parts = [
        f"Run of {results['date_utc']} ({results.get('elapsed_s', '?')} s): `{results['command']}`",
        "",
        f"Machine: {cpu.get('Model name', '?')}, {cpu.get('CPU(s)', '?')} CPUs ({cpu.get('Hypervisor vendor', 'bare metal')}), "
        f"kernel {m['kernel']}, Python {m['python']}, Node {m['node']}, nofile limit {m['nofile_limit']}, "
        f"somaxconn {m['somaxconn']}, load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.",
        "",
        "```",
        m["free"],
        "```",
        "",
        f"Packages: {', '.join(f'{k} {v}' for k, v in {**m['python_packages'], **m['node_packages']}.items())}; "
        f"package at git {m['git_head']}{' with uncommitted changes' if m['git_dirty_package'] else ''}.",
        "",
        f"{runs_done(results)} run(s) per server, median (min–max). Latency users: {cfg['latency_users']}; "
        f"fixed-rate windows {cfg['window']} s; search windows {cfg['search_window']} s; {cfg['clients']} client "
        f"processes; extension mode {cfg['ext_mode']}, log {cfg['ext_log']}, config {cfg['ext_config']}.",
        "",
        table(results),
        "",
        "Per-event cost inside the server (pytest-benchmark, one process, no sockets):",
        "",
        micro_table(results.get("micro", {})),
        "",
        "Load generator headroom in each server's busiest sustained-maximum step (first run; 100 = one core of 2):",
        "",
        headroom(results),
    ]
    if cfg.get("idle_window", 25) < 20:
        errors.insert(0, f"- the idle window ({cfg['idle_window']} s) was shorter than one ping interval (25 s): "
                         "the idle CPU rows and the CPU rows less idle CPU are left out")
    for kind in servers_in(results):
        for i, run in enumerate(results["servers"][kind]["runs"], 1):
            for d in run.get("disconnects", []):
                if d["sockets"] >= 1000 and d["left"] != 0:
                    held = "unknown: it answered no request meanwhile" if d["left"] < 0 else d["left"]
                    errors.append(f"- {results['servers'][kind]['label']} run {i}: {d['seconds']} s after {d['sockets']} "
                                  f"sockets closed at once, sockets it still held: {held}")
    if errors:
        parts += ["", "Notes from the runs:", "", *errors]
    return "\n".join(parts) + "\n"


def servers_in(results: dict[str, Any]) -> list[str]:
    return [s for s in ORDER if s in results["servers"]]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = [s for s in ORDER if s in results["servers"]]
    tabs_values = sorted({lat["tabs"] for s in servers for run in results["servers"][s]["runs"]
                          for lat in _emit_phases(run)})
    if not tabs_values:
        return  # a run without emits (--skip-emits) has nothing to draw
    fig, axes = plt.subplots(1, len(tabs_values) or 1, figsize=(7 * max(1, len(tabs_values)), 6.5), squeeze=False)
    colors = {"ext": "tab:blue", "ext-defaults": "tab:gray", "ext-redis1": "tab:pink", "ext-redis2": "tab:brown", "ext-redis4": "tab:orange", "ext-redis1-shared": "pink", "ext-redis2-shared": "brown", "ext-redis4-shared": "orange", "ext-gevent": "tab:cyan", "ext-stock": "lightsteelblue", "ext-gevent-stock": "paleturquoise", "ext-threading": "tab:olive", "naive": "tab:red", "asgi": "tab:green", "node": "tab:purple"}
    styles = (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99"), ("p999_ms", ":", "p99.9"))
    for ax, tabs in zip(axes[0], tabs_values):
        for s in servers:
            points: dict[float, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
            for run in results["servers"][s]["runs"]:
                for lat in _emit_phases(run):
                    if lat["tabs"] != tabs or lat["max_batch"] == 1 or lat["users"] != _users_with(results["config"], tabs):
                        continue
                    for key, _, _ in styles:
                        if lat[key] is not None:
                            points[lat["target_delivered_per_s"]][key].append(lat[key])
            rates = sorted(points)
            for key, style, name in styles:
                xs = [r for r in rates if points[r][key]]
                ys = [statistics.median(points[r][key]) for r in xs]
                if xs:
                    ax.plot(xs, ys, style, marker="o", markersize=3, color=colors[s],
                            label=f"{results['servers'][s]['label']} {name}")
        ax.axhline(50, color="grey", linewidth=0.8)
        ax.text(0.01, 50, "p99 limit 50 ms", va="bottom", fontsize=8, color="grey", transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("target delivered events/s (log)")
        ax.set_ylabel("emit-to-receive latency, ms (log)")
        ax.set_title(f"{'one socket' if tabs == 1 else f'{tabs} sockets'} per user")
        ax.grid(True, which="both", linewidth=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"Latency percentiles against emit rate ({results['date_utc']}, median of runs)", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _users_with(config: dict[str, Any], tabs: int) -> int:
    """The users of the emit phases with ``tabs`` sockets each (the multi-tab test's: --tab-users)."""
    if tabs == 1:
        return config["latency_users"]
    return config.get("tab_users") or config["latency_users"] // tabs


def _emit_phases(run: dict[str, Any]) -> list[dict[str, Any]]:
    phases = list(run.get("latency", []))
    for search in run.get("max_search", {}).values():
        phases += search["steps"]
    return phases


def write_all(results: dict[str, Any], run_dir: Path, update_doc: bool = False) -> None:
    text = summary_md(results)
    (run_dir / "summary.md").write_text(text)
    try:
        chart(results, run_dir / "latency.png")
    except Exception as exc:  # a chart failure must not lose the numbers
        print(f"chart failed: {exc!r}", file=sys.stderr)
    if update_doc:
        doc = BENCH.parent / "BENCHMARKS.md"
        content = doc.read_text()
        rel = run_dir.relative_to(BENCH.parent) if run_dir.is_relative_to(BENCH.parent) else run_dir
        block = f"<!-- results:start -->\nResults folder: `{rel}`; chart: `{rel}/latency.png`.\n\n{text}<!-- results:end -->"
        content = re.sub(r"<!-- results:start -->.*?<!-- results:end -->", lambda _: block, content, flags=re.S)
        doc.write_text(content)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("results_json")
    parser.add_argument("--update-doc", action="store_true")
    a = parser.parse_args()
    path = Path(a.results_json).resolve()
    results = json.loads(path.read_text())
    import run  # the figures are recomputed from the raw runs, so a re-render picks up new ones

    for entry in results["servers"].values():
        entry["summary"] = run.summarise(entry["runs"])
    write_all(results, path.parent, update_doc=a.update_doc)
    print((path.parent / "summary.md").read_text())
