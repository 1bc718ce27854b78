"""The server under test: a Flask app using ``DashboardRealtime``, emitting from a Flask view.

    python bench/servers/ext_app.py [--mode eventlet|gevent|threading] [--log info|default|off]
                                    [--config JSON] [--port 0]

``POST /bench/emit`` with ``{"events": [[user_id, title], ...]}`` calls ``emit_recent_moc_added`` once per
event from the view (deferred to the end of the request, the extension's default in a view); ``GET
/bench/stats`` reports the extension's connection count, the GC probe, the engine.io sessions open and the limits' counts
(closed or refused sessions by reason). ``--config`` adds app.config keys
(``DASHBOARD_WS_*``) so the perf work can try levers without editing this file.

Logging: ``info`` (the default) configures structlog the way a production app would, at INFO, one
key=value line per event to a file (``--log-file``, default ``/dev/null``); ``default`` leaves structlog's
defaults (everything, debug included, pretty-printed on stdout); ``off`` drops everything below CRITICAL.
"""

import argparse
import json
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=("eventlet", "gevent", "threading"), default="eventlet")
parser.add_argument("--log", choices=("info", "default", "off"), default="info")
parser.add_argument("--log-file", default=os.devnull)
parser.add_argument("--config", default="{}", help="JSON object of extra app.config values")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--stock-server", action="store_true", help="eventlet's or gevent-websocket's own connection buffers")
args = parser.parse_args()

# Monkey patching comes before any other import, as Flask-SocketIO documents.
if args.mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()
elif args.mode == "gevent":
    from gevent import monkey

    monkey.patch_all()

import logging  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import structlog  # noqa: E402
from flask import Flask, current_app, jsonify, request  # noqa: E402
from flask_jwt_extended import JWTManager  # noqa: E402

from common import (  # noqa: E402
    EVENTLET_MAX_SIZE,
    JWT_SECRET,
    LISTEN_BACKLOG,
    GcProbe,
    heap_census,
    garbage_census,
    announce,
    raise_nofile_limit,
)
from flask_dashboard_ws import DashboardRealtime  # noqa: E402
from flask_dashboard_ws.serving import eventlet_protocol, gevent_handler  # noqa: E402

if args.log == "info":
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.KeyValueRenderer(key_order=["event"])],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(open(args.log_file, "a", buffering=1 << 16)),
        cache_logger_on_first_use=True,
    )
elif args.log == "off":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
                        cache_logger_on_first_use=True)

app = Flask(__name__)
app.config.update(JWT_SECRET_KEY=JWT_SECRET, DASHBOARD_WS_ASYNC_MODE=args.mode)
app.config.update(json.loads(args.config))
JWTManager(app)
dashboard = DashboardRealtime(app)
gc_probe = GcProbe()


@app.post("/bench/emit")
def bench_emit():
    events = request.get_json()["events"]
    for user_id, title in events:
        moc = {"id": uuid.uuid4(), "title": title, "theme": "Bench", "build_status": "ADDED",
               "cover_image_url": None, "created_at": datetime.now(timezone.utc)}
        dashboard.emit_recent_moc_added(user_id, moc)
    return jsonify(n=len(events))


@app.get("/bench/stats")
def bench_stats():
    state = current_app.extensions["dashboard_ws"]
    guard = getattr(state, "guard", None)  # the limits (issue #10): closed and refused sessions by reason
    server = state.socketio.server
    return jsonify(connections=len(state.connections), gc=gc_probe.snapshot(reset=request.args.get("reset") == "1"),
                   eio_sessions=len(server.eio.sockets),
                   limits=dict(guard.counts) if guard is not None else None,
                   pending=guard.pending if guard is not None else None)


@app.get("/bench/heap")
def bench_heap():
    """Tracked objects by type and the cost of a full collection (slow: for experiments, not during phases)."""
    return jsonify(heap_census(freeze=request.args.get("freeze") == "1"))


@app.get("/bench/garbage")
def bench_garbage():
    """What a reclaim would free now, by type and by frame (slow: for experiments, not during phases)."""
    return jsonify(garbage_census())


def serve_eventlet(port: int) -> None:
    import eventlet.wsgi

    sock = eventlet.listen(("127.0.0.1", port), backlog=LISTEN_BACKLOG)
    announce(sock.getsockname()[1])
    # The protocol dashboard.run serves with (1 KB connection buffers); --stock-server: eventlet's own.
    protocol = eventlet.wsgi.HttpProtocol if args.stock_server else eventlet_protocol()
    eventlet.wsgi.server(sock, app, log_output=False, max_size=EVENTLET_MAX_SIZE, protocol=protocol)


def serve_gevent(port: int) -> None:
    import socket

    from gevent import pywsgi
    from geventwebsocket.handler import WebSocketHandler

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(LISTEN_BACKLOG)
    announce(sock.getsockname()[1])
    # The handler dashboard.run serves with (a 1 KB read buffer); --stock-server: gevent-websocket's own.
    handler = WebSocketHandler if args.stock_server else gevent_handler()
    pywsgi.WSGIServer(sock, app, handler_class=handler, log=None).serve_forever()


def serve_threading(port: int) -> None:
    from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, *a, **kw):
            pass

        def run_wsgi(self):
            super().run_wsgi()
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.close_connection = True  # see tests/serve.py: werkzeug would read the close frame as a request

    BaseWSGIServer.request_queue_size = LISTEN_BACKLOG
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Handler)
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    raise_nofile_limit()
    {"eventlet": serve_eventlet, "gevent": serve_gevent, "threading": serve_threading}[args.mode](args.port)
