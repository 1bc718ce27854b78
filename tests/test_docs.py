"""The documentation's examples run and do what the pages say, and its tables match the code.

Every ```python block of ``docs/*.md`` compiles; each one is either run here (``RUN``) or listed as needing
what a test cannot have (``COMPILE_ONLY``: Celery, your own package), so that a new example cannot go
untested by accident. ``tox -e docs`` builds the pages themselves, with warnings as errors.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import textwrap
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, get_jwt_identity, jwt_required
from structlog.testing import capture_logs
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_dashboard_ws import DashboardRealtime, QueueUnavailable
from flask_dashboard_ws.config import APIGATEWAY_DEFAULTS, DEFAULTS, load_settings
from flask_dashboard_ws.metrics import Metrics
from flask_dashboard_ws.queue import DashboardRedisManager
from tests.conftest import NS, SECRET, Harness
from tests.redis_server import free_port

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md"))}

# (page, a string that only that page's example contains)
RUN = {
    ("configuration.md", "DASHBOARD_WS_MAX_SOCKETS_PER_USER"),
    ("events.md", "except ValidationError"),
    ("authentication.md", "ProxyFix(app.wsgi_app"),
    ("authentication.md", "/api/auth/logout"),
    ("deployment.md", "DASHBOARD_WS_MESSAGE_QUEUE"),
    ("deployment.md", '{"transports": ["websocket"]}'),
    ("deployment.md", "DASHBOARD_WS_HEALTH_PATH"),
    ("deployment.md", "dashboard.drain("),
    ("metrics.md", "DASHBOARD_WS_METRICS_PATH"),
    ("workers.md", "# yourapp/cron.py"),
    ("workers.md", "@app.errorhandler(QueueUnavailable)"),
    ("performance.md", "DASHBOARD_WS_ASYNC_MODE"),
    ("aws.md", 'DASHBOARD_WS_BACKEND="apigateway"'),
}
COMPILE_ONLY = {
    ("workers.md", "from celery import Celery"),  # needs Celery and your app package
    ("aws.md", "lambda_handlers(create_app)"),  # needs your app package; tests/apigateway runs the handlers
}


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a page, dedented (some sit in a list item)."""
    return [textwrap.dedent(body) for _indent, body in re.findall(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M)]


def example(page: str, marker: str) -> str:
    [block] = [block for block in python_blocks(PAGES[page]) if marker in block]
    return block


def run(page: str, marker: str, **names: Any) -> dict[str, Any]:
    """Run the example of ``page`` that contains ``marker`` with ``names`` defined, as the page assumes."""
    namespace = {"__name__": "docs_example", **names}
    exec(compile(example(page, marker), f"docs/{page}", "exec"), namespace)
    return namespace


def prints_what_it_says(page: str, marker: str, **names: Any) -> None:
    """Run the example: what it prints is what its ``print(...)  # ...`` comment says."""
    [comment] = re.findall(r"print\(.*\)\s+# (.*)$", example(page, marker), re.M)
    printed = io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(printed):  # structlog's default set-up prints to stdout
        run(page, marker, **names)
    try:
        expected = ast.literal_eval(comment)
    except (ValueError, SyntaxError):
        assert printed.getvalue() == comment + "\n"
    else:
        assert ast.literal_eval(printed.getvalue()) == expected


def new_app(**config: Any) -> Flask:
    """An app with flask-jwt-extended, before ``DashboardRealtime``, in the unit tests' async mode."""
    app = Flask("docs_app")
    app.config.update(TESTING=True, JWT_SECRET_KEY=SECRET, DASHBOARD_WS_ASYNC_MODE="threading", **config)
    JWTManager(app)
    return app


def test_every_python_example_compiles_and_is_run_or_listed() -> None:
    listed = RUN | COMPILE_ONLY
    blocks = [(page, block) for page, text in PAGES.items() for block in python_blocks(text)]
    assert len(blocks) == len(listed)
    for page, block in blocks:
        compile(block, f"docs/{page}", "exec")
        assert len([marker for name, marker in listed if name == page and marker in block]) == 1, block


def test_config_tables_list_every_key_with_its_default() -> None:
    """The keys' table and the API Gateway backend's, on the configuration page."""
    rows = re.findall(r"^\| `(DASHBOARD_WS_\w+)` \| `([^`]*)` \|", PAGES["configuration.md"], flags=re.M)
    keys = {**DEFAULTS, **APIGATEWAY_DEFAULTS}
    assert len(rows) == len(keys)
    assert dict(rows) == {key: repr(value).replace("'", '"') for key, value in keys.items()}


