"""Baseline (a): the straightforward Flask-SocketIO server from the seed story, untuned.

    python bench/baselines/naive_app.py [--port 0]

eventlet, flask-jwt-extended ``decode_token`` in the connect handler, one room per user, a marshmallow
envelope Schema built per emit, ``socketio.emit(..., to=room)`` straight from the view. The only changes
from ``socketio.run(app)`` are the limits without which it cannot be measured at all: the file-descriptor
soft limit, eventlet's ``max_size`` (1,024 by default) and the listen backlog (50 in ``socketio.run``).
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import eventlet.wsgi  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from flask_jwt_extended import JWTManager, decode_token  # noqa: E402
from flask_socketio import ConnectionRefusedError, SocketIO, join_room  # noqa: E402

from baselines.naive_schemas import build_envelope, new_moc  # noqa: E402
from common import (  # noqa: E402
    EVENT,
    EVENTLET_MAX_SIZE,
    JWT_SECRET,
    LISTEN_BACKLOG,
    NAMESPACE,
    GcProbe,
    announce,
    raise_nofile_limit,
)

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = JWT_SECRET
jwt = JWTManager(app)
socketio = SocketIO(app, async_mode="eventlet")
connected: set[str] = set()
gc_probe = GcProbe()


@socketio.on("connect", namespace=NAMESPACE)
def on_connect(auth):
    token = auth.get("token") if isinstance(auth, dict) else None
    if not token:
        raise ConnectionRefusedError("unauthorized")
    try:
        claims = decode_token(token)
    except Exception:
        raise ConnectionRefusedError("unauthorized")
    join_room(f"user:{claims['sub']}")
    connected.add(request.sid)


@socketio.on("disconnect", namespace=NAMESPACE)
def on_disconnect(reason=None):
    connected.discard(request.sid)


def emit_to_user(user_id, event_type, payload):
    socketio.emit(event_type, build_envelope(event_type, payload), to=f"user:{user_id}", namespace=NAMESPACE)


@app.post("/bench/emit")
def bench_emit():
    events = request.get_json()["events"]
    for user_id, title in events:
        emit_to_user(user_id, EVENT, new_moc(title))
    return jsonify(n=len(events))


@app.get("/bench/stats")
def bench_stats():
    return jsonify(connections=len(connected), gc=gc_probe.snapshot(reset=request.args.get("reset") == "1"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_nofile_limit()
    sock = eventlet.listen(("127.0.0.1", args.port), backlog=LISTEN_BACKLOG)
    announce(sock.getsockname()[1])
    eventlet.wsgi.server(sock, app, log_output=False, max_size=EVENTLET_MAX_SIZE)
