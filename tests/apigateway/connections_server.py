"""A stand-in for API Gateway's ``@connections`` API over real HTTP, for the statuses the emulator never gives.

serverless-offline answers 204 or a bare 410; AWS also answers 403 (no permission, or the endpoint lacks the
stage), 413 and 429. This server answers each connection id with the status the test chose, records the
requests, and how many were in flight at once.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ConnectionsServer:
    def __init__(self, statuses: dict[str, int] | None = None, delay: float = 0.0) -> None:
        self.statuses = statuses or {}
        self.delay = delay
        self.requests: list[tuple[str, str, bytes]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ConnectionsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer()

            def do_DELETE(self) -> None:
                self._answer()

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                connection_id = self.path.rsplit("/", 1)[-1]
                with owner._lock:
                    owner.requests.append((self.command, connection_id, body))
                    owner.in_flight += 1
                    owner.most_in_flight = max(owner.most_in_flight, owner.in_flight)
                try:
                    if owner.delay:
                        time.sleep(owner.delay)
                    status = owner.statuses.get(connection_id, 200)
                    payload = b"" if status < 400 else b'{"message": "test"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