def test_a_bad_value_raises_config_error_naming_the_key() -> None:
    app = new_app()
    prints_what_it_says("configuration.md", "DASHBOARD_WS_MAX_SOCKETS_PER_USER", app=app)
    assert "dashboard_ws" not in app.extensions


def test_an_invalid_payload_names_the_fields_as_sent_and_sends_nothing(make_app) -> None:
    harness: Harness = make_app()
    socket = harness.client(harness.token("42"))
    prints_what_it_says("events.md", "except ValidationError", app=harness.app, dashboard=harness.dashboard)
    assert harness.received(socket) == []


def test_proxyfix_after_init_app_gives_the_app_its_real_scheme() -> None:
    app, dashboard = new_app(), DashboardRealtime()
    app.get("/scheme")(lambda: request.scheme)
    run("authentication.md", "ProxyFix(app.wsgi_app", app=app, dashboard=dashboard)
    assert isinstance(app.wsgi_app, ProxyFix)
    assert app.test_client().get("/scheme", headers={"X-Forwarded-Proto": "https"}).text == "https"
    assert "dashboard_ws" in app.extensions


def test_logout_ends_the_users_sockets_and_revokes_the_token(make_app) -> None:
    harness: Harness = make_app()
    revoked_jtis: set[str] = set()
    harness.jwt.token_in_blocklist_loader(lambda header, claims: claims["jti"] in revoked_jtis)
    token = harness.token("alice")
    socket, other_user = harness.client(token), harness.client(harness.token("bob"))
    run("authentication.md", "/api/auth/logout", app=harness.app, dashboard=harness.dashboard,
        jwt_required=jwt_required, get_jwt=get_jwt, get_jwt_identity=get_jwt_identity, revoked_jtis=revoked_jtis)

    with capture_logs() as logs:
        response = harness.app.test_client().post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 204
    [ended] = [entry for entry in logs if entry["event"] == "user_disconnected"]
    assert ended["user_id"] == "alice"
    # The test client keeps no packets once disconnected; test_extension checks the SESSION_ENDED event.
    assert not socket.is_connected(NS) and harness.room("user:alice") == set()
    assert other_user.is_connected(NS) and harness.received(other_user) == []
    assert not harness.client(token).is_connected(NS)  # the blocklist refuses the token from now on


def test_the_redis_settings_give_the_manager_that_reports_outages() -> None:
    app = new_app()
    run("deployment.md", "DASHBOARD_WS_MESSAGE_QUEUE", app=app)
    dashboard = DashboardRealtime(app)  # connects to nothing yet: the listener starts with the first socket
    manager = dashboard.socketio.server.manager
    assert isinstance(manager, DashboardRedisManager)
    assert manager.channel == "dashboard-prod" and manager.where == "redis://redis.internal:6379/0"


def test_websocket_only_refuses_long_polling() -> None:
    app = new_app()
    run("deployment.md", '{"transports": ["websocket"]}', app=app)
    DashboardRealtime(app)
    assert app.test_client().get("/socket.io/?EIO=4&transport=polling").status_code == 400


def test_health_and_readiness_answer_on_their_paths() -> None:
    app = new_app()
    run("deployment.md", "DASHBOARD_WS_HEALTH_PATH", app=app)
    DashboardRealtime(app)
    client = app.test_client()
    assert (client.get("/healthz").status_code, client.get("/healthz").json) == (200, {"status": "ok"})
    assert (client.get("/readyz").status_code, client.get("/readyz").json) == (200, {"status": "ready"})


def test_a_drain_reports_what_it_did_and_turns_readiness_503(make_app) -> None:
    harness: Harness = make_app(DASHBOARD_WS_READY_PATH="/readyz")
    namespace = run("deployment.md", "dashboard.drain(", app=harness.app, dashboard=harness.dashboard)
    report = namespace["report"]
    assert set(report) == {"sessions", "closed", "open", "seconds"}
    assert report["open"] == 0 and report["seconds"] < 25
    readiness = harness.app.test_client().get("/readyz")
    assert readiness.status_code == 503 and "draining" in readiness.json["reasons"]


