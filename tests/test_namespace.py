import pytest
from structlog.testing import capture_logs

from flask_dashboard_ws.auth import Identity

NS = "/dashboard"
FAR_FUTURE = 4_102_444_800  # 2100-01-01: an exp claim that the real clock never reaches
ERROR = {"code": "X", "message": "m"}


def emit_error(h, user_id):
    with h.app.app_context():
        return h.dashboard.emit_error(user_id, ERROR["code"], ERROR["message"])


def test_connect_joins_the_users_room_and_records_the_connection(harness, mint):
    token = mint(exp=FAR_FUTURE)
    client = harness.client(token)
    sid = harness.sid(client)
    assert client.is_connected(NS)
    assert harness.room("user:alice") == {sid}
    assert harness.user_rooms() == {"user:alice"}
    assert harness.state.connections == {sid: Identity(user_id="alice", expires_at=FAR_FUTURE)}
    assert len(harness.started) == 1  # the expiry watcher was started for the token


def test_events_reach_every_socket_of_the_user_and_nobody_else(harness):
    tabs = [harness.client(harness.token("alice")), harness.client(harness.token("alice"))]
    other = harness.client(harness.token("bob"))
    envelope = emit_error(harness, "alice")
    for tab in tabs:
        assert harness.received(tab) == [("dashboard:error", envelope)]
    assert harness.received(other) == []


def test_a_refused_connection_joins_nothing(harness):
    client = harness.client("not-a-token")
    assert not client.is_connected(NS)
    assert harness.sid(client) is None
    assert harness.user_rooms() == set()
    assert harness.state.connections == {}
    assert harness.started == []


def test_a_refused_connection_receives_nothing(harness):
    good = harness.client(harness.token())
    bad = harness.client("not-a-token")
    emit_error(harness, "alice")
    assert [packet["name"] for packet in bad.queue] == []
    assert len(harness.received(good)) == 1


def test_disconnect_forgets_the_connection_and_leaves_the_room(harness):
    staying = harness.client(harness.token())
    leaving = harness.client(harness.token())
    leaving_sid = harness.sid(leaving)
    leaving.disconnect(NS)
    assert leaving_sid not in harness.state.connections
    assert harness.room("user:alice") == {harness.sid(staying)}
    emit_error(harness, "alice")
    assert len(harness.received(staying)) == 1


def test_the_last_disconnect_empties_the_room(harness):
    client = harness.client(harness.token())
    client.disconnect(NS)
    assert harness.state.connections == {}
    assert harness.user_rooms() == set()


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("join", ("user:bob",)),
        ("join_room", ({"room": "user:bob"},)),
        ("leave", ("user:alice",)),
        ("emit", ("dashboard:error", {"to": "user:bob"})),
        ("message", ("hello",)),
        ("dashboard:error", ({"code": "X", "message": "m"},)),
        ("connect", ("x", {"token": "BOB"})),
        ("disconnect", ("client namespace disconnect",)),
        ("disconnect", ()),
    ],
)
def test_client_events_are_ignored(harness, event, args):
    client = harness.client(harness.token("alice"))
    harness.client(harness.token("bob"))
    before_rooms = {room: harness.room(room) for room in harness.user_rooms()}
    before_connections = dict(harness.state.connections)
    # a valid token of another user, to show a "connect" event cannot join that user's room
    args = tuple({"token": harness.token("bob")} if arg == {"token": "BOB"} else arg for arg in args)

    with capture_logs() as logs:
        ack = client.emit(event, *args, namespace=NS, callback=True)

    assert ack is None  # not even an empty acknowledgement
    assert client.is_connected(NS)
    assert harness.received(client) == []
    assert {room: harness.room(room) for room in harness.user_rooms()} == before_rooms
    assert harness.state.connections == before_connections
    assert [(entry["event"], entry["log_level"], entry["event_name"]) for entry in logs] == [
        ("client_event_ignored", "debug", event)
    ]
    assert logs[0]["sid"] == harness.sid(client) and logs[0]["namespace"] == NS


def test_a_disconnect_event_does_not_dodge_expiry(harness):
    client = harness.client(harness.token())
    sid = harness.sid(client)
    client.emit("disconnect", namespace=NS)
    harness.state.end_expired(sid, harness.state.connections[sid].expires_at)
    assert not client.is_connected(NS)
    assert harness.state.connections == {}


def test_a_client_event_without_a_callback_is_ignored_too(harness):
    client = harness.client(harness.token())
    with capture_logs() as logs:
        assert client.emit("join", "user:bob", namespace=NS) is None
    assert harness.user_rooms() == {"user:alice"}
    assert [entry["event"] for entry in logs] == ["client_event_ignored"]


def test_a_socket_that_closes_while_it_joins_or_recovers_is_not_kept(make_app, monkeypatch):
    """The room join (the queue's subscription) and recovery's resume wait on Redis: a tab that goes away meanwhile
    must leave nothing behind, as one that goes away while its token is checked."""
    h = make_app(DASHBOARD_WS_RECOVERY=True)
    server, recovery = h.socketio.server, h.state.recovery
    resume = recovery.connected

    def closed_meanwhile(sid, room, auth):
        recovered = resume(sid, room, auth)
        server._handle_eio_disconnect(server.manager.eio_sid_from_sid(sid, "/dashboard"), "transport close")
        return recovered

    monkeypatch.setattr(recovery, "connected", closed_meanwhile)
    with capture_logs() as logs:
        client = h.client(h.token())
    assert not client.is_connected("/dashboard")
    assert [line["event"] for line in logs if line["event"].startswith("connect")][-1] == "connect_abandoned"
    assert h.room("user:alice") == set() and h.state.connections == {}
    assert recovery._pids == {} and recovery._rooms == {} and recovery._held == {}
