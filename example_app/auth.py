"""Sign-in for the demo users: the same flask-jwt-extended tokens serve the REST API and the WebSocket."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, request
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt_identity, jwt_required

from flask_dashboard_ws import DeliveryUnavailable

from .extensions import db, jwt, realtime
from .models import User
from .schemas import LoginSchema

bp = Blueprint("auth", __name__, url_prefix="/api/auth")

# What the user's other open dashboards show (the ``message`` of their ``dashboard:error`` SESSION_ENDED).
SIGNED_OUT_MESSAGE = "You signed out in another tab or window. Please sign in again."


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


@bp.post("/logout")
@jwt_required()
def logout() -> Any:
    """Sign out: end every live dashboard socket of the user, in every process of the app.

    This app keeps no token blocklist, so the access and refresh tokens themselves stay valid until they
    expire; the page forgets its own. That is why the sockets must be ended here: a socket's token is checked
    when it connects, so an open socket would otherwise keep receiving the user's events until that token
    expires. Each socket first gets ``dashboard:error`` with code ``SESSION_ENDED``, then a disconnect that
    the official client does not retry. A tab that is offline at this moment is not reached, and may
    connect again with the tokens it still holds.

    204 once done; 503 when the message queue (or, on AWS, API Gateway) did not take it (this process's
    sockets are ended, those of the other processes may not be).
    """
    try:
        realtime.disconnect_user(get_jwt_identity(), SIGNED_OUT_MESSAGE)
    except DeliveryUnavailable:  # the message queue (QueueUnavailable), or API Gateway on AWS
        return {"errors": {"_schema": ["Signed out here, but other open dashboards may stay live for now."]}}, 503
    return "", 204
