"""The WebSocket handlers under serverless-offline, driven by the unchanged official socket.io-client."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import websocket
from structlog.testing import capture_logs

from flask_dashboard_ws import EventTooLarge
from tests.apigateway.conftest import WAIT, AwsService, assert_closed_by_server, wait_until

# Pings every 20 s with 20 s of grace: no test here lasts long enough to need the sweeper's pings.
CONFIG = {
    "DASHBOARD_WS_APIGATEWAY_PING_INTERVAL": 20,
    "DASHBOARD_WS_APIGATEWAY_PING_TIMEOUT": 20,
    "DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL": 1,
}


def test_client_connects_and_receives_an_event_emitted_by_another_process(service: AwsService) -> None:
    client = service.connect(service.token("alice"))
    client.wait_connected()
    emitted = service.emit_from_another_process("alice", 3)
    assert emitted.returncode == 0, emitted.stderr
    event = client.wait_kind("event")
    assert event["name"] == "dashboard:summaryUpdated"
    assert event["envelope"]["payload"]["totalMocs"] == 3


@pytest.mark.parametrize(
    ("reason", "make_token"),
    [
        ("token_missing", lambda service: "-"),
        ("token_invalid", lambda service: "not-a-jwt"),
        ("token_expired", lambda service: service.token("dave", expires=timedelta(seconds=-5))),
        ("wrong_token_type", lambda service: service.token("dave", refresh=True)),
        ("token_revoked", lambda service: revoked(service, service.token("dave"))),
    ],
)
def test_every_auth_failure_is_a_connect_error_that_ends_the_attempts(service: AwsService, reason, make_token) -> None:
    client = service.connect(make_token(service))
    error = client.wait_kind("connect_error")
    assert error["message"] == "Authentication failed"
    assert error["data"] == {"code": "AUTH_FAILED", "reason": reason}
    # socket.io-client gives up after CONNECT_ERROR and closes the WebSocket: $disconnect deletes the item.
    wait_until(lambda: not service.items(), "the refused connection's item to be deleted")  # the only client
    assert not client.kinds("connect")


def revoked(service: AwsService, token: str) -> str:
    service.revoke(token)
    return token


def test_users_get_only_their_own_events_in_every_tab(service: AwsService) -> None:
    alice = service.connect(service.token("alice"), tabs=3)
    bob = service.connect(service.token("bob"), tabs=2)
    alice.wait_connected(3)
    bob.wait_connected(2)
    to_alice = service.emit_summary("alice", 1)
    to_bob = service.emit_summary("bob", 2)
    for tab in range(3):
        assert alice.wait_kind("event", tab)["envelope"] == to_alice
    for tab in range(2):
        # bob's first event in each tab is bob's: nothing of alice's came before it
        assert bob.wait_kind("event", tab)["envelope"] == to_bob
    to_alice_again = service.emit_summary("alice", 3)
    for tab in range(3):
        assert alice.wait_kind("event", tab)["envelope"] == to_alice_again
    assert [seen["envelope"]["eventId"] for seen in bob.kinds("event")] == [to_bob["eventId"]] * 2


def test_a_connection_that_answers_410_is_deleted_and_the_others_still_get_the_event(service: AwsService) -> None:
    client = service.connect(service.token("carol"))
    client.wait_connected()
    stale = str(uuid.uuid4())  # its $disconnect never came: API Gateway answers 410 for it
    service.dynamodb.put_item(TableName=service.table, Item={
        "connectionId": {"S": stale}, "status": {"S": "ready"}, "userId": {"S": "carol"},
        "connectedAt": {"N": str(time.time())}, "sid": {"S": "stale"},
    })
    with capture_logs() as logs:
        envelope = service.emit_summary("carol", 4)
    assert client.wait_kind("event")["envelope"] == envelope
    assert stale not in {item["connectionId"]["S"] for item in service.items()}
    assert {"event": "connection_gone", "connection_id": stale, "user_id": "carol", "log_level": "info"} in logs


def test_an_envelope_over_the_128_kb_message_limit_is_refused_before_anything_is_sent(start_service, close_clients) -> None:
    service = close_clients(start_service({**CONFIG, "DASHBOARD_WS_MAX_EVENT_BYTES": 256 * 1024}))
    client = service.connect(service.token("erin"))
    client.wait_connected()
    with service.app.app_context(), pytest.raises(EventTooLarge, match="over API Gateway's 128 KB message limit"):
        service.dashboard.emit_error("erin", "BIG", "x" * 131_000)
    small = service.emit_summary("erin", 1)
    assert client.wait_kind("event")["envelope"] == small  # the first event to arrive is the small one


def test_disconnect_user_ends_every_tab_with_session_ended(service: AwsService) -> None:
    client = service.connect(service.token("frank"), tabs=2)
    client.wait_connected(2)
    with service.app.app_context():
        envelope = service.dashboard.disconnect_user("frank", "Signed out.")
    for tab in range(2):
        assert client.wait_kind("event", tab)["envelope"] == envelope
        assert client.wait_kind("disconnect", tab)["reason"] == "io server disconnect"
    assert envelope["payload"] == {"code": "SESSION_ENDED", "message": "Signed out."}
    wait_until(lambda: not [item for item in service.items() if item.get("userId", {}).get("S") == "frank"],
               "frank's items to be deleted")


# -- what a client that is not socket.io-client may send (websocket-client, speaking the protocol by hand)


def raw_connect(service: AwsService, query: str = "", **options) -> websocket.WebSocket:
    """A WebSocket to the API, once the server has spoken first (the engine.io open packet)."""
    ws = websocket.create_connection(f"{service.offline.websocket_url}?EIO=4&transport=websocket{query}",
                                     timeout=WAIT, **options)
    opened = ws.recv()
    assert opened.startswith("0{"), opened
    return ws


def test_the_open_packet_tells_the_client_the_heartbeat_and_the_payload_limit(service: AwsService) -> None:
    ws = websocket.create_connection(f"{service.offline.websocket_url}?EIO=4&transport=websocket", timeout=WAIT)
    try:
        opened = json.loads(ws.recv()[1:])
    finally:
        ws.close()
    assert opened["upgrades"] == [] and len(opened["sid"]) >= 20
    assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (20000, 20000, 16384)


def test_a_token_in_the_query_string_is_checked_at_connect_and_used_for_the_connect_packet(service: AwsService) -> None:
    ws = raw_connect(service, f"&token={service.token('gina')}")
    try:
        ws.send("40/dashboard,")
        answer = ws.recv()
        assert answer.startswith('40/dashboard,{"sid":"'), answer
        envelope = service.emit_summary("gina", 5)
        assert ws.recv() == '42/dashboard,["dashboard:summaryUpdated",' + json.dumps(envelope, separators=(",", ":")) + "]"
    finally:
        ws.close()


def test_a_bad_token_in_the_query_string_is_refused_on_the_connect_packet(service: AwsService) -> None:
    ws = raw_connect(service, "&token=garbage")
    try:
        ws.send("40/dashboard,")
        assert json.loads(ws.recv()[len("44/dashboard,"):]) == {
            "message": "Authentication failed", "data": {"code": "AUTH_FAILED", "reason": "token_invalid"}
        }
    finally:
        ws.close()


def test_the_auth_payload_wins_over_the_query_string(service: AwsService) -> None:
    ws = raw_connect(service, "&token=garbage")
    try:
        ws.send("40/dashboard," + json.dumps({"token": service.token("hank")}))
        assert ws.recv().startswith('40/dashboard,{"sid":"')
    finally:
        ws.close()


def test_another_namespace_is_refused(service: AwsService) -> None:
    ws = raw_connect(service)
    try:
        ws.send("40/admin,")
        assert ws.recv() == '44/admin,{"message":"Invalid namespace"}'
    finally:
        ws.close()


def test_a_foreign_origin_is_refused_at_connect(service: AwsService) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{service.offline.websocket_url}?EIO=4&transport=websocket",
                                    timeout=WAIT, origin="https://evil.example")
    assert refused.value.status_code == 403
    # the WebSocket API's own origin passes (DASHBOARD_WS_CORS_ALLOWED_ORIGINS is None: same origin only)
    raw_connect(service, origin=service.offline.connections_endpoint).close()


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        (lambda ws: ws.send_binary(b"\x04binary"), "binary_message"),
        (lambda ws: ws.send("42/dashboard," + json.dumps(["x", "y" * 17_000])), "message_too_large"),
        (lambda ws: [ws.send('42/dashboard,["hello",{}]') for _ in range(11)], "client_events"),
    ],
)
def test_what_a_client_may_not_send_closes_its_connection(service: AwsService, send, reason: str) -> None:
    ws = raw_connect(service)
    ws.send("40/dashboard," + json.dumps({"token": service.token("ivan")}))
    assert ws.recv().startswith("40/dashboard,")
    try:
        send(ws)
        assert_closed_by_server(ws)
    finally:
        ws.shutdown()  # close() does nothing once the server has closed the connection
    wait_until(lambda: not [item for item in service.items() if item.get("userId", {}).get("S") == "ivan"],
               "ivan's item to be deleted")


def test_a_cookie_authenticates_only_from_an_allowed_origin(start_service, close_clients) -> None:
    """With any origin allowed to connect, a cookie still authenticates only from the API's own origin or a
    listed one: another site's page could make the browser send it (cross-site WebSocket hijacking)."""
    service = close_clients(start_service({
        **CONFIG, "DASHBOARD_WS_CORS_ALLOWED_ORIGINS": "*", "JWT_TOKEN_LOCATION": ["headers", "cookies"],
    }))
    cookie = f"access_token_cookie={service.token('jo')}"
    # API Gateway is TLS only: its own origin is https://, also where the emulator serves plain ws://
    own_origin = service.offline.connections_endpoint.replace("http://", "https://")
    for origin, answer in [("https://evil.example", "44"), (None, "40"), (own_origin, "40")]:
        ws = raw_connect(service, cookie=cookie, **({"origin": origin} if origin else {"suppress_origin": True}))
        try:
            ws.send("40/dashboard,")
            reply = ws.recv()
        finally:
            ws.close()
        assert reply.startswith(answer + "/dashboard,"), (origin, reply)
        if answer == "44":
            assert json.loads(reply[len("44/dashboard,"):])["data"] == {"code": "AUTH_FAILED", "reason": "token_invalid"}


def test_a_bearer_header_authenticates(service: AwsService) -> None:
    ws = raw_connect(service, header=[f"Authorization: Bearer {service.token('kit')}"])
    try:
        ws.send("40/dashboard,")
        assert ws.recv().startswith('40/dashboard,{"sid":"')
    finally:
        ws.close()
