"""Baseline (b): python-socketio's ASGI server under uvicorn, with the naive app's logic.

    python bench/baselines/asgi_app.py [--port 0]

PyJWT ``jwt.decode`` (HS256, signature, exp and nbf checked; refresh tokens refused) in the connect handler,
one room per user, the same per-emit marshmallow envelope as ``naive_app.py``, ``await sio.emit(..., to=room)``.
uvicorn with its defaults (uvloop, httptools, websockets when installed: ``uvicorn[standard]``), one process,
listen backlog as for the other servers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jwt  # noqa: E402
import socketio  # noqa: E402
import uvicorn  # noqa: E402

from baselines.naive_schemas import build_envelope, new_moc  # noqa: E402
from common import EVENT, JWT_ALGORITHM, JWT_SECRET, LISTEN_BACKLOG, NAMESPACE, GcProbe, announce, raise_nofile_limit  # noqa: E402

sio = socketio.AsyncServer(async_mode="asgi")
connected: set[str] = set()
gc_probe = GcProbe()


@sio.on("connect", namespace=NAMESPACE)
async def on_connect(sid, environ, auth):
    token = auth.get("token") if isinstance(auth, dict) else None
    if not token:
        raise socketio.exceptions.ConnectionRefusedError("unauthorized")
    try:
        claims = jwt.decode(token, JWT_SECRET, algorithms=[JWT_ALGORITHM])
    except jwt.PyJWTError:
        raise socketio.exceptions.ConnectionRefusedError("unauthorized")
    if claims.get("type") != "access":
        raise socketio.exceptions.ConnectionRefusedError("unauthorized")
    await sio.enter_room(sid, f"user:{claims['sub']}", namespace=NAMESPACE)
    connected.add(sid)


@sio.on("disconnect", namespace=NAMESPACE)
async def on_disconnect(sid, reason=None):
    connected.discard(sid)


async def emit_to_user(user_id, event_type, payload):
    await sio.emit(event_type, build_envelope(event_type, payload), to=f"user:{user_id}", namespace=NAMESPACE)


async def http_app(scope, receive, send):
    """The two benchmark routes, as plain ASGI."""
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/bench/emit" and method == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        events = json.loads(body)["events"]
        for user_id, title in events:
            await emit_to_user(user_id, EVENT, new_moc(title))
        result = {"n": len(events)}
    elif path == "/bench/stats" and method == "GET":
        reset = b"reset=1" in scope.get("query_string", b"")
        result = {"connections": len(connected), "gc": gc_probe.snapshot(reset=reset)}
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps(result).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app = socketio.ASGIApp(sio, other_asgi_app=http_app)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_nofile_limit()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(LISTEN_BACKLOG)
    announce(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=LISTEN_BACKLOG)
    uvicorn.Server(config).run(sockets=[sock])