def test_the_metrics_path_serves_this_processs_counts() -> None:
    app = new_app()
    run("metrics.md", "DASHBOARD_WS_METRICS_PATH", app=app)
    dashboard = DashboardRealtime(app)
    with app.app_context():
        token = create_access_token("alice")
        dashboard.emit_error("alice", "MAINTENANCE", "Back at 14:00")
    socket = dashboard.socketio.test_client(app, namespace=NS, auth={"token": token})
    assert socket.is_connected(NS)

    response = app.test_client().get("/metrics")

    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    assert "dashboard_ws_sockets 1.0" in response.text
    assert 'dashboard_ws_events_emitted_total{type="dashboard:error"} 1.0' in response.text


def test_the_promql_queries_name_real_metrics_and_labels() -> None:
    """Every metric a dashboard query names is exposed, and every ``by (...)`` label is one of its labels."""
    metrics = Metrics(lambda: {})
    metrics.connection_attempt("refused", "token_invalid")
    metrics.disconnected("client disconnect")
    metrics.event_dropped("request_failed")
    metrics.event_invalid("dashboard:error")
    labels: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    queries = re.findall(r"^\| [^|]+ \| `([^`]+)` \|$", PAGES["metrics.md"], flags=re.M)
    assert len(queries) >= 10
    named = set()
    for query in queries:
        names = set(re.findall(r"\bdashboard_ws_\w+", query))
        assert names and names <= set(labels), query
        named |= names
        for grouping in re.findall(r"\bby \(([^)]*)\)", query):
            assert {label.strip() for label in grouping.split(",")} <= set.union(*(labels[n] for n in names)), query
    table = set(re.findall(r"`(dashboard_ws_\w+)`", PAGES["metrics.md"].split("## A Grafana dashboard")[0]))
    assert {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for name in named} <= table


def test_a_cron_job_emits_at_once(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    harness: Harness = make_app()
    socket = harness.client(harness.token("42"))
    yourapp = types.ModuleType("yourapp")
    yourapp.create_app, yourapp.dashboard = (lambda: harness.app), harness.dashboard
    monkeypatch.setitem(sys.modules, "yourapp", yourapp)

    run("workers.md", "# yourapp/cron.py")

    [(name, envelope)] = harness.received(socket)
    assert name == "dashboard:error"
    assert envelope["payload"] == {"code": "MAINTENANCE", "message": "Back at 14:00"}


def test_an_error_handler_answers_503_when_the_queue_is_down(make_app) -> None:
    harness: Harness = make_app(DASHBOARD_WS_MESSAGE_QUEUE=f"redis://127.0.0.1:{free_port()}/0")  # refused
    run("workers.md", "@app.errorhandler(QueueUnavailable)", app=harness.app, QueueUnavailable=QueueUnavailable)

    @harness.app.post("/imports")
    def finish_import() -> Any:
        harness.dashboard.emit_error("alice", "IMPORT_DONE", "Your import is done.", defer=False)
        return "", 204

    response = harness.app.test_client().post("/imports")

    assert response.status_code == 503
    assert response.json["error"] == "live updates are unavailable"
    assert uuid.UUID(response.json["eventId"]).version == 4


def test_the_production_settings_are_valid() -> None:
    app = Flask("docs_app")
    run("performance.md", "DASHBOARD_WS_ASYNC_MODE", app=app)
    settings = load_settings(app)
    assert settings.async_mode == "gevent" and settings.gc_freeze_interval_for("gevent") == 0.2
    assert settings.socketio_kwargs()["transports"] == ["websocket"]


def test_the_aws_backend_example_sets_up_the_apigateway_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3", reason="the [aws] extra")
    from flask_dashboard_ws.apigateway.backend import ApiGatewayState

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # in Lambda, the function's region
    app = Flask("docs_app")
    app.config["JWT_SECRET_KEY"] = SECRET
    namespace = run("aws.md", 'DASHBOARD_WS_BACKEND="apigateway"', app=app, JWTManager=JWTManager,
                    DashboardRealtime=DashboardRealtime)
    state = app.extensions["dashboard_ws"]
    assert isinstance(state, ApiGatewayState) and isinstance(namespace["dashboard"], DashboardRealtime)
    assert state.settings.apigateway.endpoint == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    assert state.settings.apigateway.table == "moc-dashboard-prod-connections"
