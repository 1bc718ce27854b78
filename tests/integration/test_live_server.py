"""The extension in a real server process, driven by python-socketio clients over real WebSockets.

Each test uses its own user ids, so tests sharing a server never see each other's events. To show that a
socket did *not* receive something, a later event is sent to it and must be the next one it receives.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest

from tests.live_server import DISCONNECTED, EVENT_TIMEOUT, NAMESPACE, LiveServer, new_user

pytestmark = pytest.mark.live

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
OTHER_SECRET = "a different secret, the same length as the app's so only the signature differs 0123"

ALLOWED_ORIGIN = "http://dashboard.example.test"
FOREIGN_ORIGIN = "http://evil.example.test"
COOKIES_LISTED_ORIGIN_CONFIG = {"JWT_TOKEN_LOCATION": ["headers", "cookies"], "DASHBOARD_WS_CORS_ALLOWED_ORIGINS": [ALLOWED_ORIGIN]}
COOKIES_ANY_ORIGIN_CONFIG = {"JWT_TOKEN_LOCATION": ["headers", "cookies"], "DASHBOARD_WS_CORS_ALLOWED_ORIGINS": "*"}
AUDIENCE, ISSUER = "dashboard-api", "https://auth.example.test"
AUDIENCE_CONFIG = {
    "JWT_ENCODE_AUDIENCE": AUDIENCE,
    "JWT_DECODE_AUDIENCE": AUDIENCE,
    "JWT_ENCODE_ISSUER": ISSUER,
    "JWT_DECODE_ISSUER": ISSUER,
}

MOC_ID = str(uuid.uuid4())
NEW_MOC = {"title": "Lighthouse", "theme": "Town", "build_status": "ADDED", "cover_image_url": "https://cdn.example.test/l.png"}
SUMMARY = {
    "total_mocs": 12,
    "total_wishlist_items": 3,
    "mocs_by_build_status": {"ADDED": 5, "IN_PROGRESS": 4, "BUILT": 3},
    "mocs_by_coverage_status": {"FULL_INVENTORY": 2, "PARTIAL_ORDERED": 6, "NONE": 4},
}
PARTIAL_PARTS = [
    {
        "id": MOC_ID,
        "title": "Castle tower",
        "theme": "Castle",
        "build_status": "IN_PROGRESS",
        "coverage_percentage": 62.5,
        "last_updated_at": "2024-05-01T10:00:00+02:00",
    }
]
PARTIAL_PARTS_WIRE = [
    {
        "id": MOC_ID,
        "title": "Castle tower",
        "theme": "Castle",
        "buildStatus": "IN_PROGRESS",
        "coveragePercentage": 62.5,
        "lastUpdatedAt": "2024-05-01T08:00:00.000Z",
    }
]


def refused(reason: str) -> dict[str, Any]:
    """What a client's ``connect_error`` handler receives when the server refuses it."""
    return {"message": "Authentication failed", "data": {"code": "AUTH_FAILED", "reason": reason}}


def notify(server: LiveServer, token: str, code: str = "PING") -> dict[str, Any]:
    """Have the app send ``dashboard:error`` to the token's user; return the envelope it sent."""
    return server.emitted("POST", "/api/dashboard/errors", token, {"code": code, "message": f"{code} for the test"})


def assert_joined_own_room(server: LiveServer, sock: Any, token: str) -> None:
    """The socket receives what the app sends to the token's user."""
    envelope = notify(server, token)
    assert sock.next_event() == ("dashboard:error", envelope)


def test_connections_use_a_real_websocket(live_server: LiveServer) -> None:
    user = new_user()
    mark = live_server.log_mark()
    sock = live_server.connect(auth=live_server.token(user))
    assert sock.client.transport() == "websocket"
    line = live_server.wait_for_log(rf"\bconnected\b.*sid={sock.sid}", since=mark)
    assert f"user_id={user}" in line


# Token sources


@pytest.mark.parametrize("source", ["auth", "query", "header"])
def test_each_token_source_authenticates_into_the_users_room(live_server: LiveServer, source: str) -> None:
    token = live_server.token(new_user())
    mark = live_server.log_mark()
    sock = live_server.connect(**{source: token})
    expected_source = {"auth": "auth", "query": "query_string", "header": "header"}[source]
    live_server.wait_for_log(rf"connect_attempt.*sid={sock.sid}.*token_source={expected_source}\b", since=mark)
    assert_joined_own_room(live_server, sock, token)


