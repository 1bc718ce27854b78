import json
import logging
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
import socketio
import structlog
from structlog.testing import capture_logs
from werkzeug.test import Client

from flask_dashboard_ws.log import REDACTED, RedactTokens, redact, redact_library_loggers
from tests.test_auth import connect_by_polling, cookie

NS = "/dashboard"
COOKIES = {"JWT_TOKEN_LOCATION": ["headers", "cookies"]}
# engine.io's watcher task is off, so that no thread outlives the test (see connect_by_polling).
LIBRARY_LOGS = {"logger": True, "engineio_logger": True, "monitor_clients": False}
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


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


# --- python-socketio's and python-engineio's own loggers ------------------------------------------------------

def private_logger():
    """A logger of this test's own, so that no filter it gets stays on a logger that other tests use."""
    return logging.getLogger(f"tests.library.{uuid.uuid4().hex}")


def test_library_loggers_never_show_a_token(make_app, caplog):
    h = make_app(DASHBOARD_WS_SOCKETIO_OPTIONS=LIBRARY_LOGS, **COOKIES)
    redact_library_loggers(h.socketio.server)
    # Every server shares one logger per library, whose level the process's first server set.
    caplog.set_level(logging.INFO, logger="engineio.server")
    caplog.set_level(logging.INFO, logger="socketio.server")
    token = h.token()
    assert connect_by_polling(h, auth={"token": token}) == (200, "alice")
    assert connect_by_polling(h, query_string=f"&token={token}") == (200, "alice")
    assert connect_by_polling(h, {"Authorization": f"Bearer {token}"}) == (200, "alice")
    assert connect_by_polling(h, {"Origin": "http://localhost", **cookie(token)}) == (200, "alice")
    assert h.client(token).is_connected(NS)  # the Socket.IO test client, which skips engine.io's packet log
    assert token not in caplog.text
    for part in token.split("."):
        assert part not in caplog.text
    assert all(token not in repr(record.args) for record in caplog.records)
    # The rest of each line is still there.
    assert f'Received packet MESSAGE data 0{NS},{{"token": "{REDACTED}"}}' in caplog.text
    assert f"is entering room user:alice [{NS}]" in caplog.text


def test_engineio_logs_a_connect_packets_token_unless_filtered(caplog):
    # A bare python-socketio server: what the filter is for, whether or not init_app has added it already.
    engineio_logger = private_logger()
    server = socketio.Server(async_mode="threading", engineio_logger=engineio_logger, monitor_clients=False)
    server.on("connect", lambda sid, environ, auth: True, namespace=NS)
    http = Client(socketio.WSGIApp(server))
    caplog.set_level(logging.INFO, logger=engineio_logger.name)

    def connect_and_close():
        opened = http.get("/socket.io/?EIO=4&transport=polling")
        url = f"/socket.io/?EIO=4&transport=polling&sid={json.loads(opened.get_data(as_text=True)[1:])['sid']}"
        http.post(url, data=f'40{NS},{{"token":"{JWT}"}}')
        http.post(url, data="1")

    connect_and_close()
    assert f'Received packet MESSAGE data 0{NS},{{"token":"{JWT}"}}' in caplog.text
    caplog.clear()
    redact_library_loggers(server)
    connect_and_close()
    assert JWT not in caplog.text
    assert f'Received packet MESSAGE data 0{NS},{{"token":"{REDACTED}"}}' in caplog.text


def test_the_shared_loggers_get_the_filter_once(make_app):
    for _ in range(2):
        h = make_app(DASHBOARD_WS_SOCKETIO_OPTIONS=LIBRARY_LOGS)
        redact_library_loggers(h.socketio.server)
        redact_library_loggers(h.socketio.server)
    for name in ("engineio.server", "socketio.server"):
        assert [type(f) for f in logging.getLogger(name).filters].count(RedactTokens) == 1


