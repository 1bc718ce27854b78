"""Summarise a ``perf record`` of a Python 3.12+ server by the Python function running, and by package.

    PYTHONPERFSUPPORT=1 python3.12 bench/run.py ...          # the servers inherit it: perf sees py:: frames
    perf record -e cpu-clock -F 300 --call-graph dwarf,32768 -p <server pid> -o phase.data -- sleep 10
    python bench/perf_summary.py phase.data [--top 30]

py-spy (``bench/run.py --profile``) samples Python stacks from outside and counted a socket write's system call
as several times what perf measures (BENCHMARKS.md, "Lean sockets"); perf samples the CPU, the kernel included.
With Python's perf trampolines every sample is charged to the innermost Python function on its stack, C code
and system calls included; the kernel's share of all samples is printed first.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess

SYMBOL = re.compile(r"\s*([\d.]+)%\s+[\d.]+%\s+\[.\] (.*)")  # --children: children, self, [k] or [.], symbol
DSO = re.compile(r"\s*([\d.]+)%\s+(\S.*)")  # --no-children --sort dso: share, object


def report(data: str, row: re.Pattern[str], *options: str) -> list[tuple[float, str]]:
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none", *options],
                         capture_output=True, text=True, check=True).stdout
    return [(float(match.group(1)), match.group(2).strip()) for match in map(row.match, out.splitlines()) if match]


def package(path: str) -> str:
    if "flask_dashboard_ws" in path:
        return "flask_dashboard_ws/" + path.rpartition("/")[2]
    if "site-packages/" in path:
        return path.partition("site-packages/")[2].split("/")[0]
    return "stdlib or app: " + path.rpartition("/")[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    kernel = sum(share for share, dso in report(args.data, DSO, "--no-children", "--sort", "dso") if "kernel" in dso)
    functions = []
    packages: collections.Counter[str] = collections.Counter()
    for share, symbol in report(args.data, SYMBOL, "--children", "--sort", "sym"):
        if symbol.startswith("py::"):
            name, _, path = symbol[4:].partition(":")
            functions.append((share, name, package(path)))
            packages[package(path)] += share
    print(f"{args.data}: kernel {kernel:.1f}% of all samples\n\nby package (innermost Python function):")
    for name, share in packages.most_common(args.top):
        print(f"  {share:5.1f}%  {name}")
    print("\nby function:")
    for share, name, where in sorted(functions, reverse=True)[:args.top]:
        print(f"  {share:5.1f}%  {name}  [{where}]")


if __name__ == "__main__":
    main()