def test_token_sources_are_tried_in_the_documented_order(live_server: LiveServer) -> None:
    token = live_server.token(new_user())
    # A usable earlier source wins over a broken later one ...
    assert_joined_own_room(live_server, live_server.connect(auth=token, query="broken"), token)
    assert_joined_own_room(live_server, live_server.connect(query=token, header="broken"), token)
    # ... and a broken earlier source is not skipped in favour of a good later one.
    assert live_server.attempt(auth="broken", query=token).connect_error == refused("token_invalid")
    assert live_server.attempt(query="broken", header=token).connect_error == refused("token_invalid")


def test_cookie_authenticates_from_the_apps_own_origin(start_server: Any) -> None:
    server = start_server(COOKIES_ANY_ORIGIN_CONFIG)
    token = server.token(new_user())
    assert_joined_own_room(server, server.connect(cookie=token, origin=server.url), token)


def test_cookie_authenticates_from_a_listed_origin(start_server: Any) -> None:
    # With a list, engine.io admits only the listed origins (the app's own too only if it is listed).
    server = start_server(COOKIES_LISTED_ORIGIN_CONFIG)
    token = server.token(new_user())
    assert_joined_own_room(server, server.connect(cookie=token, origin=ALLOWED_ORIGIN), token)


def test_cookie_is_refused_from_a_foreign_origin_even_when_cors_allows_any(start_server: Any) -> None:
    server = start_server(COOKIES_ANY_ORIGIN_CONFIG)
    token = server.token(new_user())
    sock = server.attempt(cookie=token, origin=FOREIGN_ORIGIN)
    assert sock.connect_error == refused("token_invalid")
    assert not sock.client.connected
    # Only the cookie is origin-bound: the same page may still send the token itself.
    assert_joined_own_room(server, server.connect(auth=token, origin=FOREIGN_ORIGIN), token)


def test_cookie_is_ignored_when_the_app_does_not_read_cookies(live_server: LiveServer) -> None:
    sock = live_server.attempt(cookie=live_server.token(new_user()))
    assert sock.connect_error == refused("token_missing")


# Refusals


def _revoked(server: LiveServer) -> str:
    token = server.token(new_user())
    response = server.request("POST", "/api/logout", token)
    assert response.status_code == 200, response.text
    return token


REFUSALS = [
    pytest.param(lambda s: {}, "token_missing", id="missing"),
    pytest.param(lambda s: {"auth": "not-a-jwt"}, "token_invalid", id="malformed"),
    pytest.param(lambda s: {"auth": 12345}, "token_invalid", id="not-a-string"),
    pytest.param(lambda s: {"headers": {"Authorization": "Token " + s.token(new_user())}}, "token_invalid", id="not-bearer"),
    pytest.param(lambda s: {"auth": s.forge(key=OTHER_SECRET)}, "token_invalid", id="bad-signature"),
    pytest.param(lambda s: {"auth": s.forge(key=None, algorithm="none")}, "token_invalid", id="alg-none"),
    pytest.param(lambda s: {"auth": s.forge(algorithm="HS512")}, "token_invalid", id="wrong-algorithm"),
    pytest.param(
        lambda s: {"auth": s.token(new_user(), expires_delta=timedelta(seconds=-30))}, "token_expired", id="expired"
    ),
    pytest.param(lambda s: {"auth": s.forge(nbf=int(time.time()) + 3600)}, "token_invalid", id="not-yet-valid"),
    pytest.param(lambda s: {"auth": _revoked(s)}, "token_revoked", id="revoked"),
    pytest.param(lambda s: {"auth": s.refresh_token(new_user())}, "wrong_token_type", id="refresh-token"),
    pytest.param(lambda s: {"auth": s.forge(sub="")}, "token_invalid", id="empty-identity"),
]


def test_a_token_forged_with_the_apps_claims_and_key_is_accepted(live_server: LiveServer) -> None:
    """The control for the refusals below: each of them changes one thing about a token like this one."""
    user = new_user()
    sock = live_server.connect(auth=live_server.forge(sub=user))
    assert_joined_own_room(live_server, sock, live_server.token(user))


