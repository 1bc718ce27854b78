import uuid

import pytest
from flask import Flask
from flask_jwt_extended import JWTManager
from flask_socketio import SocketIO

from flask_dashboard_ws import DashboardRealtime, EnvelopeSchema, EventType

NS = "/dashboard"
MOC_ID = str(uuid.uuid4())
WHEN_Z = "2025-11-30T12:34:56.789Z"
SUMMARY = {"totalMocs": 1, "totalWishlistItems": 2, "mocsByBuildStatus": {"ADDED": 1, "IN_PROGRESS": 0, "BUILT": 0},
           "mocsByCoverageStatus": {"FULL_INVENTORY": 0, "PARTIAL_ORDERED": 0, "NONE": 1}}
RECENT = {"id": MOC_ID, "title": "Castle", "theme": "Castle", "buildStatus": "ADDED", "coverImageUrl": "/c.png",
          "createdAt": WHEN_Z}
PARTIAL = {"id": MOC_ID, "title": "Castle", "theme": "Castle", "buildStatus": "BUILT", "coveragePercentage": 12.5,
           "lastUpdatedAt": WHEN_Z}
THEME = {"theme": "Castle", "mocCount": 1, "setCount": 3}


def test_dashboard_realtime_app_form():
    app = Flask("direct")
    app.config.update(JWT_SECRET_KEY="x" * 64, DASHBOARD_WS_ASYNC_MODE="threading")
    JWTManager(app)
    dashboard = DashboardRealtime(app)
    state = app.extensions["dashboard_ws"]
    assert isinstance(state.socketio, SocketIO)
    assert app.extensions["socketio"] is state.socketio
    assert state.socketio.async_mode == "threading"
    assert dashboard.socketio is state.socketio


def test_factory_pattern_keeps_each_apps_socketio(make_app):
    dashboard = DashboardRealtime()
    first = make_app(dashboard=dashboard)
    second = make_app(dashboard=dashboard)
    assert first.socketio is not second.socketio
    alice_first = first.client(first.token("alice"))
    alice_second = second.client(second.token("alice"))

    with first.app.app_context():
        assert dashboard.socketio is first.socketio
        on_first = dashboard.emit_error("alice", "FIRST", "m")
    with second.app.app_context():
        assert dashboard.socketio is second.socketio
        on_second = dashboard.emit_error("alice", "SECOND", "m")

    assert first.received(alice_first) == [("dashboard:error", on_first)]
    assert second.received(alice_second) == [("dashboard:error", on_second)]


def test_outside_an_app_context_socketio_is_the_last_apps(make_app):
    dashboard = DashboardRealtime()
    with pytest.raises(RuntimeError, match="init_app"):
        dashboard.socketio  # noqa: B018
    make_app(dashboard=dashboard)
    last = make_app(dashboard=dashboard)
    assert dashboard.socketio is last.socketio


def test_an_app_supplied_socketio_is_used(make_app):
    socketio = SocketIO(async_mode="threading")
    h = make_app(socketio=socketio)
    assert h.socketio is socketio
    assert h.app.extensions["socketio"] is socketio
    with h.app.app_context():
        assert h.dashboard.socketio is socketio
    client = socketio.test_client(h.app, namespace=NS, auth={"token": h.token()})
    with h.app.app_context():
        envelope = h.dashboard.emit_error("alice", "X", "m")
    assert h.received(client) == [("dashboard:error", envelope)]


def test_an_app_supplied_socketio_passed_to_the_constructor(make_app):
    socketio = SocketIO(async_mode="threading")
    h = make_app(dashboard=DashboardRealtime(socketio=socketio))
    assert h.socketio is socketio


def test_an_uninitialised_socketio_keeps_its_own_constructor_kwargs(make_app):
    socketio = SocketIO(async_mode="threading", cors_allowed_origins="https://own.example.com")
    h = make_app(socketio=socketio, DASHBOARD_WS_CORS_ALLOWED_ORIGINS=["https://config.example.com"],
                 DASHBOARD_WS_ASYNC_MODE="eventlet", DASHBOARD_WS_SOCKETIO_OPTIONS={"ping_interval": 7})
    assert socketio.server.async_mode == "threading"
    assert socketio.server.eio.cors_allowed_origins == "https://own.example.com"
    assert socketio.server.eio.ping_interval == 7  # a default the app did not set itself is still applied
    assert h.state.cookie_origins() == ["https://own.example.com"]


