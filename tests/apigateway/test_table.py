"""The connections table on dynalite: each step of a connection's life is a conditional write."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest

from flask_dashboard_ws.apigateway import ApiGatewayUnavailable
from flask_dashboard_ws.apigateway.table import CONNECTING, OPEN, READY, REFUSED, ConnectionTable, Handshake
from tests.apigateway.emulator import Dynalite, create_connections_table


@pytest.fixture
def table(dynalite: Dynalite) -> Iterator[ConnectionTable]:
    client = dynalite.client()
    name = f"connections-{uuid.uuid4().hex[:12]}"
    create_connections_table(client, name)
    yield ConnectionTable(client, name, "userId")
    client.close()


def test_a_connections_life(table: ConnectionTable) -> None:
    table.add("c1", 100.0, None)
    assert table.get("c1").status == CONNECTING
    assert table.claim_open("c1", 101.0)
    assert not table.claim_open("c1", 101.5)  # Lambda's second delivery of the same event
    opened = table.get("c1")
    assert (opened.status, opened.pinged_at, opened.user_id) == (OPEN, 101.0, None)
    assert table.of_user("u1") == []  # not in the user index before it has authenticated
    assert table.authenticate("c1", "u1", 5000.0, "sid1")
    assert not table.authenticate("c1", "u2", None, "sid2")  # once only
    ready = table.get("c1")
    assert (ready.status, ready.user_id, ready.expires_at) == (READY, "u1", 5000.0)
    assert table.of_user("u1") == ["c1"] and table.count_of_user("u1") == 1
    assert table.pinged("c1", 160.0) and table.get("c1").pinged_at == 160.0
    removed = table.remove("c1")
    assert removed.user_id == "u1"
    assert table.remove("c1") is None


def test_no_write_after_disconnect_brings_a_connection_back(table: ConnectionTable) -> None:
    table.add("c2", 100.0, None)
    table.remove("c2")  # $disconnect came first
    assert not table.claim_open("c2", 101.0)
    assert not table.authenticate("c2", "u1", None, "sid")
    assert not table.refuse("c2")
    assert not table.pinged("c2", 102.0)
    assert table.count_client_packet("c2") is None
    assert table.get("c2") is None and table.of_user("u1") == []


def test_a_refused_connection_cannot_authenticate_later(table: ConnectionTable) -> None:
    table.add("c3", 100.0, None)
    table.claim_open("c3", 100.0)
    assert table.refuse("c3")
    assert table.get("c3").status == REFUSED
    assert not table.authenticate("c3", "u1", None, "sid")


def test_the_handshake_result_is_kept_without_the_token(table: ConnectionTable, dynalite: Dynalite) -> None:
    table.add("c4", 100.0, Handshake("query_string", user_id="u9", expires_at=900.0))
    table.add("c5", 100.0, Handshake("cookie", reason="token_revoked"))
    assert table.get("c4").handshake == Handshake("query_string", user_id="u9", expires_at=900.0)
    assert table.get("c5").handshake == Handshake("cookie", reason="token_revoked")
    item = table.client.get_item(TableName=table.name, Key={"connectionId": {"S": "c4"}})["Item"]
    assert set(item) == {"connectionId", "status", "connectedAt", "ttl", "handshakeSource", "handshakeUserId",
                         "handshakeExpiresAt"}
    assert int(item["ttl"]["N"]) == 100 + 7200 + 3600


def test_client_packets_are_counted(table: ConnectionTable) -> None:
    table.add("c6", 100.0, None)
    assert [table.count_client_packet("c6") for _ in range(3)] == [1, 2, 3]


def test_a_user_with_many_connections(table: ConnectionTable) -> None:
    for index in range(30):
        table.add(f"m{index}", 100.0, None)
        table.claim_open(f"m{index}", 100.0)
        table.authenticate(f"m{index}", "many" if index % 3 else "other", None, "sid")
    assert sorted(table.of_user("many")) == sorted(f"m{index}" for index in range(30) if index % 3)
    assert table.count_of_user("other") == 10
    assert len(list(table.scan())) == 30


def test_an_unreachable_table_is_an_outage_naming_it() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
                          aws_access_key_id="offline", aws_secret_access_key="offline")
    try:
        with pytest.raises(ApiGatewayUnavailable, match="the connections table 'gone' did not answer query"):
            ConnectionTable(client, "gone", "userId").of_user("u1")
    finally:
        client.close()