@pytest.mark.parametrize(("sources", "reason"), REFUSALS)
def test_refusal(live_server: LiveServer, sources: Any, reason: str) -> None:
    sock = live_server.attempt(**sources(live_server))
    assert sock.connect_error == refused(reason)
    assert sock.error is not None
    assert not sock.client.connected
    assert NAMESPACE not in sock.client.namespaces


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"aud": AUDIENCE, "iss": ISSUER}, None, id="control-accepted"),
        pytest.param({"aud": "another-api", "iss": ISSUER}, "token_invalid", id="wrong-audience"),
        pytest.param({"iss": ISSUER}, "token_invalid", id="no-audience"),
        pytest.param({"aud": AUDIENCE, "iss": "https://evil.example.test"}, "token_invalid", id="wrong-issuer"),
        pytest.param({"aud": AUDIENCE}, "token_invalid", id="no-issuer"),
    ],
)
def test_audience_and_issuer_are_enforced(start_server: Any, claims: dict[str, str], reason: str | None) -> None:
    server = start_server(AUDIENCE_CONFIG)
    sock = server.attempt(auth=server.forge(**claims))
    if reason is None:
        assert sock.client.connected, sock.connect_error
    else:
        assert sock.connect_error == refused(reason)
        assert not sock.client.connected


def test_the_apps_own_tokens_pass_its_audience_and_issuer_checks(start_server: Any) -> None:
    server = start_server(AUDIENCE_CONFIG)
    token = server.token(new_user())
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == AUDIENCE
    assert_joined_own_room(server, server.connect(auth=token), token)


# Routing


def test_an_event_reaches_every_socket_of_its_user_and_no_other(live_server: LiveServer) -> None:
    alice, bob = live_server.token(new_user()), live_server.token(new_user())
    alice_tabs = [live_server.connect(auth=alice), live_server.connect(query=alice)]
    bob_tab = live_server.connect(auth=bob)

    event = live_server.emitted("POST", "/api/mocs", alice, NEW_MOC, status=201)
    for tab in alice_tabs:
        assert tab.next_event() == ("dashboard:recentMocAdded", event)

    bobs_first = notify(live_server, bob)
    assert bob_tab.next_event() == ("dashboard:error", bobs_first)  # not alice's event
    alices_next = notify(live_server, alice)
    for tab in alice_tabs:
        assert tab.next_event() == ("dashboard:error", alices_next)  # not bob's event


# Envelopes and payloads


def _recent_moc_payload(payload: dict[str, Any]) -> dict[str, Any]:
    assert uuid.UUID(payload.pop("id")).version == 4
    assert ISO_Z.match(payload.pop("createdAt"))
    return payload


