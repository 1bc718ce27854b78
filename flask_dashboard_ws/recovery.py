"""Connection state recovery: the events a tab missed while it reconnected, replayed as socket.io-client expects.

socket.io-client 4.6 and later keeps the ``pid`` that the server's CONNECT reply carried, and the offset that
came as the last argument of each event; its next CONNECT sends both with its ``auth``. With
``DASHBOARD_WS_RECOVERY``, every event to a user is logged for ``DASHBOARD_WS_RECOVERY_WINDOW`` seconds (at most
``DASHBOARD_WS_RECOVERY_MAX_EVENTS`` per user) and goes out with its offset. On a reconnect whose ``pid`` was
issued to the same user, and whose offset nothing has been trimmed after, the missed events are sent in order,
before any new one, and the reply carries the same ``pid``: the client sets ``socket.recovered``. In every
other case, a ``pid`` of another user included, the connection is a new one with a new ``pid``, and the client
re-fetches. The token decides the user, as always. The log lives in this process (one server process).
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from socketio import packet

from .log import logger
from .rooms import USER_ROOM_PREFIX


@dataclass
class _Entry:
    offset: tuple[int, int]
    when: float
    event: str
    args: tuple[Any, str]  # the envelope and its offset, as sent


@dataclass
class _Pid:
    room: str
    since: tuple[int, int]  # the log's newest offset when it was issued: what "no offset yet" means
    expires: float | None = None  # None while its connection is open


@dataclass
class EventLog:
    """Each user's recent events, and the ``pid`` of each connection, in this process."""

    window: float
    max_events: int
    clock: Callable[[], float] = time.time
    _entries: dict[str, collections.deque[_Entry]] = field(default_factory=dict)
    _trimmed: dict[str, tuple[int, int]] = field(default_factory=dict)  # the newest offset dropped, per room
    _pids: dict[str, _Pid] = field(default_factory=dict)
    _last: tuple[int, int] = (0, 0)

    def append(self, room: str, event: str, envelope: Any) -> _Entry:
        """Log an event to ``room``, with the arguments to send: the envelope, then its offset."""
        now = self.clock()
        offset = max((int(now * 1000), 0), (self._last[0], self._last[1] + 1))
        self._last = offset
        entry = _Entry(offset, now, event, (envelope, f"{offset[0]}-{offset[1]}"))
        self._entries.setdefault(room, collections.deque()).append(entry)
        self._trim(room, now)
        return entry

    def issue(self, room: str) -> str:
        pid = secrets.token_urlsafe(16)
        self._pids[pid] = _Pid(room, self._last)
        return pid

    def missed(self, pid: Any, offset: Any, room: str) -> list[_Entry] | None:
        """The events after ``offset`` in ``room``'s log, if ``pid`` was issued to ``room`` and is still valid
        and nothing after the offset was trimmed; else None (a new connection)."""
        now = self.clock()
        self._forget_expired(now)
        record = self._pids.get(pid) if isinstance(pid, str) else None
        if record is None or record.room != room or record.expires is None:
            return None
        base = _parse(offset) if offset is not None else record.since
        if base is None:
            return None
        self._trim(room, now)
        if self._trimmed.get(room, (0, 0)) > base:
            return None
        del self._pids[pid]  # a pid resumes once: the connection that resumes it owns it now
        return [entry for entry in self._entries.get(room, ()) if entry.offset > base]

    def resumed(self, pid: str, room: str) -> None:
        self._pids[pid] = _Pid(room, self._last)

    def closed(self, pid: str) -> None:
        """Its connection ended: it may be resumed for ``window`` seconds."""
        record = self._pids.get(pid)
        if record is not None:
            record.expires = self.clock() + self.window

    def _trim(self, room: str, now: float) -> None:
        entries = self._entries.get(room)
        while entries and (len(entries) > self.max_events or entries[0].when < now - self.window):
            self._trimmed[room] = entries.popleft().offset
        if entries is not None and not entries:
            del self._entries[room]

    def _forget_expired(self, now: float) -> None:
        for pid in [pid for pid, record in self._pids.items() if record.expires is not None and record.expires < now]:
            del self._pids[pid]


