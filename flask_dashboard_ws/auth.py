"""Authenticating a Socket.IO handshake with the app's own flask-jwt-extended tokens and settings.

``decode_token`` applies the app's keys, algorithms, audience, issuer, leeway and ``decode_key_loader``;
it checks neither the token type nor the blocklist, so both are checked here, as ``jwt_required`` does for
the REST API (plus the app's ``token_verification_loader`` and ``user_lookup_loader`` when it has them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from flask import request
from flask_jwt_extended import decode_token
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import RevokedTokenError, UserClaimsVerificationError
from flask_jwt_extended.internal_utils import (
    custom_verification_for_token,
    has_user_lookup,
    user_lookup,
    verify_token_not_blocklisted,
)

from .rooms import user_id_of

TOKEN_MISSING = "token_missing"
TOKEN_INVALID = "token_invalid"
TOKEN_EXPIRED = "token_expired"
TOKEN_REVOKED = "token_revoked"
WRONG_TOKEN_TYPE = "wrong_token_type"

# PyJWT 2.10+ refuses a ``sub`` that is not a string (``create_access_token(42)`` makes one), as ``jwt_required``
# then does; flask-jwt-extended's ``JWT_VERIFY_SUB = False`` turns that check off. Older PyJWT has no such check.
_SUBJECT_NOT_A_STRING = getattr(jwt.exceptions, "InvalidSubjectError", ())


class AuthFailed(Exception):
    """The handshake carries no usable access token; ``reason`` is what the client is told."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Identity:
    """A verified connection: whose it is and when its token stops being valid (epoch seconds)."""

    user_id: str
    expires_at: float | None


def auth_token(auth: Any) -> str | None:
    """The token of a CONNECT packet's ``auth`` data (``{"token": ...}``), if it has one."""
    if isinstance(auth, Mapping) and auth.get("token") not in (None, ""):
        token = auth["token"]
        if not isinstance(token, str):
            raise AuthFailed(TOKEN_INVALID, "auth token is not a string")
        return token
    return None


def find_token(auth: Any, allowed_origins: Iterable[str]) -> tuple[str, str]:
    """Return ``(token, source)`` from the first source that has one, in the documented order."""
    token = auth_token(auth)
    if token is not None:
        return token, "auth"
    return handshake_token(allowed_origins)


def handshake_token(allowed_origins: Iterable[str]) -> tuple[str, str]:
    """The token of the handshake request: its query string, its Authorization header or its cookie."""
    if request.args.get("token"):
        return request.args["token"], "query_string"
    header = request.headers.get(jwt_config.header_name)
    if header:
        return _bearer_token(header), "header"
    if "cookies" in jwt_config.token_location:
        cookie = request.cookies.get(jwt_config.access_cookie_name)
        if cookie:
            _check_cookie_origin(allowed_origins)
            return cookie, "cookie"
    raise AuthFailed(TOKEN_MISSING)


def _bearer_token(header: str) -> str:
    header_type = jwt_config.header_type
    if not header_type:
        return header
    scheme, _, token = header.partition(" ")
    if scheme != header_type or not token.strip():
        raise AuthFailed(TOKEN_INVALID, f"{jwt_config.header_name} header is not '{header_type} <token>'")
    return token.strip()


def _check_cookie_origin(allowed_origins: Iterable[str]) -> None:
    """Refuse a cookie sent from another site's page (cross-site WebSocket hijacking).

    Browsers always send ``Origin`` on a WebSocket handshake; a request without one is either a
    same-origin polling request or not from a browser, and neither can be hijacked. The app's own origin is
    the scheme and host the app trusts (behind a proxy, what werkzeug's ``ProxyFix`` made of the proxy's
    headers), whole: an ``http://`` page of the same host is not the ``https://`` app.
    """
    origin = request.headers.get("Origin")
    if origin is None or origin in allowed_origins:
        return
    _check_forwarded_proto()
    if origin != f"{request.scheme}://{request.host}":
        raise AuthFailed(TOKEN_INVALID, "cookie sent from an origin that is not allowed")


def _check_forwarded_proto() -> None:
    """Refuse when the proxy's ``X-Forwarded-Proto`` is not the scheme the app sees: the app does not trust it.

    Any client can send that header, so it may refuse a cookie but never admit one. Behind a TLS-terminating
    proxy without ``ProxyFix`` the app sees ``http``, and its "own" origin would be the ``http://`` one.
    """
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()  # as engine.io reads it
    if forwarded and forwarded != request.scheme:
        raise AuthFailed(
            TOKEN_INVALID,
            f"X-Forwarded-Proto is not the app's scheme ({request.scheme}): "
            "wrap app.wsgi_app in werkzeug's ProxyFix(x_proto=1) after init_app",
        )


def verify_token(token: str) -> Identity:
    """Decode and check ``token`` as ``jwt_required()`` would; raise :class:`AuthFailed` with the reason."""
    try:
        claims = decode_token(token)
        header = _verified_header(token)
    except jwt.ExpiredSignatureError:
        raise AuthFailed(TOKEN_EXPIRED) from None
    except _SUBJECT_NOT_A_STRING:
        detail = "sub claim is not a string, which PyJWT refuses unless JWT_VERIFY_SUB is False"
        raise AuthFailed(TOKEN_INVALID, detail) from None
    except Exception as exc:  # any decode failure, including the app's decode_key_loader raising
        raise AuthFailed(TOKEN_INVALID, type(exc).__name__) from None
    if claims.get("type") != "access":
        raise AuthFailed(WRONG_TOKEN_TYPE)
    _run_app_checks(header, claims)
    try:
        user_id = user_id_of(claims.get(jwt_config.identity_claim_key))
    except ValueError:
        raise AuthFailed(TOKEN_INVALID, "identity claim is not a non-empty string or integer") from None
    expires_at = claims.get("exp")
    if expires_at is not None:
        expires_at = float(expires_at) + jwt_config.leeway
    return Identity(user_id=user_id, expires_at=expires_at)


def _verified_header(token: str) -> dict[str, Any]:
    """The header of a token that ``decode_token`` has just verified, for the app's callbacks.

    ``get_unverified_jwt_headers`` would have PyJWT check the whole token's encoding character by character
    once more (~15 µs of each handshake); the signature check has already covered these bytes.
    """
    return json.loads(jwt.utils.base64url_decode(token.partition(".")[0]))


def _run_app_checks(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """The blocklist, the custom claims check and the user lookup the app registered, if any."""
    try:
        verify_token_not_blocklisted(header, claims)
    except RevokedTokenError:
        raise AuthFailed(TOKEN_REVOKED) from None
    try:
        custom_verification_for_token(header, claims)
    except UserClaimsVerificationError:
        raise AuthFailed(TOKEN_INVALID, "token_verification_loader refused the token") from None
    if has_user_lookup() and user_lookup(header, claims) is None:
        raise AuthFailed(TOKEN_INVALID, "user_lookup_loader found no user")