@pytest.mark.parametrize(
    ("method", "path", "body", "event_name", "wire_payload"),
    [
        pytest.param(
            "PUT",
            "/api/dashboard/summary",
            SUMMARY,
            "dashboard:summaryUpdated",
            {
                "totalMocs": 12,
                "totalWishlistItems": 3,
                "mocsByBuildStatus": {"ADDED": 5, "IN_PROGRESS": 4, "BUILT": 3},
                "mocsByCoverageStatus": {"FULL_INVENTORY": 2, "PARTIAL_ORDERED": 6, "NONE": 4},
            },
            id="summaryUpdated",
        ),
        pytest.param(
            "POST",
            "/api/mocs",
            NEW_MOC,
            "dashboard:recentMocAdded",
            {"title": "Lighthouse", "theme": "Town", "buildStatus": "ADDED", "coverImageUrl": "https://cdn.example.test/l.png"},
            id="recentMocAdded",
        ),
        pytest.param(
            "PUT", "/api/dashboard/partial-parts", PARTIAL_PARTS, "dashboard:partialPartsUpdated", PARTIAL_PARTS_WIRE,
            id="partialPartsUpdated",
        ),
        pytest.param(
            "PUT",
            "/api/dashboard/theme-breakdown",
            [{"theme": "Space", "moc_count": 4, "set_count": 9}, {"theme": "Town", "moc_count": 0, "set_count": 1}],
            "dashboard:themeBreakdownUpdated",
            [{"theme": "Space", "mocCount": 4, "setCount": 9}, {"theme": "Town", "mocCount": 0, "setCount": 1}],
            id="themeBreakdownUpdated",
        ),
        pytest.param(
            "POST",
            "/api/dashboard/errors",
            {"code": "IMPORT_FAILED", "message": "The parts list could not be read."},
            "dashboard:error",
            {"code": "IMPORT_FAILED", "message": "The parts list could not be read."},
            id="error",
        ),
    ],
)
def test_every_event_type_arrives_in_its_envelope(
    live_server: LiveServer, method: str, path: str, body: Any, event_name: str, wire_payload: Any
) -> None:
    token = live_server.token(new_user())
    sock = live_server.connect(auth=token)
    returned = live_server.emitted(method, path, token, body, status=201 if path == "/api/mocs" else 200)

    name, envelope = sock.next_event()
    assert name == event_name
    assert envelope == returned
    assert set(envelope) == {"eventId", "type", "timestamp", "payload"}
    assert uuid.UUID(envelope["eventId"]).version == 4
    assert envelope["type"] == event_name
    assert ISO_Z.match(envelope["timestamp"])
    payload = envelope["payload"]
    assert (_recent_moc_payload(payload) if event_name == "dashboard:recentMocAdded" else payload) == wire_payload


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        pytest.param("POST", "/api/mocs", {**NEW_MOC, "title": ""}, "title", id="empty-title"),
        pytest.param("PUT", "/api/dashboard/summary", {**SUMMARY, "total_mocs": -1}, "totalMocs", id="negative-count"),
        pytest.param(
            "PUT", "/api/dashboard/partial-parts", [{**PARTIAL_PARTS[0], "coverage_percentage": 101}], "coveragePercentage",
            id="coverage-over-100",
        ),
    ],
)
def test_an_invalid_payload_fails_the_request_and_sends_nothing(
    live_server: LiveServer, method: str, path: str, body: Any, field: str
) -> None:
    token = live_server.token(new_user())
    sock = live_server.connect(auth=token)

    response = live_server.request(method, path, token, body)
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert field in str(response.json()["messages"])

    later = notify(live_server, token)
    assert sock.next_event() == ("dashboard:error", later)


# Deferred and immediate sends


def test_a_deferred_event_is_sent_once_the_request_has_succeeded(live_server: LiveServer) -> None:
    token = live_server.token(new_user())
    sock = live_server.connect(auth=token)
    mark = live_server.log_mark()

    event = live_server.emitted("POST", "/api/mocs", token, NEW_MOC, status=201)
    assert sock.next_event() == ("dashboard:recentMocAdded", event)
    line = live_server.wait_for_log(rf"event_emitted.*event_id={event['eventId']}", since=mark)
    assert "deferred=True" in line


def test_events_of_a_request_that_raises_are_dropped(live_server: LiveServer) -> None:
    user = new_user()
    token = live_server.token(user)
    sock = live_server.connect(auth=token)
    mark = live_server.log_mark()

    assert live_server.request("POST", "/api/mocs/failing", token, NEW_MOC).status_code == 500
    line = live_server.wait_for_log(rf"event_dropped.*user_id={user}", since=mark)
    assert "reason=request_failed" in line
    assert "type=dashboard:recentMocAdded" in line

    later = live_server.emitted("POST", "/api/mocs", token, NEW_MOC, status=201)
    assert sock.next_event() == ("dashboard:recentMocAdded", later)  # the dropped one never came


def test_an_event_sent_with_defer_false_arrives_even_if_the_request_then_fails(live_server: LiveServer) -> None:
    user = new_user()
    token = live_server.token(user)
    sock = live_server.connect(auth=token)
    mark = live_server.log_mark()

    assert live_server.request("POST", "/api/imports?fail=1", token, PARTIAL_PARTS).status_code == 500
    name, envelope = sock.next_event()
    assert (name, envelope["payload"]) == ("dashboard:partialPartsUpdated", PARTIAL_PARTS_WIRE)
    line = live_server.wait_for_log(rf"event_emitted.*event_id={envelope['eventId']}", since=mark)
    assert "deferred=False" in line


# Token expiry


