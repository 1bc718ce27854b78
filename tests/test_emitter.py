import pytest
from flask import g
from marshmallow import ValidationError
from structlog.testing import capture_logs

from flask_dashboard_ws import UnknownEventType
from flask_dashboard_ws.envelope import EventTooLarge

THEMES = [{"theme": "Castle", "mocCount": 2, "setCount": 1}]


def events(logs, name):
    return [entry for entry in logs if entry["event"] == name]


@pytest.fixture
def alice(harness):
    return harness.client(harness.token("alice"))


def test_outside_a_request_the_event_is_sent_at_once(harness, alice):
    with capture_logs() as logs, harness.app.app_context():
        envelope = harness.dashboard.emit_error("alice", "X", "m")
        assert harness.received(alice) == [("dashboard:error", envelope)]  # before the context ends
    [emitted] = events(logs, "event_emitted")
    assert emitted["deferred"] is False
    assert emitted["event_id"] == envelope["eventId"] and emitted["user_id"] == "alice"


def test_inside_a_request_events_wait_for_the_teardown_and_keep_their_order(harness, alice):
    during_view = []

    @harness.app.post("/mocs")
    def add_moc():
        first = harness.dashboard.emit_theme_breakdown_updated("alice", THEMES)
        second = harness.dashboard.emit_error("alice", "X", "m")
        third = harness.dashboard.emit_theme_breakdown_updated("alice", [])
        during_view.extend(harness.received(alice))
        return {"ids": [first["eventId"], second["eventId"], third["eventId"]]}

    with capture_logs() as logs:
        response = harness.app.test_client().post("/mocs")

    assert response.status_code == 200
    assert during_view == []
    assert [envelope["eventId"] for _, envelope in harness.received(alice)] == response.json["ids"]
    emitted = events(logs, "event_emitted")
    assert [entry["event_id"] for entry in emitted] == response.json["ids"]
    assert all(entry["deferred"] is True for entry in emitted)


def test_a_test_request_context_sends_on_exit(harness, alice):
    with harness.app.test_request_context("/"):
        envelope = harness.dashboard.emit_error("alice", "X", "m")
        assert harness.received(alice) == []
    assert harness.received(alice) == [("dashboard:error", envelope)]


@pytest.mark.parametrize("propagate", [True, False])
def test_events_are_dropped_when_the_view_raises(make_app, propagate):
    h = make_app(PROPAGATE_EXCEPTIONS=propagate)
    alice = h.client(h.token("alice"))

    @h.app.post("/mocs")
    def add_moc():
        h.dashboard.emit_error("alice", "X", "m")
        h.dashboard.emit_theme_breakdown_updated("alice", THEMES)
        raise RuntimeError("database write failed")

    with capture_logs() as logs:
        if propagate:
            with pytest.raises(RuntimeError):
                h.app.test_client().post("/mocs")
        else:
            assert h.app.test_client().post("/mocs").status_code == 500

    assert h.received(alice) == []
    assert events(logs, "event_emitted") == []
    dropped = events(logs, "event_dropped")
    assert [(entry["type"], entry["reason"], entry["error"], entry["log_level"]) for entry in dropped] == [
        ("dashboard:error", "request_failed", "RuntimeError", "warning"),
        ("dashboard:themeBreakdownUpdated", "request_failed", "RuntimeError", "warning"),
    ]


def test_the_next_request_starts_with_an_empty_queue(harness, alice):
    calls = iter([True, False])

    @harness.app.post("/mocs")
    def add_moc():
        if next(calls):
            harness.dashboard.emit_error("alice", "X", "first")
            raise RuntimeError("failed")
        return "ok"

    with pytest.raises(RuntimeError):
        harness.app.test_client().post("/mocs")
    assert harness.app.test_client().post("/mocs").status_code == 200
    assert harness.received(alice) == []


def test_defer_false_sends_at_once_inside_a_request(harness, alice):
    with harness.app.test_request_context("/"):
        envelope = harness.dashboard.emit_error("alice", "X", "m", defer=False)
        assert harness.received(alice) == [("dashboard:error", envelope)]
    assert harness.received(alice) == []  # not sent a second time


def test_defer_false_is_sent_even_if_the_view_then_fails(harness, alice):
    with pytest.raises(RuntimeError), harness.app.test_request_context("/"):
        harness.dashboard.emit_error("alice", "X", "m", defer=False)
        raise RuntimeError("failed")
    assert len(harness.received(alice)) == 1


def test_config_can_turn_deferring_off(make_app):
    h = make_app(DASHBOARD_WS_DEFER_IN_REQUEST=False)
    alice = h.client(h.token("alice"))
    with capture_logs() as logs, h.app.test_request_context("/"):
        envelope = h.dashboard.emit_error("alice", "X", "m")
        assert h.received(alice) == [("dashboard:error", envelope)]
    assert [entry["deferred"] for entry in events(logs, "event_emitted")] == [False]


