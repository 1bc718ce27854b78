"""The dashboard page in Debian's Chromium, driven by Playwright, against the app served with eventlet.

Reconnect and poll timings are shortened through the page's query string (see ``FAST_TIMINGS``).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import timedelta

import jwt
import pytest

from tests.example_app.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.live]

SIGN_IN_AGAIN = "Your session has ended. Please sign in again."
TOO_MANY_TABS = "Too many open dashboard tabs; close some and reload."
SOCKET_IO = re.compile(r"/socket\.io/")


def add_moc_directly(app, username, title):
    """Write to the database behind the server's back, as another process of the app would."""
    import sqlalchemy as sa

    from example_app.extensions import db
    from example_app.models import Moc, Theme, User

    with app.app_context():
        owner = db.session.scalar(sa.select(User).filter_by(username=username))
        theme = db.session.scalar(sa.select(Theme).filter_by(name="City"))
        db.session.add(Moc(owner=owner, theme=theme, title=title))
        db.session.commit()


def test_owners_page_updates_live_and_another_users_page_does_not(server, open_tab, user, expect):
    alice_tab, bob_tab = open_tab(server), open_tab(server)
    alice_tab.sign_in("alice")
    bob_tab.sign_in("bob")
    for tab, total in ((alice_tab, "8"), (bob_tab, "3")):
        expect(tab.connection).to_have_attribute("data-state", "connected")
        expect(tab.connection).to_have_text("Live")
        expect(tab.summary("totalMocs")).to_have_text(total)
    bobs_titles = bob_tab.recent_titles.all_inner_texts()
    bobs_themes = bob_tab.page.locator("#theme-breakdown").inner_text()

    user("alice").add_moc(title="Harbour Crane", theme="Ideas", coverageStatus="PARTIAL_ORDERED", coveragePercentage=30)

    # Within a second of the write's response; the page reads nothing but the events.
    expect(alice_tab.recent_titles.first).to_have_text("Harbour Crane", timeout=1_000)
    expect(alice_tab.summary("totalMocs")).to_have_text("9", timeout=1_000)
    expect(alice_tab.page.locator("#theme-breakdown")).to_contain_text("Ideas", timeout=1_000)
    expect(alice_tab.page.locator("#partial-parts li").first).to_contain_text("Harbour Crane30%", timeout=1_000)
    assert alice_tab.requests["/api/dashboard"] == 1
    # Bob's page: his own next write shows, and none of Alice's events came before it.
    user("bob").add_wishlist_item("Millennium Falcon")
    expect(bob_tab.summary("totalWishlistItems")).to_have_text("2")
    expect(bob_tab.summary("totalMocs")).to_have_text("3")
    assert bob_tab.recent_titles.all_inner_texts() == bobs_titles
    assert bob_tab.page.locator("#theme-breakdown").inner_text() == bobs_themes

    if screenshot := os.environ.get("EXAMPLE_APP_SCREENSHOT"):
        alice_tab.page.screenshot(path=screenshot, full_page=True)


def test_the_forms_add_a_moc_and_change_a_build_status(server, open_tab, expect):
    tab = open_tab(server)
    tab.sign_in("alice")
    expect(tab.connection).to_have_attribute("data-state", "connected")
    form = tab.page.locator("#add-moc")

    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=title]")).to_have_text("Length must be between 1 and 200.")
    form.locator("input[name=title]").fill("Drawbridge")
    form.locator("select[name=theme]").select_option("Castle")
    form.locator("button[type=submit]").click()
    expect(tab.recent_titles.first).to_have_text("Drawbridge")
    expect(form.locator("[data-error-for=title]")).to_be_empty()
    tab.page.locator("#recent-mocs li").first.locator("select").select_option("BUILT")

    expect(tab.summary("BUILT")).to_have_text("4")
    expect(tab.summary("totalMocs")).to_have_text("9")
    expect(tab.page.locator("#recent-mocs li").first.locator("select")).to_have_value("BUILT")


def test_page_rides_out_a_restart_and_shows_what_changed_meanwhile(start_server, app, open_tab, expect):
    server = start_server()
    tab = open_tab(server)
    tab.sign_in("alice")
    expect(tab.connection).to_have_attribute("data-state", "connected")

    server.stop()
    expect(tab.connection).to_have_attribute("data-state", "degraded")
    expect(tab.banner).to_be_visible()
    add_moc_directly(app, "alice", "Written while the server was down")
    server.start()

    expect(tab.connection).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(tab.banner).to_be_hidden()
    expect(tab.recent_titles.first).to_have_text("Written while the server was down")
    expect(tab.summary("totalMocs")).to_have_text("9")
    assert tab.connection_states()[-4:] == ["connected", "reconnecting", "degraded", "connected"]


