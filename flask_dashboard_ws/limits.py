"""What one client may cost the server: limits on engine.io sessions, applied before python-socketio sees them.

python-socketio keeps an engine.io session open for as long as it answers pings, whether or not it ever
authenticates; answers every CONNECT, however many are refused; hands every client event to a new green
thread; buffers binary attachments without limit; and queues outgoing packets without limit for a socket
that stops reading. :class:`SessionGuard` sits between engine.io and python-socketio (it takes over the
``connect``, ``message`` and ``disconnect`` handlers that python-socketio registers on its engine.io server,
and wraps ``send_packet``, the call that every emit goes through). Its :class:`HandshakeGate`, a WSGI
middleware, paces new sessions to ``DASHBOARD_WS_HANDSHAKE_RATE`` per process and
``DASHBOARD_WS_HANDSHAKE_RATE_PER_ADDRESS`` per client address (a handshake waits up to
:data:`HANDSHAKE_MAX_WAIT` for its turn), and refuses one with HTTP 429 before engine.io builds anything for
it when its turn is further away or while ``DASHBOARD_WS_MAX_PENDING_SESSIONS`` sessions wait unauthenticated
(under gevent-websocket, which upgrades before the app runs, the WebSocket closes instead). It closes a
session that:

* has not connected to any namespace within ``DASHBOARD_WS_AUTH_TIMEOUT``;
* was refused a CONNECT and is connected to no namespace (the official client closes it then anyway);
* sends more than ``DASHBOARD_WS_MAX_CLIENT_EVENTS`` events or acks on the dashboard namespace, which
  handles none; they are dropped unread, without a green thread or a log line each;
* sends a binary packet or attachment (the dashboard protocol has none), or a packet that does not parse;
* has more than ``DASHBOARD_WS_MAX_OUTGOING_BYTES`` queued for it (a slow or stalled reader).

It also drops packets that arrive on a session already closed (a CLOSE followed by a CONNECT in one polling
payload), which python-socketio would register for good. Each refused or closed session is counted by
reason in :attr:`SessionGuard.counts`, and logged as ``session_limited`` at most once per reason and
:data:`LOG_EVERY` seconds, with the number of occurrences, so that a flood does not become a flood of lines.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from engineio.exceptions import SocketIsClosedError

from .config import Settings
from .expiry import ExpiryWatcher
from .log import logger
from .sockets import Heartbeat, adopt, queued

# Closing reasons, as counted and logged.
AUTH_TIMEOUT = "auth_timeout"
CONNECT_REFUSED = "connect_refused"
CLIENT_EVENTS = "client_events"
BINARY_PACKET = "binary_packet"
MALFORMED_PACKET = "malformed_packet"
SLOW_READER = "slow_reader"
# Refusing a new session (the handshake gets HTTP 429).
TOO_MANY_PENDING = "too_many_pending"
HANDSHAKE_RATE = "handshake_rate"
ADDRESS_RATE = "address_rate"
DRAINING = "draining"  # (HTTP 503)

# Seconds between two ``session_limited`` lines for one reason.
LOG_EVERY = 10.0

# Longest wait for a turn under the handshake rates before a new session is refused (HTTP 429). Handshakes
# waiting hold no session, only their connection: at most this many seconds' worth of the rates.
HANDSHAKE_MAX_WAIT = 1.0

# Where HandshakeGate keeps its decision on a request in the WSGI environ.
_REFUSAL = "dashboard_ws.refusal"

# Socket.IO packet types, as the first character of a text packet.
_CONNECT, _EVENT, _ACK, _BINARY_EVENT, _BINARY_ACK = "0", "2", "3", "5", "6"

# Below this many queued packets a socket is not examined for its backlog in bytes: a queue that the writer
# drains keeps a few packets at most.
_BACKLOG_CHECK_FROM = 8


class SessionGuard:
    """The limits of one engine.io server (one per app); install it once with :meth:`install`."""

    def __init__(self, server: Any, settings: Settings, on_session_end: Callable[[], None],
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.server = server
        self._on_session_end = on_session_end
        self._on_refused = on_refused
        self.eio = server.eio
        self.namespace = settings.namespace
        self.max_client_events = settings.max_client_events
        self.max_outgoing_bytes = settings.max_outgoing_bytes
        self.auth_timeout = settings.auth_timeout
        self.max_pending = settings.max_pending_sessions
        self.trusted_proxies = settings.trusted_proxies
        self.handshakes = TokenBucket(settings.handshake_rate)
        self.handshakes_by_address = BucketsByKey(settings.handshake_rate_per_address)
        self.counts: collections.Counter[str] = collections.Counter()
        self._pending: dict[str, float] = {}  # sessions connected to no namespace yet: their deadline
        self._client_events: dict[str, int] = {}
        self._backlog: dict[str, int] = {}  # characters queued since the queue was last seen empty (an upper bound)
        self._deadlines = ExpiryWatcher(self._deadline_passed, server.start_background_task, server.sleep)
        self._log_lock = threading.Lock()
        self._logged: dict[str, tuple[float, int]] = {}  # reason: (when last logged, occurrences since)
        self._closing: dict[str, str] = {}  # sessions this guard closed, until their disconnect: why ("limit")
        self.draining = False  # set by drain(): new sessions are refused with 503
        self.heartbeat = Heartbeat(self.eio) if settings.lean_sockets else None

    def install(self) -> None:
        """Take over python-socketio's engine.io handlers; a second call (another app, same server) does nothing."""
        handlers = self.eio.handlers
        if isinstance(getattr(handlers.get("message"), "__self__", None), SessionGuard):
            return
        self._on_connect = handlers["connect"]
        self._on_message = handlers["message"]
        self._on_disconnect = handlers["disconnect"]
        self._send_packet = self.eio.send_packet
        self.eio.on("connect", self.on_connect)
        self.eio.on("message", self.on_message)
        self.eio.on("disconnect", self.on_disconnect)
        self.eio.send_packet = self.send_packet
        if self.heartbeat is not None:
            self.eio.start_service_task = False  # the heartbeat closes sockets whose pong is late (sockets.py)

    def closed_for(self, eio_sid: str | None) -> str | None:
        """Why this guard closed the session (``"limit"``, ``"drained"``) while its disconnect is handled, else None."""
        return self._closing.get(eio_sid) if eio_sid is not None else None

    def close_for(self, eio_sid: str, cause: str) -> int:
        """Close the session as :meth:`close` does, for ``cause``, without logging it as a limit; 1 if it was open."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return 0
        self._closing[eio_sid] = cause
        socket.close(wait=False, abort=False, reason=self.eio.reason.SERVER_DISCONNECT)
        return 1

    @property
    def pending(self) -> int:
        """Sessions open and connected to no namespace yet."""
        return len(self._pending)

    # engine.io events

    def on_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        socket = self.eio.sockets.get(eio_sid)
        if self.heartbeat is not None and socket is not None:
            adopt(socket, self.heartbeat)
        result = self._on_connect(eio_sid, environ)
        deadline = time.time() + self.auth_timeout
        self._pending[eio_sid] = deadline
        self._deadlines.watch(eio_sid, deadline)
        return result

    def on_message(self, eio_sid: str, data: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return  # the session is over: python-socketio would register a CONNECT that no disconnect undoes
        if not isinstance(data, str) or data[:1] in (_BINARY_EVENT, _BINARY_ACK):
            self.close(eio_sid, BINARY_PACKET)
            return
        kind = data[:1]
        if kind in (_EVENT, _ACK) and self._in_dashboard_namespace(data):
            self._client_event(eio_sid)
            return
        try:
            self._on_message(eio_sid, data)
        except Exception as exc:  # python-socketio could not parse it: one line, not a traceback
            self.close(eio_sid, MALFORMED_PACKET, error=type(exc).__name__)
            return
        if kind == _CONNECT:
            self._after_connect(eio_sid, socket)

    def on_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            # engine.io's WebSocket loop reads until receive() raises SocketIsClosedError: without this it goes
            # on reading and decoding whatever a client sends to the closed session, as fast as it is sent.
            socket.receive = _closed_receive
        self._forget(eio_sid)
        try:
            self._on_disconnect(eio_sid, reason)  # the namespace's disconnect handler may ask closed_for()
        finally:
            self._closing.pop(eio_sid, None)
        self._on_session_end()

    def send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Queue ``pkt`` unless the session's backlog is over the limit: then close it and drop the backlog."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            size = len(pkt.data) if isinstance(pkt.data, (str, bytes)) else 0  # a ping or a noop has no data
            waiting = queued(socket)
            count = waiting.qsize() if waiting is not None else 0
            backlog = (self._backlog.get(eio_sid, 0) if count else 0) + size
            if backlog > self.max_outgoing_bytes and count >= _BACKLOG_CHECK_FROM:
                backlog = _queued_size(waiting) + size
                if backlog > self.max_outgoing_bytes:
                    self._backlog.pop(eio_sid, None)
                    self.close(eio_sid, SLOW_READER, drop_backlog=True, queued=backlog)
                    return
            self._backlog[eio_sid] = backlog
        self._send_packet(eio_sid, pkt)

    # Closing

    def close(self, eio_sid: str, reason: str, drop_backlog: bool = False, **fields: Any) -> None:
        """Close the engine.io session: its sockets disconnect and the official client reconnects.

        ``drop_backlog`` discards what is queued instead of sending it first, and does not send the CLOSE
        packet, which would wait behind it: the transport closes as soon as the writer is free.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return
        self._record(reason, eio_sid=eio_sid, **fields)
        self._closing[eio_sid] = "limit"
        waiting = queued(socket)
        if drop_backlog and waiting is not None:
            _empty(waiting, self.eio.get_queue_empty_exception())
        socket.close(wait=False, abort=drop_backlog, reason=self.eio.reason.SERVER_DISCONNECT)

    def _record(self, reason: str, **fields: Any) -> None:
        """Count the limit, and log it unless a line for the same reason went out less than LOG_EVERY ago."""
        now = time.monotonic()
        with self._log_lock:
            self.counts[reason] += 1
            last, since = self._logged.get(reason, (-LOG_EVERY, 0))
            if now - last < LOG_EVERY:
                self._logged[reason] = (last, since + 1)
                return
            self._logged[reason] = (now, 0)
        logger.warning("session_limited", reason=reason, suppressed=since, **fields)

    def admit(self, environ: dict[str, Any]) -> float | None:
        """Whether a new session may open, asked by :class:`HandshakeGate` before engine.io builds anything.

        Returns the seconds the handshake must wait for its turn (0.0: none), or None if it is refused: the
        process has too many sessions pending, or a turn is more than :data:`HANDSHAKE_MAX_WAIT` away.
        """
        address = client_address(environ, self.trusted_proxies)
        now = time.monotonic()
        if len(self._pending) >= self.max_pending:
            refusal = TOO_MANY_PENDING
        elif (by_address := self.handshakes_by_address.reserve(address, now, HANDSHAKE_MAX_WAIT)) is None:
            refusal = ADDRESS_RATE
        elif (overall := self.handshakes.reserve(now, HANDSHAKE_MAX_WAIT)) is None:
            refusal = HANDSHAKE_RATE
        else:
            return max(by_address, overall)
        self.refuse(refusal, remote_addr=address)
        return None

    def refuse(self, reason: str, **fields: Any) -> None:
        """Count and log a handshake refused before engine.io saw it, and tell ``on_refused`` (the metrics)."""
        self._record(reason, **fields)
        if self._on_refused is not None:
            self._on_refused(reason)

    def sleep(self, seconds: float) -> None:
        """Sleep in the server's async mode (a green thread's sleep under eventlet and gevent)."""
        self.server.sleep(seconds)

    # Helpers

    def _in_dashboard_namespace(self, data: str) -> bool:
        namespace = self.namespace
        return data.startswith(namespace, 1) and data[1 + len(namespace): 2 + len(namespace)] in ("", ",")

    def _client_event(self, eio_sid: str) -> None:
        count = self._client_events.get(eio_sid, 0) + 1
        self._client_events[eio_sid] = count
        if count > self.max_client_events:
            self.close(eio_sid, CLIENT_EVENTS, events=count)

    def _after_connect(self, eio_sid: str, socket: Any) -> None:
        """After python-socketio handled a CONNECT: the session is no longer pending, or it was refused."""
        if socket.closing or socket.closed:
            return
        manager = self.server.manager
        if any(manager.sid_from_eio_sid(eio_sid, ns) is not None for ns in list(manager.get_namespaces())):
            self._pending.pop(eio_sid, None)
            self._deadlines.unwatch(eio_sid)
        else:
            self.close(eio_sid, CONNECT_REFUSED)

    def _deadline_passed(self, eio_sid: str, deadline: float) -> None:
        if self._pending.get(eio_sid) == deadline:
            self.close(eio_sid, AUTH_TIMEOUT, after_s=self.auth_timeout)

    def _forget(self, eio_sid: str) -> None:
        self._pending.pop(eio_sid, None)
        self._deadlines.unwatch(eio_sid)
        self._client_events.pop(eio_sid, None)
        self._backlog.pop(eio_sid, None)


