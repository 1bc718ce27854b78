"""The Lambda handlers of the WebSocket API: ``$connect``, ``$disconnect``, ``$default``, and the open packet.

socket.io-client waits for the server to speak first (the engine.io open packet), but ``$connect`` cannot send:
the connection exists only once it has returned. So ``$connect`` records the connection and invokes its own
function asynchronously; that invocation claims the connection with a conditional write (Lambda may deliver
an asynchronous event twice, and retries it on error: only the claim's winner sends) and posts the open
packet, retrying while API Gateway still answers 410 for a connection being established.

The client then authenticates on its Socket.IO CONNECT packet, in ``$default``, with the app's
flask-jwt-extended settings and callbacks, in an app context of the user's own app. A refusal is the
Socket.IO ``CONNECT_ERROR`` with ``data.code == "AUTH_FAILED"``, which ends the client's attempts; refusing in
``$connect`` would only show the client a failed WebSocket, which it retries forever.

Every handler catches what it raises and answers 500 instead (the offline emulator stops on a handler's
exception); nothing a client sends reaches a log line but its size and packet type.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from ..auth import (
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_MISSING,
    AuthFailed,
    Identity,
    auth_token,
    handshake_token,
    verify_token,
)
from ..config import listed_origins
from ..log import logger, redact
from ..namespace import TOO_MANY_CONNECTIONS
from . import packets, sweeper
from .aws import client
from .backend import ApiGatewayState
from .management import Outcome
from .table import OPEN, Connection, Handshake

# The key of the asynchronous event that ``$connect`` sends its own function.
OPEN_EVENT = "dashboardWsOpen"
# How long the open invocation retries a 410 (connection not established yet), and its first and longest wait.
OPEN_RETRY_FOR = 5.0
OPEN_RETRY_FIRST = 0.02
OPEN_RETRY_MAX = 0.5

OK = {"statusCode": 200}
FORBIDDEN = {"statusCode": 403}
FAILED = {"statusCode": 500}


@dataclass
class LambdaHandlers:
    """The handlers for one app; build them with :func:`lambda_handlers` once per Lambda container."""

    app: Flask
    state: ApiGatewayState
    lambda_client: Any = None

    def websocket(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """The WebSocket API's three routes, and this function's own asynchronous open invocations.

        Every path returns a truthy result: serverless-offline waits for one until the function times out.
        """
        return self._guarded("websocket", self._route, event)

    def _route(self, event: Mapping[str, Any]) -> dict[str, Any]:
        if OPEN_EVENT in event:
            self.open(event[OPEN_EVENT])
            return OK
        route = event["requestContext"]["routeKey"]
        connection_id = event["requestContext"]["connectionId"]
        if route == "$connect":
            return self.connect(connection_id, event)
        if route == "$disconnect":
            return self.disconnect(connection_id, event)
        return self.message(connection_id, event)

    def sweep(self, event: Any = None, context: Any = None) -> dict[str, Any]:
        """The scheduled sweeper (every ``DASHBOARD_WS_APIGATEWAY_SWEEP_INTERVAL``): pings, expiries, time-outs."""
        return self._guarded("sweep", lambda: sweeper.sweep(self.state, time.time()))

    # -- the routes

    def connect(self, connection_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        headers = _headers(event)
        if not self._origin_allowed(headers):
            logger.warning("connect_refused", connection_id=connection_id, reason="origin", origin=headers.get("origin"))
            return FORBIDDEN
        handshake = self._handshake(event, headers)
        self.state.table.add(connection_id, time.time(), handshake)
        self._lambda().invoke(
            FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"],  # the emulator's context.function_name is "Fake"
            InvocationType="Event",
            Payload=json.dumps({OPEN_EVENT: connection_id}).encode(),
        )
        return OK

    def open(self, connection_id: str) -> None:
        """Send the engine.io open packet once, as soon as API Gateway has established the connection."""
        if not self.state.table.claim_open(connection_id, time.time()):
            return  # a second delivery of this event, or the client left already
        aws = self.state.settings.apigateway
        assert aws is not None
        text = packets.open_packet(
            secrets.token_urlsafe(15), aws.ping_interval, aws.ping_timeout, self.state.settings.max_inbound_bytes
        )
        deadline, wait = time.monotonic() + OPEN_RETRY_FOR, OPEN_RETRY_FIRST
        while (posted := self.state.api.post(connection_id, text)).outcome is Outcome.GONE:
            if time.monotonic() + wait > deadline:
                self.state.forget(connection_id)
                return
            time.sleep(wait)
            wait = min(wait * 2, OPEN_RETRY_MAX)
        if posted.outcome is Outcome.FAILED:  # throttled, say: the client times out and reconnects
            logger.warning("open_failed", connection_id=connection_id, status=posted.status, error=posted.error)

    def disconnect(self, connection_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        connection = self.state.table.remove(connection_id)
        context = event["requestContext"]
        logger.info(
            "disconnected",
            connection_id=connection_id,
            user_id=connection.user_id if connection else None,
            reason=context.get("disconnectReason"),
            status=context.get("disconnectStatusCode"),
        )
        return OK

    def message(self, connection_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        body = event.get("body") or ""
        if event.get("isBase64Encoded") or not isinstance(body, str):
            # AWS closes on a binary frame itself (1003); the emulator passes it on, as a dict
            return self._close(connection_id, "binary_message")
        if len(body) > self.state.settings.max_inbound_bytes:
            return self._close(connection_id, "message_too_large", size=len(body))
        try:
            packet = packets.parse(body)
        except packets.MalformedPacket:
            return self._unexpected(connection_id, "malformed")
        namespace = self.state.settings.namespace
        if packet.is_pong or packet.is_close:
            return OK  # a close is followed by the WebSocket's, and $disconnect
        if packet.is_connect(namespace):
            return self._authenticate(connection_id, packet.data)
        if packet.socketio_type == packets.CONNECT:
            self.state.post(connection_id, packets.connect_error(packet.namespace or "/", "Invalid namespace"))
            return OK
        return self._unexpected(connection_id, f"{packet.engineio_type}{packet.socketio_type or ''}")

    # -- authentication

    def _authenticate(self, connection_id: str, auth: Any) -> dict[str, Any]:
        connection = self.state.table.get(connection_id)
        if connection is None:
            return OK  # closed meanwhile
        if connection.status != OPEN:
            return self._unexpected(connection_id, "connect_again")
        log = logger.bind(connection_id=connection_id)
        source = None
        try:
            identity, source = self._identity(auth, connection)
            log.debug("connect_attempt", token_source=source)
        except AuthFailed as failure:
            return self._refuse(log, connection_id, failure.reason, failure.detail, source)
        except Exception as exc:  # an app callback (blocklist, user lookup) failed: fail closed
            return self._refuse(log, connection_id, TOKEN_INVALID, type(exc).__name__, source)
        limit = self.state.settings.max_sockets_per_user
        sockets = self.state.table.count_of_user(identity.user_id)
        if sockets >= limit:
            log.warning("connect_refused", reason="too_many_connections", user_id=identity.user_id, sockets=sockets)
            self.state.table.refuse(connection_id)
            error = packets.connect_error(
                self.state.settings.namespace, "Too many connections", {"code": TOO_MANY_CONNECTIONS, "limit": limit}
            )
            self.state.post(connection_id, error)
            return OK
        sid = secrets.token_urlsafe(15)
        if not self.state.table.authenticate(connection_id, identity.user_id, identity.expires_at, sid):
            log.info("connect_abandoned", user_id=identity.user_id)
            return OK
        self.state.post(connection_id, packets.connected(self.state.settings.namespace, sid))
        log.info("connected", user_id=identity.user_id)
        return OK

    def _identity(self, auth: Any, connection: Connection) -> tuple[Identity, str]:
        """The CONNECT packet's token first; else what ``$connect`` found in the handshake; as ``find_token``."""
        token = auth_token(auth)
        if token is not None:
            return verify_token(token), "auth"
        handshake = connection.handshake
        if handshake is None:
            raise AuthFailed(TOKEN_MISSING)
        if handshake.reason is not None:
            raise AuthFailed(handshake.reason)
        assert handshake.user_id is not None
        if handshake.expires_at is not None and handshake.expires_at <= time.time():
            raise AuthFailed(TOKEN_EXPIRED)
        return Identity(handshake.user_id, handshake.expires_at), handshake.source

    def _refuse(self, log: Any, connection_id: str, reason: str, detail: str | None, source: str | None) -> dict[str, Any]:
        log.warning("auth_failed", reason=reason, detail=detail, token_source=source)
        self.state.table.refuse(connection_id)
        error = packets.connect_error(
            self.state.settings.namespace, "Authentication failed", {"code": "AUTH_FAILED", "reason": reason}
        )
        self.state.post(connection_id, error)
        return OK

    def _handshake(self, event: Mapping[str, Any], headers: Mapping[str, str]) -> Handshake | None:
        """Verify a token from the handshake's query string, header or cookie now: ``$default`` cannot see them.

        The request is rebuilt as ``https://`` on the API's host: API Gateway serves WebSockets over TLS only, so
        that is the API's own origin for the cookie's origin check.
        """
        query = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters") or {}
        host = headers.get("host", event["requestContext"].get("domainName", "localhost"))
        with self.app.test_request_context("/", base_url=f"https://{host}", headers=dict(headers), query_string=query):
            source = None
            try:
                token, source = handshake_token(self._allowed_origins())
                identity = verify_token(token)
            except AuthFailed as failure:
                return None if failure.reason == TOKEN_MISSING else Handshake(source or "handshake", reason=failure.reason)
            except Exception:  # an app callback failed: fail closed, as on the Socket.IO server
                return Handshake(source or "handshake", reason=TOKEN_INVALID)
        return Handshake(source, user_id=identity.user_id, expires_at=identity.expires_at)

    # -- origins, limits

    def _allowed_origins(self) -> list[str]:
        return listed_origins(self.state.settings.cors_allowed_origins)

    def _origin_allowed(self, headers: Mapping[str, str]) -> bool:
        """As engine.io: no Origin (not a browser) passes; else the WebSocket API's own host or an allowed origin."""
        origin = headers.get("origin")
        allowed = self.state.settings.cors_allowed_origins
        if origin is None or allowed == "*":
            return True
        if allowed is None:
            return urlsplit(origin).netloc == headers.get("host")
        return origin in self._allowed_origins()

    def _unexpected(self, connection_id: str, kind: str) -> dict[str, Any]:
        """The dashboard client sends no events: count them as the Socket.IO server does, and close past the limit."""
        count = self.state.table.count_client_packet(connection_id)
        logger.debug("client_event_ignored", connection_id=connection_id, packet=kind, count=count)
        if count is not None and count > self.state.settings.max_client_events:
            return self._close(connection_id, "client_events")
        return OK

    def _close(self, connection_id: str, reason: str, **fields: Any) -> dict[str, Any]:
        logger.warning("session_limited", connection_id=connection_id, reason=reason, **fields)
        self.state.close(connection_id)
        return OK

    def _lambda(self) -> Any:
        if self.lambda_client is None:
            aws = self.state.settings.apigateway
            assert aws is not None
            self.lambda_client = client("lambda", aws)
        return self.lambda_client

    def _guarded(self, name: str, handler: Callable[..., Any], *args: Any) -> Any:
        with self.app.app_context():
            try:
                return handler(*args)
            except Exception as exc:
                logger.error("handler_failed", handler=name, error=type(exc).__name__, message=redact(str(exc))[:300])
                return FAILED


def lambda_handlers(app_factory: Callable[[], Flask]) -> LambdaHandlers:
    """Build the handlers from the app factory, whose app has ``DASHBOARD_WS_BACKEND = "apigateway"``.

    Call it at module level, once per container::

        from flask_dashboard_ws.apigateway import lambda_handlers
        from myapp import create_app

        handlers = lambda_handlers(create_app)
        websocket = handlers.websocket  # $connect, $disconnect, $default
        sweep = handlers.sweep          # the schedule
    """
    app = app_factory()
    state = app.extensions.get("dashboard_ws")
    if not isinstance(state, ApiGatewayState):
        raise RuntimeError(
            "lambda_handlers needs an app set up with DASHBOARD_WS_BACKEND = 'apigateway' and DashboardRealtime"
        )
    return LambdaHandlers(app, state)


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    """The handshake's headers with lower-case names (API Gateway passes them as the client sent them)."""
    return {name.lower(): value for name, value in (event.get("headers") or {}).items()}
