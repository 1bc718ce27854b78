"""The example app's whole flow on "AWS": example_app/serverless.yml under serverless-offline.

Its REST API runs as a Lambda behind the HTTP API (through apig-wsgi), its page and socket.io-client connect
to the WebSocket API, and a MOC posted over HTTP reaches the page as ``dashboard:recentMocAdded``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.node_tabs import NodeTabs
from tests.apigateway.emulator import REPO, Dynalite, Offline, create_connections_table
from tests.example_app.conftest import browser, expect  # noqa: F401  (fixtures: Debian's Chromium, Playwright)

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def example(dynalite: Dynalite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offline]:
    workdir = tmp_path_factory.mktemp("example-aws")
    env = {"EXAMPLE_APP_INSTANCE_PATH": str(workdir / "instance"), "AWS_ENDPOINT_URL_DYNAMODB": dynalite.url}
    subprocess.run([sys.executable, "-m", "flask", "--app", "example_app", "seed"], cwd=REPO, check=True,
                   env={**os.environ, **env}, capture_output=True, timeout=120)
    client = dynalite.client()
    try:
        create_connections_table(client, "moc-dashboard-local-connections")  # serverless.yml's name for it
    finally:
        client.close()
    offline = Offline(REPO / "example_app", workdir, env)
    yield offline
    offline.stop()


def test_log_in_connect_post_a_moc_and_receive_it(example: Offline) -> None:
    page = requests.get(f"{example.http_url}/", timeout=TIMEOUT)
    assert page.status_code == 200
    assert f'<meta name="dashboard-websocket-url" content="{example.websocket_url}">' in page.text

    login = requests.post(f"{example.http_url}/api/auth/login", json={"username": "alice", "password": "alice-bricks"},
                          timeout=TIMEOUT)
    assert login.status_code == 200, login.text
    token = login.json()["accessToken"]
    client = NodeTabs(example.websocket_url, token)
    try:
        client.wait_kind("connect", timeout=TIMEOUT)
        created = requests.post(f"{example.http_url}/api/mocs", json={"title": "Lakeside lodge", "theme": "City"},
                                headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        event = client.wait_for(lambda seen: seen.get("name") == "dashboard:recentMocAdded", timeout=TIMEOUT)
        assert event["envelope"]["payload"]["id"] == created.json()["id"]
        assert event["envelope"]["payload"]["title"] == "Lakeside lodge"
        summary = client.wait_for(lambda seen: seen.get("name") == "dashboard:summaryUpdated", timeout=TIMEOUT)
        assert summary["envelope"]["payload"]["totalMocs"] >= 1
    finally:
        client.close()


def test_the_socket_io_client_build_is_served_through_the_http_api(example: Offline) -> None:
    """The page imports socket.io-client from the app itself, through apig-wsgi's binary support."""
    script = requests.get(f"{example.http_url}/vendor/socket.io/socket.io.esm.min.js", timeout=TIMEOUT)
    assert script.status_code == 200
    assert script.content == (Path(REPO) / "example_app/node_modules/socket.io-client/dist/socket.io.esm.min.js").read_bytes()


def test_signing_out_ends_every_tab_through_api_gateway(example: Offline) -> None:
    login = requests.post(f"{example.http_url}/api/auth/login", json={"username": "bob", "password": "bob-bricks"},
                          timeout=TIMEOUT)
    token = login.json()["accessToken"]
    client = NodeTabs(example.websocket_url, token, tabs=2)
    try:
        client.wait_connected(2)
        response = requests.post(f"{example.http_url}/api/auth/logout", headers={"Authorization": f"Bearer {token}"},
                                 timeout=TIMEOUT)
        assert response.status_code == 204, response.text
        for tab in range(2):
            ended = client.wait_kind("event", tab, timeout=TIMEOUT)
            assert ended["envelope"]["payload"]["code"] == "SESSION_ENDED"
            assert client.wait_kind("disconnect", tab, timeout=TIMEOUT)["reason"] == "io server disconnect"
    finally:
        client.close()


@pytest.mark.browser
def test_the_page_in_chromium_goes_live_over_the_websocket_api(example: Offline, browser, expect) -> None:
    """The example page, served by the REST Lambda, connects to the WebSocket API its configuration names."""
    context = browser.new_context()
    try:
        page = context.new_page()
        websockets: list[str] = []
        page.on("websocket", lambda ws: websockets.append(ws.url))
        page.goto(f"{example.http_url}/")
        page.fill("#login-form input[name=username]", "alice")
        page.fill("#login-form input[name=password]", "alice-bricks")
        page.click("#login-form button[type=submit]")
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT * 1000)
        token = page.evaluate("sessionStorage.getItem('accessToken')")
        created = requests.post(f"{example.http_url}/api/mocs", json={"title": "Cliff Lighthouse", "theme": "Ideas"},
                                headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        expect(page.locator("#recent-mocs li .title").first).to_have_text("Cliff Lighthouse", timeout=TIMEOUT * 1000)
        assert websockets and all(url.startswith(f"{example.websocket_url}?EIO=4&transport=websocket") for url in websockets)
    finally:
        context.close()
