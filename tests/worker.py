"""A process that serves no sockets and emits, as a Celery task or a cron job would:
``python -m tests.worker --config JSON --user USER_ID --count N``.

It sets the app up the way the worker pattern in docs/workers.md does, with no async mode (so Flask-SocketIO picks
eventlet, which nothing here monkey patches), emits ``N`` ``dashboard:error`` events to the user inside an
app context, and prints one JSON line: ``{"async_mode", "socket_monkey_patched", "event_ids"}``; or
``{"error", "event_id"}`` with exit status 1 when the message queue did not take an event.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="{}", help="JSON object of extra app.config values")
    parser.add_argument("--user", required=True)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()

    from eventlet.patcher import is_monkey_patched
    from flask import Flask
    from flask_jwt_extended import JWTManager

    from flask_dashboard_ws import DashboardRealtime, QueueUnavailable
    from tests.server_app import JWT_SECRET

    app = Flask("worker")
    app.config.update(JWT_SECRET_KEY=JWT_SECRET, **json.loads(args.config))
    JWTManager(app)
    dashboard = DashboardRealtime(app)

    event_ids = []
    with app.app_context():
        for index in range(args.count):
            try:
                envelope = dashboard.emit_error(args.user, "WORKER", f"step {index}")
            except QueueUnavailable as exc:
                print(json.dumps({"error": str(exc), "event_id": exc.envelope["eventId"]}), flush=True)
                sys.exit(1)
            event_ids.append(envelope["eventId"])
        async_mode = dashboard.socketio.async_mode
    report = {"async_mode": async_mode, "socket_monkey_patched": bool(is_monkey_patched("socket")), "event_ids": event_ids}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
