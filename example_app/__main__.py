"""``python -m example_app [--port N]``: serve the dashboard on 127.0.0.1 with eventlet.

Monkey patching comes first, before anything imports socket, threading or time, as eventlet and
Flask-SocketIO require; ``example_app/__init__.py`` is kept free of imports for that reason.
"""

import warnings

# eventlet warns on import that it is deprecated; this app runs it on purpose (docs/async.md), so that
# one notice is silenced by its message and every other warning still shows.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from . import create_app  # noqa: E402
from .cli import DEMO_USERS  # noqa: E402
from .extensions import db, realtime  # noqa: E402
from .views import SOCKET_IO_CLIENT_DIST  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")), help="default: $PORT or 5000")
    args = parser.parse_args(argv)

    app = create_app({"DASHBOARD_WS_ASYNC_MODE": "eventlet"})
    with app.app_context():
        db.create_all()
    if not SOCKET_IO_CLIENT_DIST.is_dir():
        print("socket.io-client is missing: run `npm ci --prefix example_app` first.", file=sys.stderr)
    logins = ", ".join(f"{user} / {password}" for user, password in DEMO_USERS.items())
    print(f"MOC dashboard: http://127.0.0.1:{args.port}/  (demo logins: {logins})", flush=True)
    realtime.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
