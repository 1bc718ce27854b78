"""gunicorn's gevent-websocket worker, with the extension's handshake gate asked before an upgrade::

    gunicorn -k flask_dashboard_ws.gunicorn_worker.GeventWebSocketWorker -w 1 "yourapp:create_app()"

gevent-websocket upgrades a WebSocket handshake before the app runs, so a handshake that the process refuses
(while it drains, or past the handshake rates) would get a WebSocket closed before the open packet, on which
socket.io-client waits out its connection timeout (20 s) before it tries again. This worker's server sets
gevent-websocket's ``pre_start_hook`` to :meth:`~flask_dashboard_ws.limits.HandshakeGate.before_upgrade`, as
``DashboardRealtime.run`` does: such a handshake stays plain HTTP and gets its 503 or 429, which a proxy
retries on another process. Needs gunicorn and gevent-websocket (the ``[gevent]`` extra).
"""

from __future__ import annotations

from typing import Any

from geventwebsocket.gunicorn.workers import GeventWebSocketWorker as _GeventWebSocketWorker
from gunicorn.workers.ggevent import PyWSGIServer

from .serving import gevent_handler, refuses_before_upgrade


class GatedServer(PyWSGIServer):
    """gunicorn's gevent WSGI server, whose handler asks the app's gate before upgrading."""

    def pre_start_hook(self, handler: Any) -> bool:
        return refuses_before_upgrade(self.application, handler)


class GeventWebSocketWorker(_GeventWebSocketWorker):
    """``geventwebsocket.gunicorn.workers.GeventWebSocketWorker`` with :class:`GatedServer`, and the handler's
    read buffer as small as ``DashboardRealtime.run`` makes it."""

    server_class = GatedServer
    wsgi_handler = gevent_handler()
