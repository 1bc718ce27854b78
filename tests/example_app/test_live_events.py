"""Writes through the REST API reach the owner's open sockets, and only those, with the documented events.

The app runs in a subprocess (eventlet, as ``python -m example_app`` serves it) and the clients are real
python-socketio clients over WebSocket. "Nothing else arrived" is proven by order, not by waiting: a
later write's event must be the next one a socket receives.
"""

from __future__ import annotations

import pytest
import socketio

from tests.example_app.conftest import DISCONNECTED, NAMESPACE, ApiClient, DashboardSocket

pytestmark = pytest.mark.live

SUMMARY = "dashboard:summaryUpdated"
RECENT = "dashboard:recentMocAdded"
THEMES = "dashboard:themeBreakdownUpdated"
PARTIAL = "dashboard:partialPartsUpdated"
ERROR = "dashboard:error"


def expect_marker(client, sock, name):
    """Add a wishlist item and check that its summary is the very next event ``sock`` receives."""
    before = client.dashboard()["summary"]["totalWishlistItems"]
    client.add_wishlist_item(name)
    event, envelope = sock.next_event()
    assert (event, envelope["payload"]["totalWishlistItems"]) == (SUMMARY, before + 1)


def test_adding_a_moc_updates_the_owners_dashboards_and_nobody_elses(user, dashboard_socket):
    alice, bob = user("alice"), user("bob")
    alice_tabs = [dashboard_socket(alice), dashboard_socket(alice)]
    bob_tab = dashboard_socket(bob)

    moc = alice.add_moc(title="Harbour Crane", theme="Ideas", coverImageUrl="https://example.com/crane.png")

    view = alice.dashboard()
    for tab in alice_tabs:
        received = [tab.next_event() for _ in range(3)]
        assert [event for event, _ in received] == [RECENT, SUMMARY, THEMES]
        assert all(envelope["type"] == event for event, envelope in received)
        recent, summary, themes = (envelope["payload"] for _, envelope in received)
        assert recent == view["recentMocs"][0]
        assert recent["id"] == moc["id"]
        assert recent["coverImageUrl"] == "https://example.com/crane.png"
        assert summary == view["summary"]
        assert summary["totalMocs"] == 9
        assert themes == view["themeBreakdown"]
        assert {"theme": "Ideas", "mocCount": 1, "setCount": 64} in themes
    expect_marker(bob, bob_tab, "Bob's marker set")


def test_a_moc_added_with_partial_parts_also_updates_the_partial_list(user, dashboard_socket):
    alice = user("alice")
    tab = dashboard_socket(alice)

    moc = alice.add_moc(title="Fire Station", coverageStatus="PARTIAL_ORDERED", coveragePercentage=35)

    received = [tab.next_event() for _ in range(4)]
    assert [event for event, _ in received] == [RECENT, SUMMARY, THEMES, PARTIAL]
    partial = received[3][1]["payload"]
    assert partial == alice.dashboard()["partialPartsMocs"]
    assert partial[0]["id"] == moc["id"]
    assert partial[0]["coveragePercentage"] == 35


def test_changing_build_status_updates_the_summary_only(user, dashboard_socket):
    alice = user("alice")
    tab = dashboard_socket(alice)
    bakery = alice.moc_id("Corner Bakery")  # ADDED, no parts: not on the partial-parts list

    response = alice.request("PATCH", f"/api/mocs/{bakery}", json={"buildStatus": "BUILT"})

    assert response.status_code == 200, response.text
    assert response.json()["buildStatus"] == "BUILT"
    event, envelope = tab.next_event()
    assert event == SUMMARY
    assert envelope["payload"]["mocsByBuildStatus"] == {"ADDED": 2, "IN_PROGRESS": 2, "BUILT": 4}
    expect_marker(alice, tab, "Alice's marker set")