class Recovery:
    """Wraps a Socket.IO server's manager ``emit`` and its packet sending: events to users are logged and carry
    their offset, a reconnecting socket's live events wait until its missed ones are out, and the CONNECT reply
    carries the ``pid``."""

    def __init__(self, server: Any, namespace: str, log: EventLog) -> None:
        self.server = server
        self.namespace = namespace
        self.log = log
        self._lock = threading.RLock()  # one order for logging and sending, per process
        self._held: dict[str, list[_Entry]] = {}  # a reconnecting socket's live events, until its replay is out
        self._pids: dict[str, str] = {}  # sid: the pid of its connection
        self._emit = server.manager.emit
        self._send_packet = server._send_packet
        server.manager.emit = self.emit
        server._send_packet = self.send_packet

    def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None, skip_sid: Any = None,
             callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        room = to or room
        if namespace != self.namespace or not (isinstance(room, str) and room.startswith(USER_ROOM_PREFIX)):
            return self._emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback,
                              **kwargs)
        with self._lock:
            entry = self.log.append(room, event, data)
            held = [sid for sid in self._held if sid in self.server.manager.rooms.get(namespace, {}).get(room, ())]
            for sid in held:
                self._held[sid].append(entry)
            skip = ([] if skip_sid is None else list(skip_sid) if isinstance(skip_sid, list) else [skip_sid]) + held
            return self._emit(event, entry.args, namespace=namespace, room=room, skip_sid=skip or None,
                              callback=callback, **kwargs)

    def hold(self, sid: str) -> None:
        """Keep the live events of a connecting socket until :meth:`connected` has sent what it missed."""
        with self._lock:
            self._held[sid] = []

    def connected(self, sid: str, room: str, auth: Any) -> bool:
        """Replay what the socket missed if its ``pid`` and offset allow it, then what was held; set the ``pid``
        of the CONNECT reply. Whether the connection was recovered."""
        pid = auth.get("pid") if isinstance(auth, dict) else None
        offset = auth.get("offset") if isinstance(auth, dict) else None
        with self._lock:
            missed = self.log.missed(pid, offset, room) if pid is not None else None
            sent = _parse(offset) if missed is not None and offset is not None else (0, 0)
            for entry in missed or ():
                self._emit(entry.event, entry.args, namespace=self.namespace, room=sid)
                sent = entry.offset
            for entry in self._held.pop(sid, ()):
                if missed is None or entry.offset > sent:
                    self._emit(entry.event, entry.args, namespace=self.namespace, room=sid)
            if missed is not None:
                self.log.resumed(pid, room)
            else:
                pid = self.log.issue(room)
            self._pids[sid] = pid
        if missed is not None:
            logger.info("connection_recovered", sid=sid, replayed=len(missed))
        return missed is not None

    def disconnected(self, sid: str) -> None:
        with self._lock:
            self._held.pop(sid, None)
            pid = self._pids.pop(sid, None)
            if pid is not None:
                self.log.closed(pid)

    def send_packet(self, eio_sid: str, pkt: Any) -> None:
        """python-socketio's packet sending; the CONNECT reply of this namespace gets the connection's ``pid``."""
        if pkt.packet_type == packet.CONNECT and pkt.namespace == self.namespace and isinstance(pkt.data, dict):
            pid = self._pids.get(pkt.data.get("sid"))
            if pid is not None:
                pkt.data = {**pkt.data, "pid": pid}
        self._send_packet(eio_sid, pkt)


def _parse(offset: Any) -> tuple[int, int] | None:
    """``"<ms>-<n>"`` as a pair that sorts as the log does; None for anything else."""
    if not isinstance(offset, str) or len(offset) > 40:
        return None
    first, _, second = offset.partition("-")
    if not (first.isdigit() and second.isdigit()):
        return None
    return int(first), int(second)
