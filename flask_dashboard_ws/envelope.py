"""The envelope every event travels in: ``{eventId, type, timestamp, payload}``."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from .events import EventType
from .schemas import to_iso_z

# What JavaScript's Date.prototype.toISOString() produces: UTC, milliseconds, "Z".
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _uuid4(value: uuid.UUID) -> None:
    if value.version != 4:
        raise ValidationError("must be a version 4 UUID")


class EnvelopeSchema(Schema):
    """The envelope's own fields; the payload was validated by its type's schema before this."""

    eventId = fields.UUID(required=True, validate=_uuid4)
    type = fields.String(required=True, validate=validate.OneOf([member.value for member in EventType]))
    timestamp = fields.String(required=True, validate=validate.Regexp(ISO_Z))
    payload = fields.Raw(required=True)


_ENVELOPE_SCHEMA = EnvelopeSchema()


def make_envelope(kind: EventType, payload: Any) -> dict[str, Any]:
    """Wrap an already validated wire ``payload``; the result is checked against :class:`EnvelopeSchema`."""
    envelope = {
        "eventId": str(uuid.uuid4()),
        "type": kind.value,
        "timestamp": to_iso_z(datetime.now(timezone.utc)),
        "payload": payload,
    }
    errors = _ENVELOPE_SCHEMA.validate(envelope)
    if errors:
        raise ValidationError(errors)
    return envelope
