"""Microbenchmark: the per-event cost inside the server, the extension against the naive per-emit Schema.

    /work/venv/bin/python -m pytest bench/micro -c bench/micro/pytest.ini --benchmark-only

Each benchmark builds the view's input (a new MOC: uuid4, now) and then:
- ``envelope``: validates the payload and builds the envelope (extension: ``wire_payload`` + ``make_envelope``
  with its module-level schemas; naive: an ``EnvelopeSchema()`` built, loaded and dumped per emit);
- ``encode``: the same plus the Socket.IO packet encoding that python-socketio does once per emit (JSON);
- ``emit``: the whole call from a view (``dashboard.emit_recent_moc_added(..., defer=False)`` against
  ``socketio.emit(...)``), through Flask-SocketIO into python-socketio, to a user with no socket: all the
  per-event work except the per-socket writes. The namespace holds one unrelated dummy session, so the
  packet is encoded as it would be with connected users.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime, timezone

import pytest

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

from flask import Flask  # noqa: E402
from flask_jwt_extended import JWTManager  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402
from socketio import packet  # noqa: E402

from baselines.naive_schemas import build_envelope, new_moc  # noqa: E402
from common import EVENT, JWT_SECRET, NAMESPACE  # noqa: E402
from flask_dashboard_ws import DashboardRealtime, EventType  # noqa: E402
from flask_dashboard_ws.envelope import make_envelope  # noqa: E402
from flask_dashboard_ws.events import wire_payload  # noqa: E402

KIND = EventType.RECENT_MOC_ADDED
TITLE = "bench:1700000000000.000"


def ext_moc() -> dict:
    return {"id": uuid.uuid4(), "title": TITLE, "theme": "Bench", "build_status": "ADDED",
            "cover_image_url": None, "created_at": datetime.now(timezone.utc)}


def encode(event: str, envelope: dict) -> str:
    return packet.Packet(packet.EVENT, namespace=NAMESPACE, data=[event, envelope]).encode()


@pytest.fixture(scope="module")
def ext_app():
    app = Flask("bench_ext")
    app.config.update(JWT_SECRET_KEY=JWT_SECRET, DASHBOARD_WS_ASYNC_MODE="threading")
    JWTManager(app)
    dashboard = DashboardRealtime(app)
    dashboard.socketio.server.manager.connect("dummy-eio-sid", NAMESPACE)
    import structlog, logging  # noqa: E401
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    with app.app_context():
        yield dashboard
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def naive_socketio():
    app = Flask("bench_naive")
    socketio = SocketIO(app, async_mode="threading")
    socketio.server.manager.connect("dummy-eio-sid", NAMESPACE)
    with app.app_context():
        yield socketio


def test_ext_envelope(benchmark):
    benchmark(lambda: make_envelope(KIND, wire_payload(KIND, ext_moc())))


def test_naive_envelope(benchmark):
    benchmark(lambda: build_envelope(EVENT, new_moc(TITLE)))


def test_ext_encode(benchmark):
    benchmark(lambda: encode(EVENT, make_envelope(KIND, wire_payload(KIND, ext_moc()))))


def test_naive_encode(benchmark):
    benchmark(lambda: encode(EVENT, build_envelope(EVENT, new_moc(TITLE))))


def test_ext_emit(benchmark, ext_app):
    benchmark(lambda: ext_app.emit_recent_moc_added("u1", ext_moc(), defer=False))


def test_naive_emit(benchmark, naive_socketio):
    benchmark(lambda: naive_socketio.emit(EVENT, build_envelope(EVENT, new_moc(TITLE)), to="user:u1", namespace=NAMESPACE))


def test_input_only(benchmark):
    """The view's own input building, included in every figure above (subtract it for the server's share)."""
    benchmark(ext_moc)
