"""Serving the app as installed: WebSocket compression declined, and ``DashboardRealtime.run``'s server.

A WebSocket keeps its HTTP connection's file objects for its whole life without using them: eventlet's
protocol buffers 8 KB for reading and 16 KB for writing, gevent's handler 8 KB for reading. The servers here
make them :data:`CONNECTION_BUFFER` bytes (:func:`eventlet_protocol`, :func:`gevent_handler`).

Every browser offers permessage-deflate, and eventlet's and simple-websocket's WebSockets accept it: each
socket then keeps two zlib contexts (156 against 64 KB per socket at 5,000 eventlet sockets, and more CPU
per handshake and per event; BENCHMARKS.md). Dashboard events are small JSON, so compression buys little.
:class:`DeclineCompression` removes the offer from Socket.IO's requests before any WebSocket layer reads
it, which declines it under every server that reads the WSGI environ (eventlet's, gunicorn's eventlet
worker, Werkzeug's, simple-websocket under gevent). gevent-websocket never accepts an extension.
"""

from __future__ import annotations

import resource
import socket
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import Any

from .log import logger

# The listen backlog of DashboardRealtime.run: the kernel caps it at net.core.somaxconn (4096 on current
# Linux). eventlet's default of 50 overflowed thousands of times when 19,500 clients connected at once.
BACKLOG = socket.SOMAXCONN if socket.SOMAXCONN > 128 else 4096

# eventlet.wsgi's default max_size is 1,024 concurrent connections; each socket is one.
MAX_CONNECTIONS = 100_000

# The read and write buffers of one connection's file objects. An HTTP request's line and headers are read
# through it (a handshake is under 2 KB); a larger write goes straight to the socket.
CONNECTION_BUFFER = 1024


class DeclineCompression:
    """WSGI middleware that hides the client's WebSocket extension offer on the Socket.IO path."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], path: str) -> None:
        self.wsgi_app = wsgi_app
        self.path = "/" + path.strip("/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(self.path):
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return self.wsgi_app(environ, start_response)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (each socket is a file); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def serve_eventlet(app: Any, host: str, port: int, backlog: int, **kwargs: Any) -> None:
    import eventlet
    import eventlet.wsgi

    kwargs.setdefault("log_output", False)
    kwargs.setdefault("max_size", MAX_CONNECTIONS)
    kwargs.setdefault("protocol", eventlet_protocol())
    listener = eventlet.listen((host, port), backlog=backlog)
    _log_serving("eventlet", host, listener.getsockname()[1], backlog)
    eventlet.wsgi.server(listener, app, **kwargs)


def serve_gevent(app: Any, host: str, port: int, backlog: int, **kwargs: Any) -> None:
    """gevent's WSGI server; with gevent-websocket, the app's handshake gate is asked before an upgrade."""
    from gevent import pywsgi

    try:  # engine.io uses gevent-websocket when it is installed, and it needs its handler
        kwargs.setdefault("handler_class", gevent_handler())
    except ImportError:
        pass
    kwargs.setdefault("log", None)
    server = pywsgi.WSGIServer((host, port), app, backlog=backlog, **kwargs)
    server.pre_start_hook = partial(refuses_before_upgrade, app)
    server.start()
    _log_serving("gevent", host, server.server_port, backlog)
    server.serve_forever()


@cache
def eventlet_protocol() -> type:
    """eventlet's HTTP protocol with :data:`CONNECTION_BUFFER`-byte buffers (imported only when serving with it)."""
    from eventlet.wsgi import HttpProtocol

    class SmallBufferProtocol(HttpProtocol):
        rbufsize = wbufsize = CONNECTION_BUFFER

    return SmallBufferProtocol


@cache
def gevent_handler() -> type:
    """gevent-websocket's handler, reading through a :data:`CONNECTION_BUFFER`-byte buffer."""
    from geventwebsocket.handler import WebSocketHandler

    class SmallBufferWebSocketHandler(WebSocketHandler):
        def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
            super().__init__(sock, address, server, rfile)
            if rfile is None:  # gevent made one with an 8 KB buffer, released with its last reference
                self.rfile = sock.makefile("rb", CONNECTION_BUFFER)

    return SmallBufferWebSocketHandler


def refuses_before_upgrade(app: Any, handler: Any) -> bool:
    """gevent-websocket's ``pre_start_hook`` for a server of ``app``: whether the extension's handshake gate
    refuses the handler's request, which then stays plain HTTP (no gate, as for another WSGI app: False)."""
    state = getattr(app, "extensions", {}).get("dashboard_ws")
    gate = getattr(state, "gate", None)
    return gate is not None and gate.before_upgrade(handler)


def _log_serving(async_mode: str, host: str, port: int, backlog: int) -> None:
    """The bound port, which tells a caller of ``run(app, port=0)`` where to connect."""
    logger.info("serving", async_mode=async_mode, host=host, port=port, backlog=backlog)