class HandshakeGate:
    """WSGI middleware: holds a new session on the Socket.IO path until its turn, or refuses it with HTTP 429
    (503 while the process drains).

    It runs before engine.io, which would otherwise build a session (a socket, its queue, an open packet)
    for every handshake it then refuses. Requests that carry a session id (``sid``) belong to an open
    session and pass.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], path: str, guard: SessionGuard) -> None:
        self.wsgi_app = wsgi_app
        self.path = "/" + path.strip("/")
        self.guard = guard

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = self.refusal(environ)
        if refusal is not None:
            return _refuse(environ, start_response, *refusal)
        return self.wsgi_app(environ, start_response)

    def refusal(self, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        """The status and body that refuse this request, or None once it may go on (after waiting its turn).

        Decided once per request and kept in the environ: :meth:`before_upgrade` may ask before the gate runs.
        """
        if _REFUSAL not in environ:
            environ[_REFUSAL] = self._decide(environ) if self._is_handshake(environ) else None
        return environ[_REFUSAL]

    def before_upgrade(self, handler: Any) -> bool:
        """gevent-websocket's ``pre_start_hook``, as ``DashboardRealtime.run`` and the extension's gunicorn
        worker set it (:func:`~flask_dashboard_ws.serving.refuses_before_upgrade`): True keeps a refused
        handshake a plain HTTP request, so that it gets its 503 or 429, which a proxy can retry on another
        process, rather than a WebSocket closed before the open packet, on which socket.io-client waits out
        its connection timeout (20 s) before it tries again."""
        return self.refusal(handler.environ) is not None

    def _is_handshake(self, environ: dict[str, Any]) -> bool:
        on_path = environ.get("PATH_INFO", "").startswith(self.path)
        return on_path and "sid" not in parse_qs(environ.get("QUERY_STRING", ""))

    def _decide(self, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        if self.guard.draining:  # the client retries, and the load balancer picks another process
            self.guard.refuse(DRAINING)
            return "503 Service Unavailable", b"This server is shutting down.\n"
        wait = self.guard.admit(environ)
        if wait is None:
            return "429 Too Many Requests", b"Too many connection attempts.\n"
        if wait:
            self.guard.sleep(wait)
        return None


def _refuse(environ: dict[str, Any], start_response: Callable[..., Any], status: str, body: bytes) -> Iterable[bytes]:
    """Answer ``status``; under gevent-websocket, whose handler has upgraded the connection before the app runs
    (unless :meth:`HandshakeGate.before_upgrade` is its hook), close the WebSocket instead, as engine.io's own
    gevent driver answers it: no response at all."""
    websocket = environ.get("wsgi.websocket")
    if websocket is not None:
        websocket.close()
        return []
    start_response(status, [("Content-Type", "text/plain"), ("Retry-After", "1")])
    return [body]


class TokenBucket:
    """At most ``rate`` takes a second on average, and ``rate`` at once (a burst of one second's worth).

    :meth:`reserve` may also book a token that is not there yet, up to ``max_wait`` seconds ahead: the caller
    waits that long. A steady stream of honest clients (a ramp, a reconnect after a deploy) is then paced
    rather than refused, while anything beyond ``max_wait`` seconds' worth is still refused at once.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def reserve(self, now: float, max_wait: float = 0.0) -> float | None:
        """Take a token: the seconds to wait until it is due (0.0 for one at hand), or None past ``max_wait``."""
        self.tokens = min(self.rate, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)  # ``now`` may predate the bucket: read just before it was made
        wait = (1 - self.tokens) / self.rate if self.tokens < 1 else 0.0
        if wait > max_wait:
            return None
        self.tokens -= 1
        return wait

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.rate


class BucketsByKey:
    """A :class:`TokenBucket` per key (a client address), forgetting the full ones once there are many."""

    def __init__(self, rate: float, most: int = 10_000) -> None:
        self.rate = rate
        self.most = most
        self.buckets: dict[str, TokenBucket] = {}

    def reserve(self, key: str, now: float, max_wait: float = 0.0) -> float | None:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.most:
                # A full bucket is the same as none: dropping them keeps the clients still being limited.
                self.buckets = {key: b for key, b in self.buckets.items() if not b.full(now)}
            bucket = self.buckets[key] = TokenBucket(self.rate)
        return bucket.reserve(now, max_wait)


def client_address(environ: dict[str, Any], trusted_proxies: int) -> str:
    """The client's address: ``REMOTE_ADDR``, or with ``trusted_proxies`` the entry of ``X-Forwarded-For`` that
    the farthest trusted proxy added (as werkzeug's ``ProxyFix(x_for=trusted_proxies)`` reads it)."""
    if trusted_proxies:
        forwarded = [part.strip() for part in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return environ.get("REMOTE_ADDR", "")


def _closed_receive(pkt: Any) -> None:
    raise SocketIsClosedError()


def _queued_size(queue: Any) -> int:
    """Characters in the packets waiting in an engine.io socket's queue (deque-backed in every async mode)."""
    return sum(len(pkt.data) for pkt in list(queue.queue)
               if pkt is not None and isinstance(pkt.data, (str, bytes)))


def _empty(queue: Any, empty: type[BaseException]) -> None:
    while True:
        try:
            queue.get(block=False)
        except empty:
            return
        queue.task_done()

