"""The README's first lines, its quick start, and the links and markers the docs rely on."""

from __future__ import annotations

import re
from pathlib import Path

from flask_jwt_extended import create_access_token

from flask_dashboard_ws.envelope import EnvelopeSchema
from flask_dashboard_ws.schemas import RecentMocSchema

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_first_lines_give_the_run_and_test_commands() -> None:
    first_lines = README.splitlines()[:4]
    assert any("./run-example.sh" in line for line in first_lines)
    assert any("./run-tests.sh" in line for line in first_lines)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
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


def test_the_quick_start_is_the_only_python_example() -> None:
    """The reference examples live in docs/, where tests/test_docs.py runs them."""
    assert len(code_blocks("python")) == 1


def test_docs_getting_started_includes_the_readmes_markers() -> None:
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    markers = re.findall(r"^:(?:start-after|end-before): (.*)$", quickstart, flags=re.M)
    assert len(markers) == 2
    start, end = (README.index(marker) for marker in markers)
    assert start < README.index("## Quick start") < README.index("## The browser side") < end


def test_relative_links_point_to_files_that_exist() -> None:
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", README) if "://" not in link]
    assert links
    for link in links:
        assert (ROOT / link).exists(), link
