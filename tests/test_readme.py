"""The README's examples run, and its configuration table matches the code."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from flask_jwt_extended import create_access_token

from flask_dashboard_ws.config import APIGATEWAY_DEFAULTS, DEFAULTS
from flask_dashboard_ws.envelope import EnvelopeSchema
from flask_dashboard_ws.schemas import RecentMocSchema

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_first_lines_give_the_run_and_test_commands() -> None:
    first_lines = README.splitlines()[:4]
    assert any("./run-example.sh" in line for line in first_lines)
    assert any("./run-tests.sh" in line for line in first_lines)
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().endswith("./run-tests.sh")


def test_quick_start_delivers_the_event_to_the_users_socket() -> None:
    namespace: dict[str, object] = {"__name__": "readme_quick_start"}
    exec(compile(code_blocks("python")[0], "README.md", "exec"), namespace)
    app, dashboard = namespace["app"], namespace["dashboard"]
    with app.app_context():
        alice, bob = create_access_token("alice"), create_access_token("bob")
    alice_socket = dashboard.socketio.test_client(app, namespace="/dashboard", auth={"token": alice})
    bob_socket = dashboard.socketio.test_client(app, namespace="/dashboard", auth={"token": bob})

    response = app.test_client().post("/api/mocs", headers={"Authorization": f"Bearer {alice}"})

    assert response.status_code == 201
    [received] = alice_socket.get_received("/dashboard")
    envelope = received["args"][0]
    assert received["name"] == envelope["type"] == "dashboard:recentMocAdded"
    assert EnvelopeSchema().validate(envelope) == {}
    assert RecentMocSchema().validate(envelope["payload"]) == {}
    assert envelope["payload"]["id"] == response.get_json()["id"]
    assert envelope["payload"]["title"] == "Tiny Falcon"
    assert bob_socket.get_received("/dashboard") == []


def test_config_tables_list_every_key_with_its_default() -> None:
    """The main table, and the apigateway backend's in "On AWS Lambda"."""
    rows = re.findall(r"^\| `(DASHBOARD_WS_\w+)` \| `([^`]*)` \|", README, flags=re.M)
    keys = {**DEFAULTS, **APIGATEWAY_DEFAULTS}
    assert {key: default for key, default in rows} == {key: repr(value).replace("'", '"') for key, value in keys.items()}


def test_every_python_example_compiles() -> None:
    blocks = code_blocks("python")
    assert len(blocks) > 1
    for number, block in enumerate(blocks):
        compile(textwrap.dedent(block), f"README.md python block {number}", "exec")  # some sit in a list item
