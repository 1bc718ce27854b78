"""``flask dashboard-ws emit``, driven through Flask's CLI runner (the live tests run the real ``flask``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from click.testing import Result
from flask import Flask
from flask_jwt_extended import JWTManager

from flask_dashboard_ws import DashboardRealtime, emitter
from flask_dashboard_ws.events import EventType
from tests.redis_server import (
    NO_SHARED_REDIS,
    SHARED_REDIS_URL,
    free_port,
    private_channel,
    shared_redis_answers,
)

SECRET = "cli-test-secret-that-is-long-enough-for-hs256-0123456789abcdef"
ERROR_PAYLOAD = {"code": "MAINTENANCE", "message": "Back at 14:00"}
RECENT_MOC = {"id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b", "title": "Castle", "theme": "Castle", "buildStatus": "ADDED",
              "coverImageUrl": None, "createdAt": "2025-11-30T12:34:56.789Z"}
PARTIAL_MOC = {**{k: v for k, v in RECENT_MOC.items() if k not in ("coverImageUrl", "createdAt")},
               "coveragePercentage": 50, "lastUpdatedAt": "2025-11-30T12:34:56.789Z"}
DEEP_LIST = "[" * 10_000 + "]" * 10_000  # JSON nested far past Python's recursion limit
DEEP_DICT = '{"a": ' * 10_000 + "1" + "}" * 10_000


def cli_app(url: str | None = None, channel: str = "flask-socketio") -> Flask:
    app = Flask("cli_test_app")
    app.config.update(JWT_SECRET_KEY=SECRET, DASHBOARD_WS_ASYNC_MODE="threading", DASHBOARD_WS_MESSAGE_QUEUE=url,
                      DASHBOARD_WS_CHANNEL=channel, DASHBOARD_WS_QUEUE_TIMEOUT=0.5)
    JWTManager(app)
    DashboardRealtime(app)
    return app


def emit(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["dashboard-ws", "emit", *args], input=input)


def unreachable_app() -> Flask:
    return cli_app(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens on that port


@pytest.fixture
def live_queue() -> Any:
    """An app on the machine's Redis with a channel of its own, and a subscriber to it and its users' channels."""
    if not shared_redis_answers():
        pytest.fail(NO_SHARED_REDIS)
    channel = private_channel()
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=15)
    pubsub = client.pubsub()
    pubsub.psubscribe(f"{channel}*")  # and its users' channels
    assert pubsub.get_message(timeout=15)["type"] == "psubscribe"
    app = cli_app(SHARED_REDIS_URL, channel)
    yield app, pubsub
    publisher = app.extensions["dashboard_ws"].socketio.server.manager._publisher
    if publisher is not None:
        publisher.close()
    pubsub.close()
    client.close()


def published(pubsub: Any) -> dict[str, Any]:
    """The next message python-socketio published, its emitted data as ``envelope``."""
    message = pubsub.get_message(timeout=15)
    assert message is not None and message["type"] == "pmessage", message
    published = json.loads(message["data"])
    published["channel"] = message["channel"].decode()
    data = published["data"]  # the list of the event's arguments (recent python-socketio), or the one argument
    published["envelope"] = data[0] if isinstance(data, list) and len(data) == 1 else data
    return published


def test_init_app_registers_the_command():
    app = cli_app()
    assert "dashboard-ws" in app.cli.commands
    result = app.test_cli_runner().invoke(args=["dashboard-ws", "emit", "--help"])
    assert result.exit_code == 0
    for text in ("--user", "--type", "--payload", "JSON|@PATH|-", EventType.SUMMARY_UPDATED.value):
        assert text in result.output


# Success (exit status 0)


@pytest.mark.live
@pytest.mark.parametrize("source", ["argument", "file", "stdin"])
def test_emit_sends_the_event_through_the_queue_and_prints_its_id(live_queue, tmp_path, source: str):
    app, pubsub = live_queue
    text = json.dumps(ERROR_PAYLOAD)
    payload, stdin = {"argument": (text, None), "stdin": ("-", text)}.get(source, (None, None))
    if source == "file":
        path = tmp_path / "payload.json"
        path.write_text(text, encoding="utf-8")
        payload = f"@{path}"
    result = emit(app, "--user", "42", "--type", "dashboard:error", "--payload", payload, input=stdin)

    assert result.exit_code == 0, result.output
    event_id = result.stdout.strip().splitlines()[-1]
    message = published(pubsub)
    assert (message["event"], message["room"], message["namespace"]) == ("dashboard:error", "user:42", "/dashboard")
    envelope = message["envelope"]
    assert envelope["eventId"] == event_id
    assert envelope["payload"] == ERROR_PAYLOAD


@pytest.mark.live
def test_emit_validates_and_converts_like_the_python_api(live_queue):
    app, pubsub = live_queue
    summary = {"total_mocs": 3, "total_wishlist_items": 1, "mocs_by_build_status": {"ADDED": 1, "IN_PROGRESS": 1, "BUILT": 1},
               "mocs_by_coverage_status": {"FULL_INVENTORY": 1, "PARTIAL_ORDERED": 1, "NONE": 1}}
    result = emit(app, "--user", "alice", "--type", "dashboard:summaryUpdated", "--payload", json.dumps(summary))
    assert result.exit_code == 0, result.output
    assert published(pubsub)["envelope"]["payload"]["mocsByBuildStatus"] == {"ADDED": 1, "IN_PROGRESS": 1, "BUILT": 1}


# Bad invocations (exit status 2), checked before the queue is used


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "dashboard:nope", "--payload", "{}"], "unknown dashboard event type 'dashboard:nope'"),
        (["--type", "dashboard:error", "--payload", '{"code": "", "message": "m"}'], '"code"'),
        (["--type", "dashboard:error", "--payload", '{"code": "X"}'], '"message"'),
        (["--type", "dashboard:themeBreakdownUpdated", "--payload", "{}"], "takes a list"),
        (["--type", "dashboard:error", "--payload", "{not json"], "the argument is not JSON"),
        (["--type", "dashboard:error", "--payload", "@/nonexistent/payload.json"], "cannot read /nonexistent/payload.json"),
        (["--type", "dashboard:error"], "Missing option '--payload'"),
        (["--type", "dashboard:recentMocAdded", "--payload",
          json.dumps({**RECENT_MOC, "createdAt": "0001-01-01T00:00:00+05:00"})], '"createdAt"'),
        (["--type", "dashboard:partialPartsUpdated", "--payload",
          json.dumps([{**PARTIAL_MOC, "lastUpdatedAt": "9999-12-31T23:00:00-05:00"}])], '"lastUpdatedAt"'),
        (["--type", "dashboard:recentMocAdded", "--payload",
          json.dumps({**RECENT_MOC, "coverImageUrl": "/\\evil.example/x.png"})], '"coverImageUrl"'),
        (["--type", "dashboard:themeBreakdownUpdated", "--payload",
          json.dumps([{"theme": "Castle", "mocCount": 2**53, "setCount": 0}])], '"mocCount"'),
        (["--type", "dashboard:themeBreakdownUpdated", "--payload", DEEP_LIST], "the argument is nested too deeply"),
        (["--type", "dashboard:recentMocAdded", "--payload", '{"theme": ' + DEEP_LIST + "}"],
         "the argument is nested too deeply"),
        (["--type", "dashboard:summaryUpdated", "--payload", DEEP_DICT], "the argument is nested too deeply"),
    ],
)
def test_a_bad_invocation_exits_2_with_a_clear_message(args: list[str], message: str):
    result = emit(unreachable_app(), "--user", "alice", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "did not take the event" not in result.output  # nothing was sent


def test_an_empty_user_exits_2():
    result = emit(unreachable_app(), "--user", " ", "--type", "dashboard:error", "--payload", json.dumps(ERROR_PAYLOAD))
    assert result.exit_code == 2 and "--user" in result.output


def test_stdin_that_is_not_json_exits_2():
    result = emit(unreachable_app(), "--user", "alice", "--type", "dashboard:error", "--payload", "-", input="nope")
    assert result.exit_code == 2 and "standard input is not JSON" in result.output


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), OverflowError("date value out of range")])
def test_a_payload_that_fails_validation_in_any_other_way_exits_2(monkeypatch, error: Exception):
    def prepare(*args: Any) -> None:
        raise error

    monkeypatch.setattr(emitter, "prepare", prepare)
    result = emit(unreachable_app(), "--user", "alice", "--type", "dashboard:error", "--payload", json.dumps(ERROR_PAYLOAD))
    assert result.exit_code == 2, result.output
    assert f"invalid dashboard:error payload: {error}" in result.output
    assert "Traceback" not in result.output


# The queue (exit status 1)


def test_an_unreachable_queue_exits_1_with_the_reason():
    app = unreachable_app()
    result = emit(app, "--user", "alice", "--type", "dashboard:error", "--payload", json.dumps(ERROR_PAYLOAD))
    assert result.exit_code == 1, result.output
    assert "did not take the event" in result.stderr and app.config["DASHBOARD_WS_MESSAGE_QUEUE"] in result.stderr
    assert "Traceback" not in result.output


def test_without_a_message_queue_exits_1():
    result = emit(cli_app(None), "--user", "alice", "--type", "dashboard:error", "--payload", json.dumps(ERROR_PAYLOAD))
    assert result.exit_code == 1
    assert "no message queue is configured (DASHBOARD_WS_MESSAGE_QUEUE)" in result.stderr
