"""Serve ``tests/server_app.py`` on an ephemeral port: ``python -m tests.serve --mode eventlet [--config JSON]``.

Prints ``PORT <n>`` once the socket listens (with ``--run``, ``DashboardRealtime.run`` logs ``serving ...
port=<n>`` instead), then serves until it is terminated. The WSGI servers' access
logs are off: they would print query strings (one token source), and the tests check the log for tokens.
``--socketio-run`` serves with Flask-SocketIO's own ``socketio.run`` (eventlet and gevent), as many apps do.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("threading", "eventlet", "gevent"), required=True)
    parser.add_argument("--config", default="{}", help="JSON object of extra app.config values")
    parser.add_argument("--run", action="store_true", help="serve with DashboardRealtime.run (logs the port)")
    parser.add_argument("--socketio-run", action="store_true", help="serve with Flask-SocketIO's socketio.run")
    args = parser.parse_args()

    # Monkey-patching must come before anything else imports socket or threading.
    if args.mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif args.mode == "gevent":
        from gevent import monkey

        monkey.patch_all()

    from tests.server_app import create_app

    app = create_app(args.mode, json.loads(args.config))
    if args.run:
        app.dashboard.run(app, port=0)
        return
    if args.socketio_run:
        socketio_run(app, args.mode)
        return
    {"threading": serve_threading, "eventlet": serve_eventlet, "gevent": serve_gevent}[args.mode](app)


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


def socketio_run(app: Any, mode: str) -> None:
    """``socketio.run(app, port=0)``, which tells no one the port it bound: its server announces it."""
    if mode == "eventlet":
        import eventlet

        listen = eventlet.listen

        def announcing_listen(*args: Any, **kwargs: Any) -> Any:
            sock = listen(*args, **kwargs)
            announce(sock.getsockname()[1])
            return sock

        eventlet.listen = announcing_listen
    elif mode == "gevent":
        from gevent import pywsgi

        class AnnouncingServer(pywsgi.WSGIServer):
            def start(self) -> None:
                super().start()
                announce(self.server_port)

        pywsgi.WSGIServer = AnnouncingServer  # type: ignore[misc]
    else:
        raise SystemExit("--socketio-run: socketio.run serves threading with the Werkzeug development server")
    app.dashboard.socketio.run(app, port=0, log_output=False)


def serve_threading(app: Any) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

        def run_wsgi(self) -> None:
            super().run_wsgi()
            if self.headers.get("Upgrade", "").lower() == "websocket":
                # The connection was the WebSocket's and has ended; without this, werkzeug reads the
                # client's closing frame as a new HTTP request and the client waits 3 s for its close.
                self.close_connection = True

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
    announce(server.server_port)
    server.serve_forever()


def serve_eventlet(app: Any) -> None:
    import eventlet
    import eventlet.wsgi

    sock = eventlet.listen(("127.0.0.1", 0))
    announce(sock.getsockname()[1])
    eventlet.wsgi.server(sock, app, log_output=False)


def serve_gevent(app: Any) -> None:
    from gevent import pywsgi

    try:  # engine.io uses gevent-websocket when it is installed, which needs its own handler ...
        from geventwebsocket.handler import WebSocketHandler as Handler
    except ImportError:  # ... and otherwise simple-websocket, which works with plain pywsgi.

        class Handler(pywsgi.WSGIHandler):  # type: ignore[no-redef]
            def run_application(self) -> None:
                super().run_application()
                if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                    # As for werkzeug above: the connection was the WebSocket's and has ended.
                    self.close_connection = True

    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=Handler, log=None)
    server.start()
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
