"""Connection state recovery: the events a tab missed while it reconnected, replayed as socket.io-client expects.

socket.io-client 4.6 and later keeps the ``pid`` that the server's CONNECT reply carried, and the offset that
came as the last argument of each event; its next CONNECT sends both with its ``auth``. With
``DASHBOARD_WS_RECOVERY``, every event to a user is logged for ``DASHBOARD_WS_RECOVERY_WINDOW`` seconds (at most
``DASHBOARD_WS_RECOVERY_MAX_EVENTS`` per user) and goes out with its offset. On a reconnect whose ``pid`` was
issued to the same user, and whose offset nothing has been trimmed after, the missed events are sent in order,
before any new one, and the reply carries the same ``pid``: the client sets ``socket.recovered``. In every
other case, a ``pid`` of another user included, the connection is a new one with a new ``pid``, and the client
re-fetches. The token decides the user, as always.

Without a message queue the log is in the process (:class:`EventLog`). With Redis (:class:`RedisEventLog`) it
is a stream per user, written by the same script that publishes the event, and a closed connection's ``pid``
is a key that expires with the window: a tab that reconnects to another process recovers there too. A user's
log, channel and pids share a Redis Cluster hash tag, so the scripts work on a cluster too.
"""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from socketio import packet

from .log import describe, logger
from .queue import DashboardRedisManager, QueueUnavailable, run_script
from .rooms import is_user_room

# Connection state recovery's resume, atomic: KEYS are the closed connection's pid key under the room (so a pid
# of another room's is not found, and stays its owner's) and the room's stream; ARGV the client's offset ("" for
# none: the pid's own). Returns the offset it resumed from and the stream's entries after it if the pid was
# issued to that room and no entry after the offset has been trimmed, else false. The pid is used up either way.
RECOVER = """
local since = redis.call('GET', KEYS[1])
if not since then return false end
redis.call('DEL', KEYS[1])
local base = ARGV[1] ~= '' and ARGV[1] or since
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local bms, bseq = parts(base)
if not bms then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then return {base, {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[2])
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then
    local dms, dseq = parts(info[i + 1])
    if dms and (dms > bms or (dms == bms and dseq > bseq)) then return false end
  end
end
return {base, redis.call('XRANGE', KEYS[2], '(' .. base, '+')}
"""
RECOVER_SHA = hashlib.sha1(RECOVER.encode()).hexdigest()


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
    _swept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)  # emits and connects of several threads

    def append(self, room: str, event: str, envelope: Any, namespace: str) -> _Entry:
        """Log an event to ``room``, with the arguments to send: the envelope, then its offset."""
        with self._lock:
            now = self.clock()
            offset = max((int(now * 1000), 0), (self._last[0], self._last[1] + 1))
            self._last = offset
            entry = _Entry(offset, now, event, (envelope, f"{offset[0]}-{offset[1]}"))
            self._entries.setdefault(room, collections.deque()).append(entry)
            self._trim(room, now)
            self._sweep(now)
            return entry

    def issue(self, room: str) -> str:
        pid = secrets.token_urlsafe(16)
        with self._lock:
            self._pids[pid] = _Pid(room, self._last)
        return pid

    def missed(self, pid: Any, offset: Any, room: str) -> list[_Entry] | None:
        """The events after ``offset`` in ``room``'s log, if ``pid`` was issued to ``room`` and is still valid
        and nothing after the offset was trimmed; else None (a new connection). A pid resumes once: the new
        connection owns it from then on."""
        with self._lock:
            now = self.clock()
            record = self._pids.get(pid) if isinstance(pid, str) else None
            if record is None or record.room != room or record.expires is None or record.expires < now:
                return None
            base = _parse(offset) if offset is not None else record.since
            if base is None:
                return None
            self._trim(room, now)
            if self._trimmed.get(room, (0, 0)) > base:
                return None
            missed = [entry for entry in self._entries.get(room, ()) if entry.offset > base]
            self._pids[pid] = _Pid(room, missed[-1].offset if missed else base)
            return missed

    def closed(self, pid: str) -> None:
        """Its connection ended: it may be resumed for ``window`` seconds."""
        with self._lock:
            now = self.clock()
            record = self._pids.get(pid)
            if record is not None:
                record.expires = now + self.window
            self._sweep(now)

    def _trim(self, room: str, now: float) -> None:
        entries = self._entries.get(room)
        while entries and (len(entries) > self.max_events or entries[0].when < now - self.window):
            self._trimmed[room] = entries.popleft().offset
        if entries is not None and not entries:
            # All past the window: any pid still valid closed after them, so no resume needs the mark either.
            del self._entries[room]
            self._trimmed.pop(room, None)

    def _sweep(self, now: float) -> None:
        """Once a window, drop every room's events past it and the expired pids: the log of users who get no more
        events, and the pids of tabs that never come back, would otherwise stay. A resume checks its own pid."""
        if now - self._swept <= self.window:
            return
        self._swept = now
        for room in list(self._entries):
            self._trim(room, now)
        for pid in [pid for pid, record in self._pids.items() if record.expires is not None and record.expires < now]:
            del self._pids[pid]


