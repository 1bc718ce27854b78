"""Who a connection belongs to, the one room each user's sockets share, and the room bookkeeping.

Rooms are chosen only by the server from the verified identity: clients have no event that joins,
leaves or emits to a room, so no socket can ever receive another user's events.
"""

from __future__ import annotations

from typing import Any

import socketio


def user_id_of(value: Any) -> str:
    """The user id as a room-safe string; ``value`` must be a non-empty string or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a user id must be a non-empty string or an integer, got {type(value).__name__}")
    user_id = str(value)
    if not user_id.strip():
        raise ValueError("a user id must not be empty")
    return user_id


# The prefix of every user's room (user_room), which nothing else starts with.
USER_ROOM_PREFIX = "user:"


def user_room(user_id: Any) -> str:
    """The room that holds every socket of ``user_id``: ``user:<userId>``."""
    return f"{USER_ROOM_PREFIX}{user_id_of(user_id)}"


def is_user_room(room: Any) -> bool:
    """Whether ``room`` is a user's room (as :func:`user_room` names them)."""
    return isinstance(room, str) and room.startswith(USER_ROOM_PREFIX)


def disconnect_room(manager: Any, room: str, namespace: str) -> None:
    """Disconnect every socket of this process that is in ``room`` (``disconnect_user``), with any manager."""
    for sid, _ in list(manager.get_participants(namespace, room)):
        manager.server.disconnect(sid, namespace=namespace, ignore_queue=True)


class RoomIndexMixin:
    """Remembers the rooms of each socket, so that its disconnect leaves them without scanning every room.

    python-socketio's ``basic_disconnect`` copies and scans all rooms of the namespace to find a socket's
    own; with a room per user and one per socket, that is O(sockets) per disconnect and O(sockets²) when
    they all go at once (a deploy, a network blip): 19,500 sockets kept a server busy for minutes. Mix
    this in before a python-socketio manager class; the bookkeeping matches ``basic_disconnect`` of
    python-socketio 5.14 to 5.18, which the tests compare with the stock manager's.
    """

    rooms: dict[str, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def end_room(self, room: str, namespace: str) -> None:
        """Disconnect every socket of this process that is in ``room`` (the Redis manager adds the others)."""
        disconnect_room(self, room, namespace)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        # pending_connect is python-socketio 5.18's; older versions have only pending_disconnect.
        for pending in (getattr(self, "pending_connect", {}), self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]


class DashboardManager(RoomIndexMixin, socketio.Manager):
    """python-socketio's in-process manager with :class:`RoomIndexMixin` (no message queue)."""
