"""The application factory: configuration, extensions, blueprints."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from marshmallow import ValidationError

from . import api, auth, cli, views
from .extensions import db, jwt, realtime


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: SQLite in the instance folder unless ``DATABASE_URL`` is set.

    ``EXAMPLE_APP_INSTANCE_PATH`` moves the instance folder (the tests give each run its own), and
    ``FLASK_*`` environment variables set config keys, e.g. ``FLASK_JWT_ACCESS_TOKEN_EXPIRES=60``.
    """
    instance_path = os.environ.get("EXAMPLE_APP_INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None)
    os.makedirs(app.instance_path, exist_ok=True)
    database_url = os.environ.get("DATABASE_URL")
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        sqlalchemy_url(database_url) if database_url else f"sqlite:///{Path(app.instance_path) / 'example_app.sqlite'}"
    )
    app.config.from_prefixed_env()
    app.config.update(config or {})
    if not app.config.get("JWT_SECRET_KEY"):
        app.config["JWT_SECRET_KEY"] = _instance_secret(Path(app.instance_path) / "jwt-secret")

    db.init_app(app)
    jwt.init_app(app)
    realtime.init_app(app)  # after JWTManager: the WebSocket checks tokens with the app's JWT settings
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    app.register_error_handler(ValidationError, _validation_failed)
    app.cli.add_command(cli.seed_command)
    return app


def sqlalchemy_url(database_url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg2 to SQLAlchemy; this app installs psycopg 3."""
    scheme, _, rest = database_url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return database_url


def _instance_secret(path: Path) -> str:
    """A random signing key kept beside the database, so tokens survive restarts and no secret is in git."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _validation_failed(error: ValidationError) -> tuple[dict[str, Any], int]:
    return {"errors": error.normalized_messages()}, 400