def test_changing_parts_coverage_updates_the_partial_list_and_the_summary(user, dashboard_socket):
    alice = user("alice")
    tab = dashboard_socket(alice)
    bakery = alice.moc_id("Corner Bakery")

    response = alice.request(
        "PATCH", f"/api/mocs/{bakery}", json={"coverageStatus": "PARTIAL_ORDERED", "coveragePercentage": 40}
    )

    assert response.status_code == 200, response.text
    (partial_event, partial), (summary_event, summary) = tab.next_event(), tab.next_event()
    assert (partial_event, summary_event) == (PARTIAL, SUMMARY)
    assert partial["payload"][0]["title"] == "Corner Bakery"
    assert partial["payload"][0]["coveragePercentage"] == 40
    assert len(partial["payload"]) == 4
    assert summary["payload"]["mocsByCoverageStatus"] == {"FULL_INVENTORY": 3, "PARTIAL_ORDERED": 4, "NONE": 1}
    expect_marker(alice, tab, "Alice's marker set")


def test_adding_a_wishlist_item_updates_the_summary(user, dashboard_socket):
    alice = user("alice")
    tab = dashboard_socket(alice)

    alice.add_wishlist_item("Eiffel Tower")

    event, envelope = tab.next_event()
    assert event == SUMMARY
    assert envelope["payload"] == alice.dashboard()["summary"]
    assert envelope["payload"]["totalWishlistItems"] == 4


def test_failed_writes_emit_nothing(user, dashboard_socket):
    alice, bob = user("alice"), user("bob")
    alice_tab, bob_tab = dashboard_socket(alice), dashboard_socket(bob)
    bobs_moc = bob.moc_id("Tiny Lighthouse")

    invalid = alice.request("POST", "/api/mocs", json={"title": "", "theme": "Atlantis"})
    not_hers = alice.request("PATCH", f"/api/mocs/{bobs_moc}", json={"buildStatus": "BUILT"})
    unchanged = alice.request("PATCH", f"/api/mocs/{alice.moc_id('Tram Stop')}", json={"buildStatus": "BUILT"})

    assert invalid.status_code == 400
    assert set(invalid.json()["errors"]) == {"title", "theme"}
    assert not_hers.status_code == 404
    assert unchanged.status_code == 200  # already BUILT: nothing changed, so nothing to tell
    assert bob.dashboard()["summary"]["mocsByBuildStatus"]["BUILT"] == 1
    expect_marker(alice, alice_tab, "Alice's marker set")
    expect_marker(bob, bob_tab, "Bob's marker set")


def test_signing_out_ends_the_users_sockets_and_nobody_elses(user, dashboard_socket):
    from example_app.auth import SIGNED_OUT_MESSAGE

    alice, bob = user("alice"), user("bob")
    alice_tabs = [dashboard_socket(alice), dashboard_socket(alice)]
    bob_tab = dashboard_socket(bob)

    response = alice.request("POST", "/api/auth/logout")

    assert response.status_code == 204, response.text
    for tab in alice_tabs:
        event, envelope = tab.next_event()
        assert (event, envelope["type"]) == (ERROR, ERROR)
        assert envelope["payload"] == {"code": "SESSION_ENDED", "message": SIGNED_OUT_MESSAGE}
        assert tab.next_event() == (DISCONNECTED, socketio.Client.reason.SERVER_DISCONNECT)
        assert not tab.client.connected
    # Bob's socket got neither: his own next write is the very next thing it receives.
    expect_marker(bob, bob_tab, "Bob's marker set")
    assert bob_tab.client.connected


def test_a_socket_beyond_the_per_user_cap_is_refused_with_its_code(start_server):
    server = start_server(FLASK_DASHBOARD_WS_MAX_SOCKETS_PER_USER="1")
    alice, bob = ApiClient(server, "alice"), ApiClient(server, "bob")
    sockets = [DashboardSocket(server, alice.token)]
    refusals = []
    extra = socketio.Client(reconnection=False)
    extra.on("connect_error", refusals.append, namespace=NAMESPACE)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            extra.connect(server.url, namespaces=[NAMESPACE], transports=["websocket"],
                          auth={"token": alice.token}, wait_timeout=10)
        sockets.append(DashboardSocket(server, bob.token))  # the cap is per user

        # What socket.io-client's connect_error gives the page as err.message and err.data.
        assert refusals == [{"message": "Too many connections", "data": {"code": "TOO_MANY_CONNECTIONS", "limit": 1}}]
        expect_marker(alice, sockets[0], "Alice's marker set")  # the first one is still live
    finally:
        extra.disconnect()
        for sock in sockets:
            sock.close()