class RedisEventLog:
    """Each user's recent events in a Redis stream, and closed connections' ``pid`` keys, through the manager."""

    def __init__(self, manager: DashboardRedisManager, window: float, max_events: int) -> None:
        self.manager = manager
        self.window = window
        self.max_events = max_events
        self._open: dict[str, tuple[str, str | None]] = {}  # pid: its room, and the log's newest offset then
        # Closed connections' pid keys to write, and whether a writer task is on it (see closed()).
        self._closing: list[tuple[str, str]] = []
        self._writing = False
        self._closing_lock = threading.Lock()

    def append(self, room: str, event: str, envelope: Any, namespace: str) -> _Entry:
        """Publish the event to ``room`` and log it, in one script (QueueUnavailable if Redis did not take it)."""
        message = {"method": "emit", "event": event, "data": [envelope], "binary": False, "namespace": namespace,
                   "room": room, "skip_sid": None, "callback": None, "host_id": self.manager.host_id}
        offset = self.manager.publish_logged(message, self.max_events, self.window)
        return _Entry(_parse(offset) or (0, 0), time.time(), event, (envelope, offset))

    def issue(self, room: str) -> str:
        pid = secrets.token_urlsafe(16)
        self._open[pid] = (room, self._head(room))
        return pid

    def missed(self, pid: Any, offset: Any, room: str) -> list[_Entry] | None:
        if not isinstance(pid, str) or (offset is not None and _parse(offset) is None):
            return None
        keys = [self._pid_key(pid, room), self.manager.log_key(room)]
        try:
            found = run_script(self.manager.client(), RECOVER, RECOVER_SHA, 2, (*keys, offset or ""))
        except Exception as exc:  # Redis is away: a new connection, and the client re-fetches
            logger.warning("recovery_unavailable", queue=self.manager.where, error=describe(exc))
            return None
        if found is None:
            return None
        base, entries = found
        missed = [self._entry(entry_id, fields) for entry_id, fields in entries]
        self._open[pid] = (room, missed[-1].args[1] if missed else _text(base))  # the new connection's now
        return missed

    def opened_at(self, pid: str) -> tuple[int, int] | None:
        """The log's newest offset when ``pid``'s connection opened (None if Redis did not say)."""
        return _parse(self._open.get(pid, (None, None))[1])

    def after(self, rooms: dict[str, tuple[int, int]]) -> dict[str, list[_Entry]]:
        """Each room's logged events after its offset, read on a new connection: the listener's catch-up after
        it subscribed again, when the pooled one may be as dead as the subscription was."""
        client = self.manager._client(socket_timeout=self.manager.timeout)
        try:
            pipeline = client.pipeline(transaction=False)  # one round trip for all the rooms
            for room, offset in rooms.items():
                pipeline.xrange(self.manager.log_key(room), min=f"({offset[0]}-{offset[1]}", max="+")
            replies = pipeline.execute()
        finally:
            client.close()
        return {room: [self._entry(entry_id, fields) for entry_id, fields in reply]
                for room, reply in zip(rooms, replies)}

    def closed(self, pid: str) -> None:
        """Its connection ended: keep the pid for ``window`` seconds, for any process to resume.

        Written by a background task, many keys per round trip: a drain or a mass disconnect closes thousands
        of connections at once, and a disconnect (the drain's pacing with it) must not wait on Redis.
        """
        keys = self._keys_of_closed([pid])
        if not keys:
            return
        with self._closing_lock:
            self._closing.extend(keys)
            if self._writing:
                return
            self._writing = True
        self.manager.server.start_background_task(self._write_closed)

    def closed_now(self, pids: list[str]) -> None:
        """:meth:`closed` for several pids, written before this returns (one round trip): a drain's batch."""
        self._write(self._keys_of_closed(pids))

    def _keys_of_closed(self, pids: list[str]) -> list[tuple[str, str]]:
        """The pid keys to write, with their values, of connections that were open here (each pid once)."""
        keys = []
        for pid in pids:
            room, since = self._open.pop(pid, (None, None))
            if room is not None and since is not None:
                keys.append((self._pid_key(pid, room), since))
        return keys

    def _write_closed(self) -> None:
        while True:
            with self._closing_lock:
                batch, self._closing = self._closing, []
                if not batch:
                    self._writing = False
                    return
            self._write(batch)

    def _write(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            return
        try:
            pipeline = self.manager.client().pipeline(transaction=False)
            for key, since in keys:
                pipeline.set(key, since, px=int(self.window * 1000))
            pipeline.execute()
        except Exception as exc:  # these pids cannot be resumed: their clients re-fetch
            logger.warning("recovery_unavailable", queue=self.manager.where, error=describe(exc), pids=len(keys))

    def flush(self, deadline: float) -> None:
        """Wait, until ``deadline`` (``time.monotonic()``), for the closed connections' pid keys to be written:
        a process that is about to end would lose them."""
        while self._writing and time.monotonic() < deadline:
            self.manager.server.sleep(0.01)

    def _head(self, room: str) -> str | None:
        """The newest offset in ``room``'s log ("0-0" for none), or None if Redis did not answer."""
        try:
            newest = self.manager.client().xrevrange(self.manager.log_key(room), count=1)
        except Exception:  # this connection's pid will not be resumable
            return None
        return _text(newest[0][0]) if newest else "0-0"

    def _pid_key(self, pid: str, room: str) -> str:
        return f"{self.manager.channel}:pid:{{{room}}}:{pid}"

    @staticmethod
    def _entry(entry_id: Any, fields: Any) -> _Entry:
        offset = _text(entry_id)
        message = json.loads(fields[b"m"] if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2]))[b"m"])
        return _Entry(_parse(offset) or (0, 0), 0.0, message["event"], (message["data"][0], offset))


