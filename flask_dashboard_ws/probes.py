"""What a process answers its operators: liveness, readiness and Prometheus metrics, each on a path of its own.

:class:`Probes` is WSGI middleware in front of the Flask app, so these answers run none of the app's
``before_request`` hooks (authentication, database sessions) and need neither a token nor the database. Each
path is off unless configured (``DASHBOARD_WS_HEALTH_PATH``, ``_READY_PATH``, ``_METRICS_PATH``).

- Liveness: 200 whenever the process's event loop runs this code at all.
- Readiness: 503 while the Redis queue's listener has been without a subscription for longer than
  ``DASHBOARD_WS_READY_QUEUE_OUTAGE``: this process would then miss the events of every other process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[..., Iterable[bytes]]


class Probes:
    def __init__(
        self,
        wsgi_app: WSGIApp,
        health_path: str | None,
        ready_path: str | None,
        metrics_path: str | None,
        not_ready: Callable[[], list[str]],
        render_metrics: Callable[[], tuple[bytes, str]] | None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.answers: dict[str, Callable[[], tuple[str, bytes, str]]] = {}
        if health_path is not None:
            self.answers[health_path] = self._health
        if ready_path is not None:
            self.answers[ready_path] = self._ready
        if metrics_path is not None and render_metrics is not None:
            self.answers[metrics_path] = self._metrics
        self.not_ready = not_ready
        self.render_metrics = render_metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = self.answers.get(environ.get("PATH_INFO", ""))
        if answer is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        status, body, content_type = answer()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    @staticmethod
    def _health() -> tuple[str, bytes, str]:
        return "200 OK", b'{"status":"ok"}', "application/json"

    def _ready(self) -> tuple[str, bytes, str]:
        reasons = self.not_ready()
        if reasons:
            body = json.dumps({"status": "not_ready", "reasons": reasons}).encode()
            return "503 Service Unavailable", body, "application/json"
        return "200 OK", b'{"status":"ready"}', "application/json"

    def _metrics(self) -> tuple[str, bytes, str]:
        assert self.render_metrics is not None
        body, content_type = self.render_metrics()
        return "200 OK", body, content_type