def test_an_adapter_is_filtered_through_its_logger_and_another_kind_of_logger_is_left_alone(make_app):
    adapted = private_logger()
    options = {"engineio_logger": logging.LoggerAdapter(adapted, {}), "logger": structlog.get_logger("tests")}
    h = make_app(DASHBOARD_WS_SOCKETIO_OPTIONS=options)
    redact_library_loggers(h.socketio.server)
    assert [type(f) for f in adapted.filters] == [RedactTokens]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('0/dashboard,{"token":"opaque-secret"}', f'0/dashboard,{{"token":"{REDACTED}"}}'),
        ('0/dashboard,{"token": "a\\"b", "n": 1}', f'0/dashboard,{{"token": "{REDACTED}", "n": 1}}'),
        ("{'access_token': 'opaque-secret', 'n': 1}", f"{{'access_token': '{REDACTED}', 'n': 1}}"),
        ("GET /socket.io/?EIO=4&token=opaque-secret&transport=websocket HTTP/1.1",
         f"GET /socket.io/?EIO=4&token={REDACTED}&transport=websocket HTTP/1.1"),
        ("Authorization: Bearer opaque-secret", f"Authorization: {REDACTED}"),
        ("{'HTTP_AUTHORIZATION': 'Bearer opaque-secret', 'HTTP_HOST': 'localhost'}",
         f"{{'HTTP_AUTHORIZATION': '{REDACTED}', 'HTTP_HOST': 'localhost'}}"),
        ("[('Cookie', 'theme=dark; access_token_cookie=opaque-secret'), ('Host', 'localhost')]",
         f"[('Cookie', '{REDACTED}'), ('Host', 'localhost')]"),
        ("session_jwt=" + JWT + "; theme=dark", f"session_jwt={REDACTED}; theme=dark"),
        (f"sent {JWT} back", f"sent {REDACTED} back"),
        ("alg none: eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", f"alg none: {REDACTED}"),
        # Nothing to hide.
        ('0/dashboard,{"sid":"2Y0WS4sAZspZefIEAAAB"}', '0/dashboard,{"sid":"2Y0WS4sAZspZefIEAAAB"}'),
        ("https://evil.example is not an accepted origin.", "https://evil.example is not an accepted origin."),
        ('0/dashboard,{"token": 5}', '0/dashboard,{"token": 5}'),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def record(msg, *args, exc_info=None):
    return logging.LogRecord("engineio.server", logging.INFO, __file__, 1, msg, args, exc_info)


def test_a_record_with_a_token_gets_its_formatted_message_and_no_arguments():
    line = record("%s: Received packet %s data %s", "sid1", "MESSAGE", f'0/dashboard,{{"token":"{JWT}"}}')
    assert RedactTokens().filter(line) is True
    assert (line.msg, line.args) == (f'sid1: Received packet MESSAGE data 0/dashboard,{{"token":"{REDACTED}"}}', ())


def test_a_record_without_a_token_keeps_its_template_and_arguments():
    line = record("%s is entering room %s [%s]", "sid1", "user:alice", NS)
    assert RedactTokens().filter(line) is True
    assert (line.msg, line.args) == ("%s is entering room %s [%s]", ("sid1", "user:alice", NS))


def test_arguments_that_are_not_strings_or_do_not_fit_are_redacted():
    as_dict = record("auth %s", {"token": "opaque-secret"})
    one_short = record("%s %s", JWT)
    for line in (as_dict, one_short):
        RedactTokens().filter(line)
        assert "opaque-secret" not in line.getMessage() and JWT not in line.getMessage()
    assert as_dict.getMessage() == f"auth {{'token': '{REDACTED}'}}"


def test_an_exceptions_text_is_redacted():
    try:
        raise ValueError(f"bad packet {JWT}")
    except ValueError:
        line = record("message handler error", exc_info=sys.exc_info())
    RedactTokens().filter(line)
    text = logging.Formatter().format(line)
    assert JWT not in text and f"ValueError: bad packet {REDACTED}" in text
