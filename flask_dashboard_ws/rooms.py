"""Who a connection belongs to, and the one room each user's sockets share.

Rooms are chosen only by the server from the verified identity: clients have no event that joins,
leaves or emits to a room, so no socket can ever receive another user's events.
"""

from __future__ import annotations

from typing import Any


def user_id_of(value: Any) -> str:
    """The user id as a room-safe string; ``value`` must be a non-empty string or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a user id must be a non-empty string or an integer, got {type(value).__name__}")
    user_id = str(value)
    if not user_id.strip():
        raise ValueError("a user id must not be empty")
    return user_id


def user_room(user_id: Any) -> str:
    """The room that holds every socket of ``user_id``: ``user:<userId>``."""
    return f"user:{user_id_of(user_id)}"
