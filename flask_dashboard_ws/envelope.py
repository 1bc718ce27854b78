"""The envelope every event travels in: ``{eventId, type, timestamp, payload}``."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, NamedTuple

from marshmallow import Schema, ValidationError, fields, validate

from .events import EventType
from .schemas import to_iso_z

# What JavaScript's Date.prototype.toISOString() produces: UTC, milliseconds, "Z". ASCII digits only, and
# "\Z" rather than "$", which would also accept a trailing newline.
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z", re.ASCII)


# The canonical form ``str(uuid.uuid4())`` gives: lowercase, hyphenated, version 4, RFC 4122 variant.
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z", re.ASCII)


class EnvelopeSchema(Schema):
    """The envelope's own fields; the payload was validated by its type's schema before this."""

    eventId = fields.String(required=True, validate=validate.Regexp(UUID4, error="Not a canonical version 4 UUID."))
    type = fields.String(required=True, validate=validate.OneOf([member.value for member in EventType]))
    timestamp = fields.String(required=True, validate=validate.Regexp(ISO_Z))
    payload = fields.Raw(required=True)


def make_envelope(kind: EventType, payload: Any) -> dict[str, Any]:
    """Wrap an already validated wire ``payload``.

    Every field but the payload is made here (a uuid4, an ``EventType``, the current UTC time), so the
    result matches :class:`EnvelopeSchema` by construction; the tests hold it to that schema, and
    checking it again on every emit would cost more than the payload's validation.
    """
    return {
        "eventId": str(uuid.uuid4()),
        "type": kind.value,
        "timestamp": to_iso_z(datetime.now(timezone.utc)),
        "payload": payload,
    }


class EventTooLarge(ValidationError):
    """An enveloped event is larger than its limit (``DASHBOARD_WS_MAX_EVENT_BYTES``); nothing was sent."""


class SizeLimit(NamedTuple):
    """The most bytes an enveloped event may have, and what to call that limit in the error."""

    max_bytes: int
    name: str = "DASHBOARD_WS_MAX_EVENT_BYTES"


def check_size(envelope: dict[str, Any], limit: SizeLimit) -> None:
    """Refuse an event whose wire form (compact JSON, non-ASCII escaped, as python-socketio sends it) is too large.

    Every socket of the user queues the whole event, and browsers parse it on their main thread: one large
    event costs every tab of the user, and the AWS backend takes 128 KB at most.
    """
    size = len(json.dumps(envelope, separators=(",", ":")))
    if size > limit.max_bytes:
        raise EventTooLarge(
            {"_schema": [f"The {envelope['type']} event is {size} bytes enveloped, over {limit.name} "
                         f"({limit.max_bytes} bytes)."]}
        )
