"""Experiment: where one open socket's memory goes, by the line that allocated it (tracemalloc).

    python bench/socket_memory.py [eventlet|gevent] [--sockets 1000] [--lean 0|1]

Starts the extension under ``dashboard.run`` in a child process with tracemalloc on, connects ``--sockets``
authenticated WebSockets to it (engine.io and Socket.IO spoken by hand, as in the tests), and prints the
Python allocations that the sockets added, per socket, grouped by the line that made them. Only Python's
allocations are traced: the RSS per socket (bench/run.py) is higher. The sockets answer no pings, so the
census is taken within the first ping interval.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import JWT_SECRET, mint_tokens  # noqa: E402


def serve(mode: str, lean: bool) -> None:
    """The child: the app under dashboard.run, with /census/<name> (a snapshot) and /diff/<a>/<b>."""
    if mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import eventlet

        eventlet.monkey_patch()
    import gc
    import tracemalloc

    from flask import Flask, jsonify
    from flask_jwt_extended import JWTManager

    from flask_dashboard_ws import DashboardRealtime

    tracemalloc.start(1)
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=JWT_SECRET, DASHBOARD_WS_ASYNC_MODE=mode, DASHBOARD_WS_LEAN_SOCKETS=lean,
                      DASHBOARD_WS_SOCKETIO_OPTIONS={"transports": ["websocket"]},
                      DASHBOARD_WS_HANDSHAKE_RATE=1e6, DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS=1e6)
    JWTManager(app)
    dashboard = DashboardRealtime(app)
    snapshots = {}

    @app.get("/census/<name>")
    def census(name: str):
        gc.collect()
        snapshots[name] = tracemalloc.take_snapshot()
        return jsonify(ok=True)

    @app.get("/diff/<a>/<b>")
    def diff(a: str, b: str):
        stats = snapshots[b].compare_to(snapshots[a], "lineno")
        return jsonify(total=sum(s.size_diff for s in stats),
                       top=[[s.size_diff, s.count_diff, str(s.traceback[0])] for s in stats[:25]])

    dashboard.run(app, host="127.0.0.1", port=0)


def measure(mode: str, count: int, lean: bool) -> None:
    import requests
    import websocket

    child = subprocess.Popen([sys.executable, __file__, mode, "--serve", "--lean", str(int(lean))],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=BENCH.parent)
    try:
        for line in child.stdout:
            if "serving" in line and "port=" in line:
                port = int(line.split("port=")[1].split()[0])
                break
        else:
            raise RuntimeError("the server did not start")
        threading.Thread(target=child.stdout.read, daemon=True).start()  # its log, read so that it never blocks
        base = f"http://127.0.0.1:{port}"
        tokens = mint_tokens(count + 20)

        def connect(token: str) -> websocket.WebSocket:
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                                             timeout=10)
            assert ws.recv().startswith("0{")
            ws.send("40/dashboard," + json.dumps({"token": token}))
            assert ws.recv().startswith("40/dashboard,")
            return ws

        for ws in [connect(token) for token in tokens[:20]]:  # first calls' lazy state, before the census
            ws.close()
        requests.get(f"{base}/census/before", timeout=60)
        sockets = [connect(token) for token in tokens[20:]]
        requests.get(f"{base}/census/after", timeout=60)
        diff = requests.get(f"{base}/diff/before/after", timeout=60).json()
        print(f"{mode}, lean sockets {'on' if lean else 'off'}: {diff['total'] / count / 1024:.1f} KB of Python "
              f"allocations per socket, {count} sockets")
        for size, number, where in diff["top"]:
            print(f"  {size / count:8.0f} B  {number / count:5.1f} blocks  {where.replace(sys.prefix + '/', '')}")
        for ws in sockets:
            ws.close()
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", choices=("eventlet", "gevent"), default="gevent")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--lean", type=int, choices=(0, 1), default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sys.path.insert(0, str(BENCH.parent))
        serve(args.mode, bool(args.lean))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        os.environ.setdefault("NO_COLOR", "1")  # the "serving" line, whose port is read, without colour codes
        measure(args.mode, args.sockets, bool(args.lean))
