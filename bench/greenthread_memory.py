"""Experiment: the memory one parked green thread costs, the floor under the Python servers' KB per socket.

    python bench/greenthread_memory.py [eventlet|gevent] [--depth N]

Each open socket of an eventlet or gevent server keeps green threads parked for its whole life (the WSGI
connection handler, engine.io's writer, engine.io's ping task), each with its own greenlet, Python data
stack and saved slice of the C stack. This spawns 10,000 that park ``--depth`` Python calls deep and prints
the RSS they added, per green thread.
"""

from __future__ import annotations

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("mode", nargs="?", choices=("eventlet", "gevent"), default="eventlet")
parser.add_argument("--depth", type=int, default=10, help="Python frames below the parked call")
parser.add_argument("--count", type=int, default=10_000)
args = parser.parse_args()

if args.mode == "eventlet":
    import eventlet

    spawn, sleep = eventlet.spawn, eventlet.sleep
else:
    import gevent

    spawn, sleep = gevent.spawn, gevent.sleep


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def park(depth: int) -> None:
    if depth:
        park(depth - 1)
    else:
        sleep(3600)


sleep(0)
before = rss()
threads = [spawn(park, args.depth) for _ in range(args.count)]
sleep(0.5)  # every one has run up to its sleep
print(f"{args.mode}, {args.depth} frames deep: {(rss() - before) / args.count / 1024:.1f} KB per parked green thread")
