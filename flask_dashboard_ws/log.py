"""The package's structured logger, and a filter that keeps tokens out of python-socketio's and engineio's logs.

structlog is not configured here: the app's own structlog (or stdlib logging, through structlog's stdlib
integration) decides where these lines go. With nothing configured, structlog's defaults print them on the
process's output. Event names: ``connect_attempt``, ``connected``, ``auth_failed``, ``connect_refused``,
``connect_abandoned``, ``disconnected``, ``event_emitted``, ``event_dropped``, ``token_expired``,
``user_disconnected``, ``session_limited`` (rate-limited per reason), ``serving``, ``client_event_ignored``,
from the Redis message queue ``queue_listening`` and ``queue_listen_failed``, and from the apigateway backend
``connection_gone``, ``connection_recycled``, ``open_failed``, ``swept``, ``sweep_failed`` and
``handler_failed``. No token or secret is ever a field (queue URLs are logged
without their password). python-socketio's and python-engineio's own lines (``logger=True``,
``engineio_logger=True``) hold none either: :func:`redact_library_loggers` filters them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    import socketio

LOGGER_NAME = "flask_dashboard_ws"
REDACTED = "[redacted]"

logger = structlog.get_logger(LOGGER_NAME)

# Each pattern keeps its first group and replaces the rest. The named values go first, so that a token which is
# not a JWT (a garbage or opaque one) is hidden too; then any JWT left anywhere in the text.
_SECRETS = (
    # "token": "..." (or "access_token", 'token': '...') in a CONNECT packet's auth payload or a dict's repr
    re.compile(r"""(["'][\w-]*token["']\s*:\s*(["']))(?:(?!\2)[^\\]|\\.)*""", re.IGNORECASE),
    # token=... in a query string, access_token_cookie=... in a Cookie header
    re.compile(r"""([\w-]*token[\w-]*=)[^&;\s"']+""", re.IGNORECASE),
    # an Authorization or Cookie header's whole value: "Authorization: ...", 'HTTP_COOKIE': '...', ('Cookie', '...')
    re.compile(r"""((?:authorization|cookie)(?:["']?\s*[:=]|["']\s*,)\s*["']?)[^"'\r\n]+""", re.IGNORECASE),
    # a JWT: three base64url segments, the first a JSON object ('{"' encodes as "eyJ")
    re.compile(r"()eyJ[\w-]*\.[\w-]*\.[\w-]*"),
)


def describe(exc: BaseException) -> str:
    """An exception for a log line's ``error`` field: its type and message."""
    return f"{type(exc).__name__}: {exc}"


def redact(text: str) -> str:
    """``text`` with every token, auth payload token, query-string token and Authorization/Cookie value hidden."""
    for pattern in _SECRETS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


class RedactTokens(logging.Filter):
    """Rewrites a record whose text holds a token before any handler formats it; drops no record.

    A record without a token keeps its message template and arguments (log aggregators group by them).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: the handler would print them raw
            message = f"{record.msg} {record.args!r}"
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_REDACT_TOKENS = RedactTokens()


def redact_library_loggers(server: socketio.Server) -> None:
    """Keep tokens out of python-socketio's and python-engineio's own log lines (``logger`` and ``engineio_logger``).

    engine.io logs every packet it receives, the CONNECT packet with its ``{"token": ...}`` included. Both
    libraries default to module-level loggers that every server in the process shares: one filter instance,
    which ``addFilter`` adds to a logger only once, however many apps call this.
    """
    for library_logger in (server.logger, server.eio.logger):
        if isinstance(library_logger, logging.LoggerAdapter):
            library_logger = library_logger.logger  # an adapter logs through its logger
        if isinstance(library_logger, logging.Logger):  # any other kind of logger object is the app's to filter
            library_logger.addFilter(_REDACT_TOKENS)