class Recovery:
    """Wraps a Socket.IO server's manager ``emit`` and its packet sending: events to users are logged and carry
    their offset, a reconnecting socket's live events wait until its missed ones are out, and the CONNECT reply
    carries the ``pid``."""

    def __init__(self, server: Any, namespace: str, log: EventLog | RedisEventLog) -> None:
        self.server = server
        self.namespace = namespace
        self.log = log
        self._lock = threading.RLock()  # one order for logging and sending, per process
        # Per room, by sid: a connecting socket's live events, until what it missed is out.
        self._held: dict[str, dict[str, list[_Entry]]] = {}
        self._pids: dict[str, str] = {}  # sid: the pid of its connection
        self._rooms: dict[str, str] = {}  # sid: its user's room
        self._seen: dict[str, tuple[int, int]] = {}  # room with sockets here: the newest offset delivered here
        # Per room, by sid: a socket whose replay read the log ahead of this process's listener, and the newest
        # offset it was sent, until the listener's live events pass it (they would send it the same events again).
        self._replayed: dict[str, dict[str, tuple[int, int]]] = {}
        manager = server.manager
        self._emit = manager.emit
        self._send_packet = server._send_packet
        manager.emit = self.emit
        server._send_packet = self.send_packet
        if isinstance(manager, DashboardRedisManager):  # what other processes publish comes through here
            self._handle_emit = manager._handle_emit
            manager._handle_emit = self.handle_emit
            manager.on_subscribed = self.catch_up

    def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None, skip_sid: Any = None,
             callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        room = to or room
        if namespace != self.namespace or not is_user_room(room):
            return self._emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback,
                              **kwargs)
        with self._lock:
            try:
                entry = self.log.append(room, event, data, namespace)
            except QueueUnavailable:  # as without recovery: this process's sockets get it, the caller is told
                self._emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, ignore_queue=True)
                raise
            held = self._hold_for(room, entry)
            self._delivered(room, entry.offset)
            return self._emit(event, entry.args, namespace=namespace, room=room, skip_sid=_listed(skip_sid) + held,
                              callback=callback, ignore_queue=True)

    def handle_emit(self, message: dict[str, Any]) -> Any:
        """An event another process published (with its offset, from the log): held sockets get it later."""
        data, room = message.get("data"), message.get("room")
        offset = _parse(data[-1]) if isinstance(data, list) and len(data) == 2 else None
        if offset is None or message.get("namespace") != self.namespace or not is_user_room(room):
            return self._handle_emit(message)
        with self._lock:
            if room in self._seen and offset <= self._seen[room]:
                return None  # the listener's catch-up delivered it already
            held = self._hold_for(room, _Entry(offset, 0.0, message["event"], (data[0], data[1])))
            self._delivered(room, offset)
            skip = _listed(message.get("skip_sid")) + held + self._replayed_past(room, offset)
            # A tuple is two arguments to every python-socketio version (5.14 would send a list as one).
            message = {**message, "data": (data[0], data[1]), "skip_sid": skip}
            return self._handle_emit(message)

    def catch_up(self) -> None:
        """Once the listener has subscribed again after an outage: deliver, from the log, the events its users'
        sockets here missed meanwhile, in order (the listener reads nothing else until this returns)."""
        if not isinstance(self.log, RedisEventLog):
            return
        with self._lock:
            rooms = dict(self._seen)
        if not rooms:
            return
        try:
            missed = self.log.after(rooms)
        except Exception as exc:  # they stay missed; a tab that reconnects later still recovers them
            logger.warning("catch_up_failed", error=describe(exc))
            return
        with self._lock:
            for room, entries in missed.items():
                for entry in entries:
                    if room in self._seen and entry.offset > self._seen[room]:
                        skip = self._hold_for(room, entry) + self._replayed_past(room, entry.offset)
                        self._emit(entry.event, entry.args, namespace=self.namespace, room=room, skip_sid=skip or None,
                                   ignore_queue=True)
                        self._seen[room] = entry.offset
        logger.info("queue_caught_up", rooms=len(rooms), events=sum(len(entries) for entries in missed.values()))

    def _delivered(self, room: str, offset: tuple[int, int]) -> None:
        if room in self._seen:
            self._seen[room] = max(self._seen[room], offset)

    def _replayed_past(self, room: str, offset: tuple[int, int]) -> list[str]:
        """The sockets in ``room`` whose replay already sent ``offset``; the others' replays are behind it."""
        replayed = self._replayed.get(room)
        if not replayed:
            return []
        for sid in [sid for sid, sent in replayed.items() if offset > sent]:
            del replayed[sid]
        if not replayed:
            del self._replayed[room]
        return list(replayed)

    def _hold_for(self, room: str, entry: _Entry) -> list[str]:
        """The held sockets of ``room``, each given ``entry`` to send later."""
        held = self._held.get(room, {})
        for entries in held.values():
            entries.append(entry)
        return list(held)

    def hold(self, sid: str, room: str) -> None:
        """Keep the live events to ``room`` for a connecting socket until :meth:`connected` has sent what it
        missed (call it before the socket joins the room)."""
        with self._lock:
            self._held.setdefault(room, {})[sid] = []

    def connected(self, sid: str, room: str, auth: Any) -> bool:
        """Replay what the socket missed if its ``pid`` and offset allow it, then what was held; set the ``pid``
        of the CONNECT reply. Whether the connection was recovered."""
        pid = auth.get("pid") if isinstance(auth, dict) else None
        offset = auth.get("offset") if isinstance(auth, dict) else None
        # Outside the lock: with Redis these are round trips, which the listener and the other connects must not
        # wait on. This socket's live events are held meanwhile, and those the replay also has are dropped.
        missed = self.log.missed(pid, offset, room) if pid is not None else None
        if missed is None:
            pid = self.log.issue(room)
        with self._lock:
            sent = _parse(offset) if missed is not None and offset is not None else (0, 0)
            for entry in missed or ():
                self._emit(entry.event, entry.args, namespace=self.namespace, room=sid, ignore_queue=True)
                sent = entry.offset
            if missed and isinstance(self.log, RedisEventLog):
                self._replayed.setdefault(room, {})[sid] = sent
            for entry in _pop(self._held, room, sid) or ():
                if missed is None or entry.offset > sent:
                    self._emit(entry.event, entry.args, namespace=self.namespace, room=sid, ignore_queue=True)
            self._pids[sid] = pid
            self._rooms[sid] = room
            if isinstance(self.log, RedisEventLog) and room not in self._seen:
                self._seen[room] = self.log.opened_at(pid) or (0, 0)
        if missed is not None:
            logger.info("connection_recovered", sid=sid, replayed=len(missed))
        return missed is not None

    def disconnected(self, sid: str) -> None:
        with self._lock:
            pid = self._pids.pop(sid, None)
            room = self._rooms.pop(sid, None)
            if room is not None:
                _pop(self._replayed, room, sid)
            # Called while the socket is still in its room: the last one leaves it now.
            if room is not None and len(self.server.manager.rooms.get(self.namespace, {}).get(room, ())) <= 1:
                self._seen.pop(room, None)
        if pid is not None:
            self.log.closed(pid)

    def flush(self, deadline: float) -> None:
        """Before the process ends (a drain): what the log still has to write, within ``deadline``."""
        if isinstance(self.log, RedisEventLog):
            self.log.flush(deadline)

    def closing(self, eio_sids: list[str]) -> None:
        """A drain is about to close these sessions: write their pids first (one round trip with Redis), so that
        their tabs find them on whichever process they reconnect to, however busy this one is."""
        if not isinstance(self.log, RedisEventLog):
            return
        manager = self.server.manager
        with self._lock:
            pids = [self._pids.get(manager.sid_from_eio_sid(eio_sid, self.namespace)) for eio_sid in eio_sids]
        self.log.closed_now([pid for pid in pids if pid is not None])  # their disconnects find them closed

    def send_packet(self, eio_sid: str, pkt: Any) -> None:
        """python-socketio's packet sending; the CONNECT reply of this namespace gets the connection's ``pid``."""
        if pkt.packet_type == packet.CONNECT and pkt.namespace == self.namespace and isinstance(pkt.data, dict):
            pid = self._pids.get(pkt.data.get("sid"))
            if pid is not None:
                pkt.data = {**pkt.data, "pid": pid}
        self._send_packet(eio_sid, pkt)


def _pop(by_room: dict[str, dict[str, Any]], room: str, sid: str) -> Any:
    """``by_room[room][sid]``, taken out, and the room with it once empty; None if absent."""
    sids = by_room.get(room)
    if sids is None:
        return None
    value = sids.pop(sid, None)
    if not sids:
        del by_room[room]
    return value


def _listed(skip_sid: Any) -> list[Any]:
    return [] if skip_sid is None else list(skip_sid) if isinstance(skip_sid, list) else [skip_sid]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(offset: Any) -> tuple[int, int] | None:
    """``"<ms>-<n>"`` as a pair that sorts as the log does; None for anything else."""
    if not isinstance(offset, str) or len(offset) > 40:
        return None
    first, _, second = offset.partition("-")
    if not (first.isdigit() and second.isdigit()):
        return None
    return int(first), int(second)
