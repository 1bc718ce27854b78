"""The drain's help for servers that wait for their requests before they exit (gunicorn's eventlet worker).

The drain itself, and its SIGTERM handler, are tested against live servers: tests/integration/test_drain.py
and tests/integration/test_gunicorn.py.
"""

from __future__ import annotations

from typing import Any

import eventlet
from eventlet.green import socket

from flask_dashboard_ws.drain import release_parked_readers


def park_reader(sock: Any, seen: list[Any]) -> Any:
    """A green thread reading from ``sock``, as engine.io's WebSocket reader does, parked once this returns."""

    def read() -> None:
        try:
            seen.append(sock.recv(16))
        except Exception as exc:  # what the reader gets when it is woken on a closed socket
            seen.append(type(exc))

    reader = eventlet.spawn(read)
    eventlet.sleep(0)
    return reader


def test_a_reader_parked_on_a_socket_closed_behind_its_back_is_released() -> None:
    """engine.io's writer closes the WebSocket's socket while the reader waits on it: eventlet would leave the
    reader parked until the socket's timeout."""
    closed, peer = socket.socketpair()
    seen: list[Any] = []
    reader = park_reader(closed, seen)
    closed.close()
    try:
        assert release_parked_readers() == 1
        with eventlet.Timeout(5):
            reader.wait()
        assert len(seen) == 1 and isinstance(seen[0], type) and issubclass(seen[0], Exception), seen
    finally:
        peer.close()


def test_a_reader_on_an_open_socket_is_left_alone() -> None:
    open_, peer = socket.socketpair()
    seen: list[Any] = []
    reader = park_reader(open_, seen)
    try:
        assert release_parked_readers() == 0
        peer.sendall(b"still here")
        with eventlet.Timeout(5):
            reader.wait()
        assert seen == [b"still here"]
    finally:
        open_.close()
        peer.close()