def test_degraded_mode_polls_the_api_until_the_websocket_is_back(server, open_tab, user, expect):
    tab = open_tab(server)
    blocked = True

    def websocket(route):
        server_side = route.connect_to_server()
        if blocked:
            server_side.close()  # the page sees "WebSocket is closed before the connection is established"

    tab.page.route_web_socket(SOCKET_IO, websocket)
    tab.sign_in("alice")
    # Now and then Playwright leaves a closed attempt hanging; the page's connect timeout ends it.
    expect(tab.connection).to_have_attribute("data-state", "degraded", timeout=20_000)
    expect(tab.banner).to_be_visible()
    expect(tab.summary("totalMocs")).to_have_text("8")  # read over REST although never connected

    user("alice").add_moc(title="Seen by polling")
    expect(tab.recent_titles.first).to_have_text("Seen by polling")  # no socket: only polling can bring it
    blocked = False

    expect(tab.connection).to_have_attribute("data-state", "connected")
    expect(tab.banner).to_be_hidden()
    fetched = tab.requests["/api/dashboard"]
    tab.page.wait_for_timeout(4 * tab.timings["pollInterval"])  # polling has stopped: nothing more is fetched
    assert tab.requests["/api/dashboard"] == fetched


def spoiled_tokens(app, user, spoil):
    """Alice's tokens, expired or signed with another key."""
    from flask_jwt_extended import create_access_token, create_refresh_token

    if spoil == "expired":
        past = timedelta(seconds=-60)
        with app.app_context():
            return {"accessToken": create_access_token("1", expires_delta=past),
                    "refreshToken": create_refresh_token("1", expires_delta=past)}
    key = "a signing key that is not the app's own, long enough for HS256"
    tokens = user("alice").tokens
    return {name: jwt.encode(jwt.decode(tokens[name], options={"verify_signature": False}), key, "HS256")
            for name in ("accessToken", "refreshToken")}


@pytest.mark.parametrize("spoil", ["expired", "tampered"])
def test_refused_token_shows_the_sign_in_prompt_without_retrying(server, app, user, open_tab, spoil, expect):
    tab = open_tab(server, tokens=spoiled_tokens(app, user, spoil))

    tab.open()

    expect(tab.page.locator("#login")).to_be_visible()
    expect(tab.page.locator("#login-message")).to_have_text(SIGN_IN_AGAIN)
    expect(tab.connection).to_have_attribute("data-state", "signed-out")
    tab.page.wait_for_timeout(10 * tab.timings["reconnectDelay"])  # ten reconnect delays: no attempt follows
    assert tab.websockets == 1
    assert tab.requests["/api/auth/refresh"] == 1
    assert tab.requests["/api/dashboard"] == 0
    assert tab.connection_states() == ["connecting", "signed-out"]


def test_refused_access_token_is_renewed_once_with_the_refresh_token(server, app, open_tab, expect):
    from flask_jwt_extended import create_access_token, create_refresh_token

    with app.app_context():
        tokens = {"accessToken": create_access_token("1", expires_delta=timedelta(seconds=-60)),
                  "refreshToken": create_refresh_token("1"), "username": "alice"}
    tab = open_tab(server, tokens=tokens)

    tab.open()

    expect(tab.connection).to_have_attribute("data-state", "connected")
    expect(tab.summary("totalMocs")).to_have_text("8")
    assert tab.websockets == 2
    assert tab.requests["/api/auth/refresh"] == 1


def test_connection_ended_at_token_expiry_comes_back_with_a_fresh_token(start_server, open_tab, user, expect):
    server = start_server(FLASK_JWT_ACCESS_TOKEN_EXPIRES="3")
    tab = open_tab(server)
    tab.sign_in("alice")
    expect(tab.connection).to_have_attribute("data-state", "connected")

    with tab.page.expect_console_message(lambda message: "TOKEN_EXPIRED" in message.text, timeout=15_000):
        pass
    with tab.page.expect_websocket(timeout=15_000):
        pass

    expect(tab.connection).to_have_attribute("data-state", "connected")
    assert tab.requests["/api/auth/refresh"] >= 1
    user("alice").add_moc(title="After the renewal")
    expect(tab.recent_titles.first).to_have_text("After the renewal")


