"""Sign-in for the demo users: the same flask-jwt-extended tokens serve the REST API and the WebSocket."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, request
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt_identity, jwt_required

from .extensions import db, jwt
from .models import User
from .schemas import LoginSchema

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


@jwt.user_lookup_loader
def load_user(header: dict[str, Any], claims: dict[str, Any]) -> User | None:
    """A token of a user that no longer exists (say, after ``flask seed``) is refused, REST and WebSocket alike."""
    return db.session.get(User, int(claims["sub"]))


@bp.post("/login")
def login() -> Any:
    credentials = LoginSchema().load(request.get_json(silent=True))
    user = db.session.scalar(sa.select(User).filter_by(username=credentials["username"]))
    if user is None or not user.check_password(credentials["password"]):
        return {"errors": {"_schema": ["Wrong username or password."]}}, 401
    identity = str(user.id)
    return {
        "accessToken": create_access_token(identity),
        "refreshToken": create_refresh_token(identity),
        "user": {"id": user.id, "username": user.username},
    }


@bp.post("/refresh")
@jwt_required(refresh=True)
def refresh() -> dict[str, str]:
    return {"accessToken": create_access_token(get_jwt_identity())}