def test_defer_true_overrides_the_config(make_app):
    h = make_app(DASHBOARD_WS_DEFER_IN_REQUEST=False)
    alice = h.client(h.token("alice"))
    with h.app.test_request_context("/"):
        h.dashboard.emit_error("alice", "X", "m", defer=True)
        assert h.received(alice) == []
    assert len(h.received(alice)) == 1


def test_defer_true_outside_a_request_sends_at_once(harness, alice):
    with harness.app.app_context():
        harness.dashboard.emit_error("alice", "X", "m", defer=True)
        assert len(harness.received(alice)) == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda d: d.emit_error("alice", "", "empty code"), ValidationError),
        (lambda d: d.emit_theme_breakdown_updated("alice", [{"theme": "Castle", "mocCount": -1, "setCount": 0}]),
         ValidationError),
        (lambda d: d.emit_to_user("alice", "dashboard:nope", {}), UnknownEventType),
        (lambda d: d.emit_error("", "X", "m"), ValueError),
        (lambda d: d.emit_error(None, "X", "m"), ValueError),
    ],
)
@pytest.mark.parametrize("in_request", [True, False])
def test_a_bad_call_raises_at_once_and_sends_nothing(harness, alice, call, error, in_request):
    context = harness.app.test_request_context("/") if in_request else harness.app.app_context()
    with capture_logs() as logs, context:
        with pytest.raises(error):
            call(harness.dashboard)
        assert not g.get("_dashboard_ws_pending")
    assert harness.received(alice) == []
    assert events(logs, "event_emitted") == events(logs, "event_dropped") == []


def test_a_bad_event_does_not_drop_the_good_ones_queued_before_it(harness, alice):
    with harness.app.test_request_context("/"):
        good = harness.dashboard.emit_error("alice", "X", "m")
        with pytest.raises(ValidationError):
            harness.dashboard.emit_error("alice", "", "m")
    assert harness.received(alice) == [("dashboard:error", good)]


def test_a_send_failure_in_teardown_is_logged_and_does_not_break_the_response(harness, alice, monkeypatch):
    real_emit = harness.socketio.emit
    attempts = []

    def flaky_emit(*args, **kwargs):
        attempts.append(args[0])
        if len(attempts) == 1:
            raise ConnectionError("message queue unreachable")
        return real_emit(*args, **kwargs)

    monkeypatch.setattr(harness.socketio, "emit", flaky_emit)

    @harness.app.post("/mocs")
    def add_moc():
        harness.dashboard.emit_error("alice", "X", "lost")
        return {"kept": harness.dashboard.emit_error("alice", "X", "kept")}

    with capture_logs() as logs:
        response = harness.app.test_client().post("/mocs")

    assert response.status_code == 200
    assert harness.received(alice) == [("dashboard:error", response.json["kept"])]
    [dropped] = events(logs, "event_dropped")
    assert (dropped["reason"], dropped["error"], dropped["user_id"]) == ("send_failed", "ConnectionError", "alice")
    assert [entry["event_id"] for entry in events(logs, "event_emitted")] == [response.json["kept"]["eventId"]]


def test_an_integer_user_id_reaches_the_string_room(make_app, mint):
    h = make_app(JWT_IDENTITY_CLAIM="uid")
    client = h.client(mint(uid=42))
    with capture_logs() as logs, h.app.app_context():
        envelope = h.dashboard.emit_error(42, "X", "m")
    assert h.received(client) == [("dashboard:error", envelope)]
    assert events(logs, "event_emitted")[0]["user_id"] == "42"


def test_an_event_over_the_size_limit_is_refused_naming_the_limit_and_nothing_is_sent(make_app):
    h = make_app(DASHBOARD_WS_MAX_EVENT_BYTES=2048)
    client = h.client(h.token("alice"))
    with capture_logs() as logs, h.app.app_context():
        with pytest.raises(EventTooLarge, match=r"over DASHBOARD_WS_MAX_EVENT_BYTES \(2048 bytes\)") as raised:
            h.dashboard.emit_error("alice", "BIG", "x" * 2048)
        assert isinstance(raised.value, ValidationError)  # caught by the app's ValidationError handlers too
        envelope = h.dashboard.emit_error("alice", "SMALL", "x" * 1800)  # under the limit, enveloped
    assert h.received(client) == [("dashboard:error", envelope)]
    assert [entry["event_id"] for entry in events(logs, "event_emitted")] == [envelope["eventId"]]


def test_the_size_counts_non_ascii_as_sent_escaped(make_app):
    h = make_app(DASHBOARD_WS_MAX_EVENT_BYTES=2048)
    with h.app.app_context(), pytest.raises(EventTooLarge):
        h.dashboard.emit_error("alice", "WIDE", "é" * 400)  # 400 characters, 2,400 bytes as \u00e9 escapes
