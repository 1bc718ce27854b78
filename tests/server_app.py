"""A small dashboard app wired the way a real one would use flask-dashboard-ws.

``tests/serve.py`` runs it in its own process for the live-server tests; the tests also build it in their
own process, with the same config, to mint tokens (``create_access_token`` in ``app.app_context()``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from socket import IPPROTO_TCP, TCP_NODELAY
from typing import Any

from flask import Flask, jsonify, request
from flask_jwt_extended import JWTManager, get_jwt, get_jwt_identity, jwt_required
from flask_socketio import SocketIO
from marshmallow import ValidationError

from flask_dashboard_ws import DashboardRealtime, QueueUnavailable
from flask_dashboard_ws.rooms import user_room
from flask_dashboard_ws.sockets import queued

# Shared by the server process and the tests. 64 bytes: PyJWT warns about shorter HS512 keys.
JWT_SECRET = "flask-dashboard-ws live-server tests: not a secret, never use it 0123456789abcdef"


def tcp_peer_ports() -> list[int]:
    """The remote ports of this process's IPv4 TCP connections, from /proc: the clients it still holds a socket of."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sorted(int(row[2].rpartition(":")[2], 16) for row in rows if row[9] in inodes)


def create_app(async_mode: str | None, config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=JWT_SECRET, DASHBOARD_WS_ASYNC_MODE=async_mode)
    app.config.update(config or {})

    jwt = JWTManager(app)
    revoked_jtis: set[str] = set()

    @jwt.token_in_blocklist_loader
    def is_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
        # A token with a "slowCheck" claim makes this lookup wait that long, like a slow blocklist store.
        time.sleep(jwt_payload.get("slowCheck", 0))  # green under eventlet and gevent (tests/serve.py patches)
        return jwt_payload["jti"] in revoked_jtis

    # TEST_OWN_SOCKETIO: keyword arguments for a SocketIO(app, ...) that the app builds itself and hands over.
    own_socketio = app.config.get("TEST_OWN_SOCKETIO")
    socketio = None if own_socketio is None else SocketIO(app, async_mode=async_mode, **own_socketio)
    dashboard = DashboardRealtime(app, socketio)
    app.dashboard = dashboard  # type: ignore[attr-defined]  # for tests/serve.py --run

    @app.errorhandler(ValidationError)
    def invalid_event_payload(error: ValidationError) -> Any:
        return jsonify(error="ValidationError", messages=error.messages), 400

    @app.errorhandler(QueueUnavailable)
    def queue_unavailable(error: QueueUnavailable) -> Any:
        # How an app can tell its caller that an event sent at once did not go through the message queue.
        return jsonify(error="QueueUnavailable", message=str(error), event=error.envelope), 503

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(ok=True)  # touches neither the queue nor a token: shows that the server still serves

    @app.post("/api/logout")
    @jwt_required()
    def logout() -> Any:
        revoked_jtis.add(get_jwt()["jti"])
        if request.args.get("end_sockets"):
            dashboard.disconnect_user(get_jwt_identity(), "Signed out.")
        return jsonify(revoked=True)

    @app.post("/api/bursts")
    @jwt_required()
    def burst() -> Any:
        """``count`` error events of ``size`` characters at once, without yielding: a backlog for a slow reader.

        Each message starts with its index (8 digits), so that a test can check their order."""
        filler = "x" * max(0, int(request.args["size"]) - 8)
        for index in range(int(request.args["count"])):
            dashboard.emit_error(get_jwt_identity(), "BURST", f"{index:08d}{filler}", defer=False)
        return jsonify(sent=int(request.args["count"]))

    @app.post("/api/test/drain")
    def drain() -> Any:
        """What an operator's hook (or the SIGTERM handler) does: drain this process within ``timeout`` seconds."""
        return jsonify(dashboard.drain(float(request.args["timeout"])))

    @app.post("/api/test/blip")
    @jwt_required()
    def blip() -> Any:
        """A network blip for the caller's sockets: their transports close (no Socket.IO disconnect), as when a
        connection drops, and the official client reconnects by itself."""
        ext = app.extensions["dashboard_ws"]
        manager = ext.socketio.server.manager
        namespace = ext.settings.namespace
        sids = [sid for sid, _ in manager.get_participants(namespace, user_room(get_jwt_identity()))]
        closed = sum(ext.guard.close_for(manager.eio_sid_from_sid(sid, namespace), "server") for sid in sids)
        return jsonify(closed=closed)

    @app.get("/api/test/state")
    def state() -> Any:
        """What the process holds for its sockets, for the tests that look for leaks."""
        ext = app.extensions["dashboard_ws"]
        server = ext.socketio.server
        manager = server.manager
        return jsonify(
            connections=len(ext.connections),
            expiry=len(ext.expiry),
            pending=ext.guard.pending,
            sessions=sum(1 for socket in list(server.eio.sockets.values()) if not socket.closed),
            held=len(server.eio.sockets),  # sessions engine.io holds, closed or not
            tcp_peers=tcp_peer_ports(),
            environ=len(server.environ),
            sockets={namespace: len(manager.rooms[namespace].get(None, ())) for namespace in list(manager.rooms)},
            user_rooms=sum(1 for namespace in list(manager.rooms) for room in list(manager.rooms[namespace])
                           if isinstance(room, str) and room.startswith("user:")),
            limited=dict(ext.guard.counts),
            queues=sum(1 for socket in list(server.eio.sockets.values()) if queued(socket) is not None),
            no_delay=[socket._raw.getsockopt(IPPROTO_TCP, TCP_NODELAY) for socket in list(server.eio.sockets.values())
                      if getattr(socket, "_raw", None) is not None],
        )

    @app.post("/api/mocs")
    @jwt_required()
    def add_moc() -> Any:
        # Deferred (the default in a request): sent once this request has succeeded.
        event = dashboard.emit_recent_moc_added(get_jwt_identity(), _new_moc(request.get_json()))
        return jsonify(event=event), 201

    @app.post("/api/mocs/failing")
    @jwt_required()
    def add_moc_then_fail() -> Any:
        dashboard.emit_recent_moc_added(get_jwt_identity(), _new_moc(request.get_json()))
        raise RuntimeError("the write failed after the event was queued")

    @app.post("/api/imports")
    @jwt_required()
    def import_parts() -> Any:
        # Progress is worth showing even if the import fails later, so it is sent at once.
        event = dashboard.emit_partial_parts_updated(get_jwt_identity(), request.get_json(), defer=False)
        if request.args.get("fail"):
            raise RuntimeError("the import failed after its progress was sent")
        return jsonify(event=event), 202

    @app.put("/api/dashboard/summary")
    @jwt_required()
    def update_summary() -> Any:
        return jsonify(event=dashboard.emit_summary_updated(get_jwt_identity(), request.get_json()))

    @app.put("/api/dashboard/partial-parts")
    @jwt_required()
    def update_partial_parts() -> Any:
        return jsonify(event=dashboard.emit_partial_parts_updated(get_jwt_identity(), request.get_json()))

    @app.put("/api/dashboard/theme-breakdown")
    @jwt_required()
    def update_theme_breakdown() -> Any:
        return jsonify(event=dashboard.emit_theme_breakdown_updated(get_jwt_identity(), request.get_json()))

    @app.post("/api/dashboard/errors")
    @jwt_required()
    def report_error() -> Any:
        body = request.get_json()
        return jsonify(event=dashboard.emit_error(get_jwt_identity(), body["code"], body["message"]))

    return app


def app_from_env() -> Flask:
    """The app for ``flask --app tests.server_app:app_from_env``: config from ``DASHBOARD_WS_TEST_CONFIG``
    (JSON), async mode from ``DASHBOARD_WS_TEST_ASYNC_MODE`` (unset: Flask-SocketIO's choice)."""
    config = json.loads(os.environ.get("DASHBOARD_WS_TEST_CONFIG", "{}"))
    return create_app(os.environ.get("DASHBOARD_WS_TEST_ASYNC_MODE") or None, config)


def _new_moc(fields: dict[str, Any]) -> dict[str, Any]:
    """What a create view would store: the client's fields plus a server-assigned id and creation time."""
    return {**fields, "id": uuid.uuid4(), "created_at": datetime.now(timezone.utc)}