def test_unknown_malformed_and_duplicate_events_are_handled(server, open_tab, user, expect):
    tab = open_tab(server)
    routes = []

    def websocket(route):
        route.connect_to_server()  # a transparent proxy that lets the test add frames of its own
        routes.append(route)

    tab.page.route_web_socket(SOCKET_IO, websocket)
    tab.sign_in("alice")
    expect(tab.connection).to_have_attribute("data-state", "connected")
    expect(tab.summary("totalMocs")).to_have_text("8")

    def inject(event_type, payload, event_id=None):
        envelope = {"eventId": event_id or str(uuid.uuid4()), "type": event_type,
                    "timestamp": "2026-01-01T12:00:00.000Z", "payload": payload}
        routes[-1].send("42/dashboard," + json.dumps([event_type, envelope]))  # a Socket.IO EVENT packet

    with tab.page.expect_console_message(lambda m: m.text == "dashboard: ignoring event of unknown type dashboard:later"):
        inject("dashboard:later", {"anything": True})
    with tab.page.expect_console_message(lambda m: m.text.startswith("dashboard: skipping malformed event")):
        inject("dashboard:recentMocAdded", {"title": 42})
    moc = {"id": str(uuid.uuid4()), "title": "Sent twice", "theme": "City", "buildStatus": "ADDED",
           "coverImageUrl": None, "createdAt": "2026-01-01T12:00:00.000Z"}
    twice = str(uuid.uuid4())
    inject("dashboard:recentMocAdded", moc, twice)
    inject("dashboard:recentMocAdded", moc, twice)
    view = user("alice").dashboard()
    inject("dashboard:summaryUpdated", {**view["summary"], "totalMocs": 99})  # arrives after both copies

    expect(tab.summary("totalMocs")).to_have_text("99")
    expect(tab.recent_titles).to_have_count(9)
    expect(tab.recent_titles.first).to_have_text("Sent twice")
    # Still live on the same connection; the recent list keeps ten, newest first.
    user("alice").add_moc(title="Real one")
    user("alice").add_moc(title="Real two")
    expect(tab.recent_titles.first).to_have_text("Real two")
    expect(tab.recent_titles).to_have_count(10)
    expect(tab.recent_titles.nth(1)).to_have_text("Real one")
    expect(tab.recent_titles.last).not_to_have_text("Lakeside Watchtower")
    expect(tab.connection).to_have_attribute("data-state", "connected")
    assert len(routes) == 1


def test_signing_out_signs_out_the_users_other_tabs_and_nobody_elses(server, open_tab, user, expect):
    from example_app.auth import SIGNED_OUT_MESSAGE

    alice_tab, other_alice_tab, bob_tab = open_tab(server), open_tab(server), open_tab(server)
    for tab, username in ((alice_tab, "alice"), (other_alice_tab, "alice"), (bob_tab, "bob")):
        tab.sign_in(username)
        expect(tab.connection).to_have_attribute("data-state", "connected")

    alice_tab.page.click("#sign-out")

    expect(alice_tab.page.locator("#login")).to_be_visible()
    expect(alice_tab.page.locator("#login-message")).to_be_empty()  # its own socket closed before the request
    assert alice_tab.requests["/api/auth/logout"] == 1
    # The other tab got SESSION_ENDED and signed out at once: no token renewal, no reconnect.
    expect(other_alice_tab.page.locator("#login")).to_be_visible()
    expect(other_alice_tab.page.locator("#login-message")).to_have_text(SIGNED_OUT_MESSAGE)
    expect(other_alice_tab.page.locator("#dashboard")).to_be_hidden()
    for tab in (alice_tab, other_alice_tab):
        assert tab.connection_states()[-2:] == ["connected", "signed-out"]
        assert tab.page.evaluate("sessionStorage.length") == 0
        assert tab.requests["/api/auth/refresh"] == 0
        assert tab.websockets == 1
    # Bob's page is still live.
    user("bob").add_wishlist_item("Millennium Falcon")
    expect(bob_tab.summary("totalWishlistItems")).to_have_text("2")
    expect(bob_tab.connection).to_have_attribute("data-state", "connected")
    assert bob_tab.websockets == 1


def test_signing_out_works_when_the_server_cannot_be_told(server, open_tab, expect):
    tab = open_tab(server)
    tab.sign_in("alice")
    expect(tab.connection).to_have_attribute("data-state", "connected")
    tab.page.route("**/api/auth/logout", lambda route: route.abort())

    tab.page.click("#sign-out")

    expect(tab.page.locator("#login")).to_be_visible()
    expect(tab.connection).to_have_attribute("data-state", "signed-out")
    assert tab.page.evaluate("sessionStorage.length") == 0


def test_a_tab_beyond_the_per_user_cap_says_so_and_connects_after_a_reload(start_server, open_tab, expect):
    server = start_server(FLASK_DASHBOARD_WS_MAX_SOCKETS_PER_USER="1")
    first, second = open_tab(server), open_tab(server)
    first.sign_in("alice")
    expect(first.connection).to_have_attribute("data-state", "connected")

    second.sign_in("alice")

    refused = second.page.locator("#refused-banner")
    expect(refused).to_be_visible()
    expect(refused).to_have_text(TOO_MANY_TABS)
    expect(second.connection).to_have_attribute("data-state", "refused")
    expect(second.connection).to_have_text("Not live")
    expect(second.summary("totalMocs")).to_have_text("8")  # the dashboard as it is, over REST
    expect(second.page.locator("#login")).to_be_hidden()  # not taken for a refused token
    assert second.requests["/api/auth/refresh"] == 0
    assert second.connection_states() == ["signed-out", "connecting", "refused"]
    expect(first.connection).to_have_attribute("data-state", "connected")

    # As the message says: close a tab and reload. The server may take a moment to see the tab go.
    first.page.close()

    def reloaded_and_live() -> bool:
        second.page.reload()
        try:
            expect(second.connection).to_have_attribute("data-state", "connected", timeout=2_000)
        except AssertionError:
            return False
        return True

    wait_until(reloaded_and_live, 20, "the reloaded tab did not connect after the other one closed")
    expect(refused).to_be_hidden()
