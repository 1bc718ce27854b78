"""The engine.io and Socket.IO text packets, checked against what python-socketio writes and reads."""

from __future__ import annotations

import json

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from flask_dashboard_ws.apigateway import packets


def socketio_text(packet_type: int, namespace: str, data: object = None) -> str:
    """python-socketio's own encoding, inside an engine.io message."""
    encoded = sio_packet.Packet(packet_type, data=data, namespace=namespace).encode()
    return eio_packet.Packet(eio_packet.MESSAGE, encoded).encode()


def test_server_packets_match_python_socketio() -> None:
    envelope = {"eventId": "e", "type": "dashboard:summaryUpdated", "payload": {"totalMocs": 1, "théme": "ü"}}
    assert packets.event("/dashboard", "dashboard:summaryUpdated", envelope) == socketio_text(
        sio_packet.EVENT, "/dashboard", ["dashboard:summaryUpdated", envelope]
    )
    assert packets.connected("/dashboard", "abc") == socketio_text(sio_packet.CONNECT, "/dashboard", {"sid": "abc"})
    error = {"message": "Authentication failed", "data": {"code": "AUTH_FAILED", "reason": "token_missing"}}
    assert packets.connect_error("/dashboard", error["message"], error["data"]) == socketio_text(
        sio_packet.CONNECT_ERROR, "/dashboard", error
    )
    assert packets.disconnect("/dashboard") == socketio_text(sio_packet.DISCONNECT, "/dashboard")
    assert packets.PING == eio_packet.Packet(eio_packet.PING).encode()


def test_packets_are_ascii_so_characters_are_bytes() -> None:
    text = packets.event("/dashboard", "dashboard:error", {"message": "Größe 🚀"})
    assert text.isascii()


def test_main_namespace_has_no_prefix() -> None:
    assert packets.connected("/", "s") == '40{"sid":"s"}'
    assert packets.disconnect("/") == "41"


def test_open_packet_gives_times_in_milliseconds() -> None:
    text = packets.open_packet("sid1", 300, 120.5, 16384)
    assert text[0] == "0"
    assert json.loads(text[1:]) == {
        "sid": "sid1", "upgrades": [], "pingInterval": 300000, "pingTimeout": 120500, "maxPayload": 16384,
    }


def test_event_overhead_is_the_framing_around_the_data() -> None:
    data = {"a": 1}
    text = packets.event("/dashboard", "dashboard:error", data)
    assert len(text) == packets.event_overhead("/dashboard", "dashboard:error") + len(json.dumps(data, separators=(",", ":")))


@pytest.mark.parametrize(
    ("text", "namespace", "data"),
    [
        ('40/dashboard,{"token":"t"}', "/dashboard", {"token": "t"}),
        ("40/dashboard,", "/dashboard", None),
        ("40/dashboard", "/dashboard", None),
        ('40{"token":"t"}', "/", {"token": "t"}),
    ],
)
def test_parse_connect(text: str, namespace: str, data: object) -> None:
    packet = packets.parse(text)
    assert packet.socketio_type == packets.CONNECT
    assert packet.namespace == namespace
    assert packet.data == data
    assert packet.is_connect(namespace)
    assert not packet.is_connect("/other")


def test_parse_what_socketio_client_sends() -> None:
    assert packets.parse("3").is_pong
    assert packets.parse("41/dashboard,").is_close
    assert packets.parse("1").is_close
    event = packets.parse('42/dashboard,["hello",{}]')
    assert (event.socketio_type, event.namespace, event.data) == (packets.EVENT, "/dashboard", None)
    assert not event.is_pong and not event.is_close


@pytest.mark.parametrize("text", ["", "x", "9", "4", "40/dashboard,{not json"])
def test_parse_refuses_what_no_client_sends(text: str) -> None:
    with pytest.raises(packets.MalformedPacket):
        packets.parse(text)