def test_a_socket_is_told_and_disconnected_when_its_token_expires(live_server: LiveServer) -> None:
    user = new_user()
    short = live_server.token(user, expires_delta=timedelta(seconds=4))
    expires_at = jwt.decode(short, options={"verify_signature": False})["exp"]
    expiring = live_server.connect(auth=short)
    lasting = live_server.connect(auth=live_server.token(user))

    name, envelope = expiring.next_event(timeout=4 + EVENT_TIMEOUT)
    assert time.time() >= expires_at
    assert name == "dashboard:error"
    assert envelope["type"] == "dashboard:error"
    assert envelope["payload"]["code"] == "TOKEN_EXPIRED"
    assert ISO_Z.match(envelope["timestamp"]) and uuid.UUID(envelope["eventId"]).version == 4
    assert expiring.next_event()[0] == DISCONNECTED
    assert not expiring.client.connected

    # The user's other socket, whose token is still valid, stays connected.
    later = notify(live_server, live_server.token(user))
    assert lasting.next_event() == ("dashboard:error", later)


# Client events


def test_client_events_are_dropped_and_a_socket_that_keeps_sending_them_is_closed(live_server: LiveServer) -> None:
    alice_id, bob_id = new_user(), new_user()
    alice, bob = live_server.token(alice_id), live_server.token(bob_id)
    alice_tab, alice_other_tab = live_server.connect(auth=alice), live_server.connect(auth=alice)
    bob_tab = live_server.connect(auth=bob)
    fake = {
        "eventId": str(uuid.uuid4()),
        "type": "dashboard:error",
        "timestamp": "2024-01-01T00:00:00.000Z",
        "payload": {"code": "PWNED", "message": "sent by a client"},
    }
    attempts = {
        "join": {"room": f"user:{bob_id}"},
        "leave": {"room": f"user:{alice_id}"},
        "emit": {"to": f"user:{bob_id}", "event": "dashboard:error", "data": fake},
        "dashboard:error": fake,
        "connect": {"token": bob},  # a second "connect" must not re-authenticate as bob
        "disconnect": None,  # a fake "disconnect" must not disconnect
    }
    mark = live_server.log_mark()
    for event, data in attempts.items():
        alice_tab.client.emit(event, data, namespace=NAMESPACE)
    # Past DASHBOARD_WS_MAX_CLIENT_EVENTS (10) the server closes the session; packets are handled in order,
    # so by then every attempt above has been handled (dropped).
    for number in range(10):
        alice_tab.client.emit("flood", number, namespace=NAMESPACE)
    assert alice_tab.next_event()[0] == DISCONNECTED
    line = live_server.wait_for_log(r"session_limited.*reason=client_events", since=mark)
    assert "events=11" in line
    assert not re.search(r"client_event_ignored|Traceback", live_server.log_since(mark))

    bobs = notify(live_server, bob)
    alices = notify(live_server, alice)
    assert bob_tab.next_event() == ("dashboard:error", bobs)  # nothing from alice's "emit"s
    assert alice_other_tab.next_event() == ("dashboard:error", alices)
    assert alice_other_tab.client.connected and bob_tab.client.connected


# Logs


def test_the_log_records_connections_and_refusals_but_never_a_token(live_server: LiveServer) -> None:
    user = new_user()
    mark = live_server.log_mark()
    tabs = [
        live_server.connect(auth=live_server.token(user)),
        live_server.connect(query=live_server.token(user)),
        live_server.connect(header=live_server.token(user)),
    ]
    for tab in tabs:
        assert f"user_id={user}" in live_server.wait_for_log(rf"\bconnected\b.*sid={tab.sid}", since=mark)
    expired = live_server.token(user, expires_delta=timedelta(seconds=-30))
    assert live_server.attempt(query=expired).connect_error == refused("token_expired")
    live_server.wait_for_log(r"auth_failed.*reason=token_expired.*token_source=query_string", since=mark)
    assert live_server.attempt(header=live_server.forge(key=OTHER_SECRET)).connect_error == refused("token_invalid")
    live_server.wait_for_log(r"auth_failed.*reason=token_invalid.*token_source=header", since=mark)
    sid = tabs[0].sid
    tabs[0].client.disconnect()
    live_server.wait_for_log(rf"disconnected.*sid={sid}.*user_id={user}", since=mark)

    assert live_server.tokens  # every token made for this server so far, by this test and earlier ones
    assert live_server.leaked_tokens() == []
