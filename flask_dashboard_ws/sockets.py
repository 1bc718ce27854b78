"""Lean engine.io sockets: one heartbeat task per process, and sends written in place.

python-engineio gives every WebSocket two green threads besides the one reading it: a writer, parked on the
socket's queue with a 45 s timeout armed again at each wake-up, and a ping task, spawned again after every
pong to sleep for the ping interval; its service task also wakes once per socket per ping timeout to check
for a late pong. At 19,500 sockets that is ~16 KB of parked stacks per socket and ~2,000 wake-ups a second
while nothing happens, and each delivered event costs a queue put, a switch to the writer and a timer.

:class:`LeanSocket` keeps engine.io's protocol and replaces that machinery under eventlet and gevent:

* an event is framed once per emit (python-socketio shares one engine.io packet among a room's sockets: all
  the tabs of a user) and written by the emitting green thread straight to the non-blocking socket while
  nothing is waiting to go out on it. Only when the kernel's buffer is full does a writer green thread
  start; it sends what is left, in order, then ends. A slow reader still fills the socket's queue, which
  ``DASHBOARD_WS_MAX_OUTGOING_BYTES`` bounds as before;
* :class:`Heartbeat`, one task per engine.io server, pings the sockets that are due and closes those whose
  pong is late, which also makes engine.io's service task unnecessary. As it ends a silent connection, the
  green thread reading a WebSocket waits without a timeout (no timer per packet received);
* Nagle's algorithm is turned off on each WebSocket's connection (:func:`no_delay`), as Node's ``ws`` does.

Green threads do not switch between checking that nothing is pending and the non-blocking write, so the
order of a socket's packets is kept without a lock. Sockets reached by long-polling, upgraded from it, or
served by simple-websocket (the threading mode) keep engine.io's queue and writer; every socket uses the
heartbeat. engine.io creates its sockets itself (``socket.Socket(self, sid)``) with no factory to pass, so
:func:`adopt` gives a new socket this class from the server's ``connect`` event, before any transport runs.
"""

from __future__ import annotations

import collections
import struct
import threading
import time
from socket import AF_INET, AF_INET6, IPPROTO_TCP, SHUT_RDWR, TCP_NODELAY
from typing import Any

from engineio import packet as eio_packet
from engineio.exceptions import SocketIsClosedError, UnknownPacketError
from engineio.socket import Socket

# Shortest sleep of the heartbeat task: pings due within it go out together (at most this late).
HEARTBEAT_TICK = 0.05

# A WebSocket close frame without a status (RFC 6455: FIN + opcode 8, no payload).
CLOSE_FRAME = b"\x88\x00"

# The attribute of an engine.io packet that holds its WebSocket frame, built once for all its recipients.
_FRAME = "_dashboard_ws_frame"


def frame(pkt: Any) -> bytes:
    """The WebSocket frame (RFC 6455, unmasked, one fragment) of an engine.io packet, cached on the packet."""
    cached = getattr(pkt, _FRAME, None)
    if cached is not None:
        return cached
    encoded = pkt.encode()
    if isinstance(encoded, str):
        payload, opcode = encoded.encode("utf-8"), 0x81  # FIN + text
    else:
        payload, opcode = bytes(encoded), 0x82  # FIN + binary
    size = len(payload)
    if size < 126:
        header = bytes((opcode, size))
    elif size < 65536:
        header = struct.pack("!BBH", opcode, 126, size)
    else:
        header = struct.pack("!BBQ", opcode, 127, size)
    data = header + payload
    setattr(pkt, _FRAME, data)
    return data


def green_and_raw(ws: Any) -> tuple[Any, Any] | None:
    """The green socket under an engine.io WebSocket and the OS socket under that, where they can be found.

    They can under eventlet's ``RFC6455WebSocket`` and gevent-websocket's ``WebSocket`` (behind engine.io's
    wrapper), and under simple-websocket's, whose socket is both (threading); None elsewhere.
    """
    simple = getattr(getattr(ws, "ws", None), "sock", None)  # engine.io's wrapper of a simple-websocket Server
    if simple is not None and hasattr(simple, "settimeout"):
        return simple, simple
    inner = getattr(ws, "_sock", None)
    handler = getattr(inner, "handler", None)
    green = getattr(handler, "socket", None) if handler is not None else getattr(ws, "socket", None)
    raw = getattr(green, "fd", None) or getattr(green, "_sock", None)  # eventlet's GreenSocket, gevent's socket
    if raw is None or not hasattr(raw, "send"):
        return None
    return green, raw


def writable_in_place(ws: Any, raw: Any) -> bool:
    """Whether a WebSocket whose OS socket is ``raw`` can be written in place: no extension negotiated (the
    extension declines compression) and a non-blocking socket (eventlet's and gevent's, not threading's)."""
    return not getattr(ws, "extensions", None) and raw.gettimeout() == 0.0  # eventlet's permessage-deflate


