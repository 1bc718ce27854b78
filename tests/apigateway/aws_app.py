"""The app of the apigateway tests: flask-jwt-extended with a blocklist, and DASHBOARD_WS_* from the environment.

The emulator's handler processes build it (service/handlers.py), and so do the tests, to mint tokens and to
emit from a process of their own (``python -m tests.apigateway.aws_app USER_ID SUMMARY_JSON``). The blocklist is a file
(``TEST_REVOKED_FILE``), so that every process sees a revocation.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from flask_jwt_extended import JWTManager

from flask_dashboard_ws import DashboardRealtime, DeliveryUnavailable

JWT_SECRET = "flask-dashboard-ws apigateway tests: not a secret, never use it 0123456789abcdef"

dashboard = DashboardRealtime()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=JWT_SECRET)
    app.config.from_prefixed_env()  # FLASK_DASHBOARD_WS_BACKEND=apigateway, the endpoints, the intervals
    app.config.update(config or {})
    jwt = JWTManager(app)

    @jwt.token_in_blocklist_loader
    def is_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
        revoked = Path(os.environ["TEST_REVOKED_FILE"])
        return revoked.exists() and jwt_payload["jti"] in revoked.read_text().split()

    dashboard.init_app(app)
    return app


def summary(total: int) -> dict[str, Any]:
    return {
        "totalMocs": total,
        "totalWishlistItems": 0,
        "mocsByBuildStatus": {"ADDED": total, "IN_PROGRESS": 0, "BUILT": 0},
        "mocsByCoverageStatus": {"FULL_INVENTORY": total, "PARTIAL_ORDERED": 0, "NONE": 0},
    }


def emit(user_id: str, summary: dict[str, Any]) -> None:
    """Emit from this process through the public API; print the envelope, or the error and exit 1."""
    app = create_app()
    with app.app_context():
        try:
            envelope = dashboard.emit_summary_updated(user_id, summary)
        except DeliveryUnavailable as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
            sys.exit(1)
    print(json.dumps(envelope), flush=True)


if __name__ == "__main__":  # python -m tests.apigateway.aws_app USER_ID SUMMARY_JSON
    emit(sys.argv[1], json.loads(sys.argv[2]))
