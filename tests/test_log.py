import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

NS = "/dashboard"
COOKIES = {"JWT_TOKEN_LOCATION": ["headers", "cookies"]}


def only(logs, name):
    [entry] = [entry for entry in logs if entry["event"] == name]
    return entry


def test_a_connection_is_logged(harness):
    with capture_logs() as logs:
        client = harness.client(harness.token("alice"))
        sid = harness.sid(client)
        client.disconnect(NS)
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("connect_attempt", "debug"), ("connected", "info"), ("disconnected", "info"),
    ]
    attempt, connected, disconnected = logs
    assert attempt["token_source"] == "auth" and attempt["sid"] == sid
    assert connected["user_id"] == "alice" and connected["sid"] == sid
    assert (disconnected["user_id"], disconnected["sid"]) == ("alice", sid)
    assert "remote_addr" in attempt and "reason" in disconnected


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        (lambda token: {"query_string": f"token={token}"}, "query_string"),
        (lambda token: {"headers": {"Authorization": f"Bearer {token}"}}, "header"),
        (lambda token: {"headers": {"Cookie": f"access_token_cookie={token}"}}, "cookie"),
    ],
)
def test_connect_attempt_names_the_token_source(make_app, kwargs, source):
    h = make_app(**COOKIES)
    with capture_logs() as logs:
        h.client(**kwargs(h.token()))
    assert only(logs, "connect_attempt")["token_source"] == source


def test_a_refusal_is_logged_with_its_reason(harness):
    with capture_logs() as logs:
        harness.client(harness.refresh_token())
    failed = only(logs, "auth_failed")
    assert (failed["log_level"], failed["reason"], failed["token_source"]) == ("warning", "wrong_token_type", "auth")
    assert not [entry for entry in logs if entry["event"] in ("connected", "disconnected")]


def test_a_missing_token_is_logged_without_an_attempt(harness):
    with capture_logs() as logs:
        harness.client()
    assert [entry["event"] for entry in logs] == ["auth_failed"]
    assert (logs[0]["reason"], logs[0]["token_source"]) == ("token_missing", None)


def test_emits_are_logged(harness):
    harness.client(harness.token())
    with capture_logs() as logs:
        with harness.app.app_context():
            now = harness.dashboard.emit_error("alice", "X", "m")
        with harness.app.test_request_context("/"):
            later = harness.dashboard.emit_error("alice", "X", "m")
        with pytest.raises(RuntimeError), harness.app.test_request_context("/"):
            lost = harness.dashboard.emit_error("alice", "X", "m")
            raise RuntimeError("failed")
    assert [(entry["event"], entry.get("deferred"), entry["event_id"]) for entry in logs] == [
        ("event_emitted", False, now["eventId"]),
        ("event_emitted", True, later["eventId"]),
        ("event_dropped", None, lost["eventId"]),
    ]
    assert all(entry["type"] == "dashboard:error" and entry["user_id"] == "alice" for entry in logs)


def test_no_token_is_ever_logged(make_app, mint):
    h = make_app(JWT_DECODE_LEEWAY=0, **COOKIES)
    good = h.token("alice")
    tokens = {
        "good": good,
        "refresh": h.refresh_token(),
        "expired": h.token(expires_delta=timedelta(seconds=-5)),
        "bad_signature": mint(key="another-secret-that-is-long-enough-for-hs256-and-hs512-0123456789abcdef"),
        "garbage": "this-is-not-a-jwt-but-still-a-secret",
    }
    with capture_logs() as logs:
        for token in tokens.values():
            h.client(token)
            h.client(query_string=f"token={token}")
            h.client(headers={"Authorization": f"Bearer {token}"})
            h.client(headers={"Authorization": f"Token {token}"})
            h.client(headers={"Cookie": f"access_token_cookie={token}"})
            h.client(headers={"Cookie": f"access_token_cookie={token}", "Origin": "https://evil.example"})
    assert {entry["event"] for entry in logs} >= {"connect_attempt", "connected", "auth_failed"}
    text = repr(logs)
    for name, token in tokens.items():
        assert token not in text, name
        for part in token.split("."):
            if len(part) > 16:
                assert part not in text, name


def test_importing_the_package_configures_no_logging():
    script = textwrap.dedent(
        """
        import logging, structlog
        root = logging.getLogger()
        before = (list(root.handlers), root.level, logging.getLogger("flask_dashboard_ws").handlers[:])
        import flask_dashboard_ws
        from flask_dashboard_ws.log import logger
        assert not structlog.is_configured(), "structlog was configured"
        after = (list(root.handlers), root.level, logging.getLogger("flask_dashboard_ws").handlers[:])
        assert before == after, (before, after)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