def no_delay(raw: Any) -> None:
    """Turn Nagle's algorithm off on a WebSocket's TCP connection, as Node's ``ws`` does.

    Each event is written whole, so Nagle's algorithm coalesces nothing useful: it only holds a small frame
    back while the previous one is unacknowledged, and the client's delayed ACK makes that up to 40 ms.
    """
    if raw.family in (AF_INET, AF_INET6):
        raw.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)


class Heartbeat:
    """Pings every socket of one engine.io server when due and closes those whose pong is late, in one task.

    Every socket waits the same ``ping_interval`` for its next ping and the same ``ping_timeout`` for its pong,
    so appending to a deque keeps each in due order, and the task sleeps until the first entry is due.
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self._pings: collections.deque[tuple[float, Socket]] = collections.deque()
        self._pongs: collections.deque[tuple[float, Socket, float]] = collections.deque()
        self._start_lock = threading.Lock()
        self._task: Any = None

    def schedule(self, socket: Socket) -> None:
        """Ping ``socket`` one ping interval from now."""
        self._pings.append((time.monotonic() + self.server.ping_interval, socket))
        if self._task is None:
            with self._start_lock:
                if self._task is None:
                    self._task = self.server.start_background_task(self._run)

    def _run(self) -> None:
        while True:
            self.server.sleep(self._beat(time.monotonic()))

    def _beat(self, now: float) -> float:
        """Send the pings due, close the sockets whose pong is late; the seconds until the next entry is due."""
        pings, pongs = self._pings, self._pongs
        while pings and pings[0][0] <= now:
            self._ping(pings.popleft()[1], now)
        while pongs and pongs[0][0] <= now:
            _, socket, sent = pongs.popleft()
            if socket.last_ping == sent:
                self._gone(socket, now)
        heads = [entries[0][0] for entries in (pings, pongs) if entries]
        wait = min(heads) - now if heads else min(self.server.ping_interval, self.server.ping_timeout)
        return max(HEARTBEAT_TICK, wait)

    def _ping(self, socket: Socket, now: float) -> None:
        if socket.closing or socket.closed:
            self._forget(socket, now)
            return
        socket.last_ping = sent = time.time()
        self._pongs.append((now + self.server.ping_timeout, socket, sent))
        try:
            socket.send(eio_packet.Packet(eio_packet.PING))
        except Exception as exc:  # a socket closing meanwhile; one socket must not stop the heartbeat
            self.server.logger.info("%s: ping not sent: %s", socket.sid, exc)

    def _gone(self, socket: Socket, now: float) -> None:
        """engine.io's ping timeout: the CLOSE packet puts a half-open connection in its right state."""
        if not (socket.closing or socket.closed):
            self.server.logger.info("%s: Client is gone, closing socket", socket.sid)
            socket.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
        self._forget(socket, now)

    def _forget(self, socket: Socket, now: float) -> None:
        """Remove a closed session from the server, as engine.io's service task did.

        The request of its transport removes it too, but not always: a polling client that went away sends no
        more requests, and simple-websocket (threading) raises past engine.io's removal under Werkzeug and
        gunicorn. A session still closing (in another thread) is looked at again one ping interval later.
        """
        if not socket.closed:
            self._pings.append((now + self.server.ping_interval, socket))
        elif self.server.sockets.get(socket.sid) is socket:
            self.server.sockets.pop(socket.sid, None)