def test_an_uninitialised_socketio_gets_the_dashboard_defaults(make_app):
    socketio = SocketIO()
    make_app(socketio=socketio, DASHBOARD_WS_CORS_ALLOWED_ORIGINS="https://config.example.com")
    assert socketio.server.async_mode == "threading"
    assert socketio.server.eio.cors_allowed_origins == ["https://config.example.com"]


def test_an_initialised_socketio_is_used_as_it_is():
    app = Flask("own")
    app.config.update(JWT_SECRET_KEY="x" * 64, DASHBOARD_WS_CORS_ALLOWED_ORIGINS="https://config.example.com")
    JWTManager(app)
    socketio = SocketIO(app, async_mode="threading", cors_allowed_origins="*")
    DashboardRealtime(app, socketio)
    assert app.extensions["dashboard_ws"].socketio is socketio
    assert socketio.server.eio.cors_allowed_origins == "*"
    assert NS in socketio.server.namespace_handlers


def test_emit_outside_an_app_context_raises(harness):
    with pytest.raises(RuntimeError, match="app context"):
        harness.dashboard.emit_error("alice", "X", "m")


def test_emit_on_an_app_without_init_app_raises(harness):
    other = Flask("other")
    other.config["JWT_SECRET_KEY"] = "x" * 64
    JWTManager(other)
    with other.app_context(), pytest.raises(RuntimeError, match=r"init_app\(app\) was not called"):
        harness.dashboard.emit_error("alice", "X", "m")


@pytest.mark.parametrize(
    ("method", "args", "kind", "payload"),
    [
        ("emit_summary_updated", (SUMMARY,), EventType.SUMMARY_UPDATED, SUMMARY),
        ("emit_recent_moc_added", (RECENT,), EventType.RECENT_MOC_ADDED, RECENT),
        ("emit_partial_parts_updated", ([PARTIAL],), EventType.PARTIAL_PARTS_UPDATED, [PARTIAL]),
        ("emit_theme_breakdown_updated", ([THEME],), EventType.THEME_BREAKDOWN_UPDATED, [THEME]),
        ("emit_error", ("SYNC_FAILED", "Sync failed."), EventType.ERROR, {"code": "SYNC_FAILED", "message": "Sync failed."}),
        ("emit_to_user", ("dashboard:themeBreakdownUpdated", []), EventType.THEME_BREAKDOWN_UPDATED, []),
        ("emit_to_user", (EventType.ERROR, {"code": "C", "message": ""}), EventType.ERROR, {"code": "C", "message": ""}),
    ],
)
def test_every_emit_returns_the_envelope_the_client_receives(harness, method, args, kind, payload):
    client = harness.client(harness.token("alice"))
    with harness.app.app_context():
        envelope = getattr(harness.dashboard, method)("alice", *args)
    assert harness.received(client) == [(kind.value, envelope)]
    assert envelope["type"] == kind.value and envelope["payload"] == payload
    assert EnvelopeSchema().validate(envelope) == {}


def test_emits_to_a_user_without_sockets_go_nowhere(harness):
    bob = harness.client(harness.token("bob"))
    with harness.app.app_context():
        harness.dashboard.emit_error("alice", "X", "m")
    assert harness.received(bob) == []


def test_disconnect_user_tells_then_disconnects_every_socket_of_that_user_only(harness):
    alice_tabs = [harness.client(harness.token("alice")), harness.client(harness.token("alice"))]
    bob = harness.client(harness.token("bob"))
    with harness.app.app_context():
        envelope = harness.dashboard.disconnect_user("alice", "Signed out.")
    assert envelope["payload"] == {"code": "SESSION_ENDED", "message": "Signed out."}
    # The test client keeps no packets once disconnected; the live test checks that the event came first.
    assert not any(tab.is_connected(NS) for tab in alice_tabs)
    assert harness.room("user:alice") == set() and harness.state.connections.keys() == {harness.sid(bob)}
    assert bob.is_connected(NS) and harness.received(bob) == []


def test_the_sockets_of_a_user_are_capped_per_process(make_app):
    h = make_app(DASHBOARD_WS_MAX_SOCKETS_PER_USER=2)
    first, second = h.client(h.token("alice")), h.client(h.token("alice"))
    third = h.client(h.token("alice"))
    assert first.is_connected(NS) and second.is_connected(NS) and not third.is_connected(NS)
    assert h.client(h.token("bob")).is_connected(NS)  # the cap is per user
    first.disconnect(namespace=NS)
    assert h.client(h.token("alice")).is_connected(NS)
