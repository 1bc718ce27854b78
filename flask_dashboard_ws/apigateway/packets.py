"""The engine.io (v4) and Socket.IO (v5) text packets that socket.io-client exchanges over a WebSocket.

With the Socket.IO server, python-socketio speaks this protocol; on API Gateway each WebSocket message is one
engine.io packet that a Lambda receives or posts, so the few packets the dashboard needs are written here:

* server to client: the open packet ``0{..}``, the ping ``2``, and inside a message (``4``) the namespace's
  CONNECT answer ``40/dashboard,{"sid":..}``, CONNECT_ERROR ``44/dashboard,{"message":..,"data":..}``,
  EVENT ``42/dashboard,["type",{..}]`` and DISCONNECT ``41/dashboard,``;
* client to server: the pong ``3``, CONNECT ``40/dashboard,{auth}`` and DISCONNECT ``41/dashboard,``.

JSON is compact and ASCII, as python-socketio sends it, so a packet's length in characters is its size in bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PING = "2"
PONG = "3"

# Socket.IO packet types, after the engine.io message type "4".
CONNECT = "0"
DISCONNECT = "1"
EVENT = "2"
CONNECT_ERROR = "4"


@dataclass(frozen=True)
class Inbound:
    """A client's packet: its engine.io type, and for a message its Socket.IO type, namespace and data."""

    engineio_type: str
    socketio_type: str | None = None
    namespace: str | None = None
    data: Any = None

    @property
    def is_pong(self) -> bool:
        return self.engineio_type == PONG

    def is_connect(self, namespace: str) -> bool:
        return self.socketio_type == CONNECT and self.namespace == namespace

    @property
    def is_close(self) -> bool:
        """The client leaves: engine.io close, or a namespace DISCONNECT (the WebSocket closes next)."""
        return self.engineio_type == "1" or self.socketio_type == DISCONNECT


class MalformedPacket(ValueError):
    """A text that socket.io-client would never send."""


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _prefix(namespace: str) -> str:
    """``/dashboard,`` before a packet's data; the main namespace ``/`` has none."""
    return "" if namespace == "/" else f"{namespace},"


def open_packet(sid: str, ping_interval: float, ping_timeout: float, max_payload: int) -> str:
    """The engine.io handshake; the client sends nothing until it has it. Times in seconds."""
    handshake = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": round(ping_interval * 1000),
        "pingTimeout": round(ping_timeout * 1000),
        "maxPayload": max_payload,
    }
    return "0" + _dumps(handshake)


def connected(namespace: str, sid: str) -> str:
    return f"4{CONNECT}{_prefix(namespace)}{_dumps({'sid': sid})}"


def connect_error(namespace: str, message: str, data: dict[str, Any] | None = None) -> str:
    error: dict[str, Any] = {"message": message}
    if data is not None:
        error["data"] = data
    return f"4{CONNECT_ERROR}{_prefix(namespace)}{_dumps(error)}"


def event(namespace: str, name: str, data: Any) -> str:
    return f"4{EVENT}{_prefix(namespace)}{_dumps([name, data])}"


def disconnect(namespace: str) -> str:
    return f"4{DISCONNECT}{_prefix(namespace)}"


def event_overhead(namespace: str, name: str) -> int:
    """How many bytes :func:`event` adds around the compact JSON of its data."""
    return len(event(namespace, name, None)) - len("null")


def parse(text: str) -> Inbound:
    """Read one client packet; raises :class:`MalformedPacket`.

    Only the parts the server acts on are decoded: a CONNECT's auth data is JSON, an EVENT's is left alone.
    """
    if not text:
        raise MalformedPacket("empty packet")
    engineio_type, body = text[0], text[1:]
    if engineio_type != "4":
        if engineio_type not in "0123456":
            raise MalformedPacket(f"unknown engine.io packet type {engineio_type!r}")
        return Inbound(engineio_type)
    if not body:
        raise MalformedPacket("empty Socket.IO packet")
    socketio_type, rest = body[0], body[1:]
    namespace = "/"
    if rest.startswith("/"):
        namespace, _, rest = rest.partition(",")
    data = None
    if socketio_type == CONNECT and rest:
        try:
            data = json.loads(rest)
        except ValueError:
            raise MalformedPacket("CONNECT data is not JSON") from None
    return Inbound(engineio_type, socketio_type, namespace, data)