class LeanSocket(Socket):
    """engine.io's socket, pinged by the :class:`Heartbeat` and written in place on a direct WebSocket."""

    heartbeat: Heartbeat
    # Set while a direct WebSocket is open: the green socket (blocking writes) and the OS socket under it.
    _green: Any = None
    _raw: Any = None
    _partial = b""  # the rest of a frame the OS socket took only in part; it goes out first
    _writer: Any = None  # the writer task, while one runs
    _ws_closed = False

    @property
    def queue(self) -> Any:
        """engine.io's queue of packets waiting to go out, created when first needed.

        A WebSocket written in place releases it whenever it is empty (:meth:`_write_backlog`), which saves
        about 2.5 KB per open socket; :func:`queued` looks at it without creating one.
        """
        waiting = queued(self)
        if waiting is None:
            waiting = self.__dict__["queue"] = self.server.create_queue()
        return waiting

    @queue.setter
    def queue(self, waiting: Any) -> None:
        self.__dict__["queue"] = waiting

    def schedule_ping(self) -> None:
        if self.last_ping:  # as engine.io: one ping waiting at a time, rescheduled by its pong
            self.last_ping = None
            self.heartbeat.schedule(self)

    def send(self, pkt: Any) -> None:
        if self._raw is None:
            super().send(pkt)
            return
        if not self.check_ping_timeout():
            return
        self.server.logger.info("%s: Sending packet %s data %s", self.sid, eio_packet.packet_names[pkt.packet_type],
                                pkt.data if not isinstance(pkt.data, bytes) else "<binary>")
        waiting = queued(self)
        if self._writer is not None or self._partial or (waiting is not None and waiting.qsize()) or self._ws_closed:
            self.queue.put(pkt)  # behind what waits, in order; after the WebSocket closed, dropped by the writer
            return
        data = frame(pkt)
        try:
            sent = self._raw.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the connection is gone: the writer's blocking send fails too, and ends the transport
            self.queue.put(pkt)
            self._start_writer()
            return
        if sent < len(data):
            self._partial = data[sent:]
            self._start_writer()

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self._raw is None:
            super().close(wait=wait, abort=abort, reason=reason)
            return
        if self.closed or self.closing:
            return
        super().close(wait=False, abort=abort, reason=reason)  # the CLOSE packet, then None: the end of the queue
        self._start_writer()
        if wait:
            self.queue.join()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = self.server.start_background_task(self._write_backlog)

    def _write_backlog(self) -> None:
        """Send the rest of a partly sent frame, then the queue, with blocking writes; close the WebSocket at None.

        The queue is emptied even when the WebSocket has closed, so that ``close(wait=True)`` returns. A write
        that a stalled reader blocks fails after a ping cycle, as engine.io's, which ends the transport; reads
        wait without a timeout, so that no timer is armed and cancelled for every packet a client sends: the
        :class:`Heartbeat` closes a silent socket, and :meth:`_close_ws` wakes its reader.
        """
        queue_empty = self.server.get_queue_empty_exception()
        self._green.settimeout(self._ping_cycle())
        try:
            while True:
                if self._partial and not self._ws_closed:
                    self._green.sendall(self._partial)
                self._partial = b""
                try:
                    pkt = self.queue.get(block=False)
                except queue_empty:
                    del self.__dict__["queue"]  # nothing waits: the next packet that must wait creates one
                    return
                self.queue.task_done()
                if pkt is None:
                    self._close_ws()
                    return
                if not self._ws_closed:  # else it is dropped, as a closed transport drops it
                    self._green.sendall(frame(pkt))
        except Exception:  # as engine.io's writer: a failed send ends the transport
            self._partial = b""
            self._close_ws()
        finally:
            self._green.settimeout(None)
            self._writer = None

    def _close_ws(self) -> None:
        """Send the WebSocket's close frame and shut the connection down both ways, which wakes the reader.

        Not ``ws.close()``: eventlet's closes the file descriptor under the reader parked on it, which epoll
        then never wakes (until the 45 s timeout). The WSGI server closes it once the reader has returned.
        """
        if self._ws_closed:
            return
        self._ws_closed = True
        try:
            self._green.sendall(CLOSE_FRAME)
        except OSError:  # the client closed it first
            pass
        try:
            self._green.shutdown(SHUT_RDWR)
        except OSError:
            pass

    def _ping_cycle(self) -> float:
        """The longest a blocking write waits: a client that answers pings is never silent for longer."""
        return self.server.ping_interval + self.server.ping_timeout

    def _websocket_handler(self, ws: Any) -> list[Any]:
        sockets = green_and_raw(ws)
        if sockets is not None:
            no_delay(sockets[1])
        if sockets is None or self.connected or not writable_in_place(ws, sockets[1]):
            # An upgrade from long-polling, or a WebSocket that cannot be written in place: engine.io's writer,
            # whose blocked write a stalled client ends after a ping cycle (engine.io sets it under eventlet only).
            if sockets is not None:
                sockets[0].settimeout(self._ping_cycle())
            return super()._websocket_handler(ws)
        self.connected = self.upgraded = True
        self._green = sockets[0]
        # The OPEN packet, queued before the transport existed, goes out from this green thread; sends meanwhile
        # are queued behind it (engine.io's send, as _raw is not set yet) and go out in the same loop.
        self._write_backlog()
        self._raw = sockets[1]
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        self._read(ws)
        self.queue.put(None)  # as engine.io: what is queued goes out, then the WebSocket closes
        if self._writer is not None:
            self._writer.join()
        else:
            self._write_backlog()
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def _read(self, ws: Any) -> None:
        """engine.io's read loop: every packet the client sends, until it closes or sends one too large."""
        limit = self.server.max_http_buffer_size
        while True:
            try:
                data = ws.wait()
                if data and len(data) > limit:
                    raise ValueError("packet is too large")
            except Exception as exc:
                if not self.closed:
                    self.server.logger.info('%s: Unexpected error "%s", closing connection', self.sid, str(exc))
                return
            if data is None:  # closed by the client
                return
            try:
                self.receive(eio_packet.Packet(encoded_packet=data))
            except UnknownPacketError:
                pass
            except SocketIsClosedError:
                self.server.logger.info("Receive error -- socket is closed")
                return
            except Exception:
                self.server.logger.exception("Unknown receive error")
                return


def queued(socket: Socket) -> Any:
    """The queue of packets waiting to go out on an engine.io socket, or None if it has none.

    A :class:`LeanSocket` written in place has none while nothing waits; asking for ``socket.queue`` would
    create one, so the checks made on every send ask here.
    """
    return vars(socket).get("queue")


def adopt(socket: Socket, heartbeat: Heartbeat) -> None:
    """Make a socket that engine.io has just created a :class:`LeanSocket` of ``heartbeat``'s server."""
    if type(socket) is Socket:
        socket.__class__ = LeanSocket
    if isinstance(socket, LeanSocket):
        socket.heartbeat = heartbeat
