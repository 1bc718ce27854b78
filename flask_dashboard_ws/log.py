"""The package's structured logger.

structlog is not configured here: the app's own structlog (or stdlib logging, through structlog's stdlib
integration) decides where these lines go. With nothing configured, structlog's defaults print them on the
process's output. Event names: ``connect_attempt``, ``connected``, ``auth_failed``, ``disconnected``,
``event_emitted``, ``event_dropped``, ``client_event_ignored``, and from the Redis message queue
``queue_listening`` and ``queue_listen_failed``. No token or secret is ever a field (queue URLs are logged
without their password).
"""

from __future__ import annotations

import structlog

LOGGER_NAME = "flask_dashboard_ws"

logger = structlog.get_logger(LOGGER_NAME)
