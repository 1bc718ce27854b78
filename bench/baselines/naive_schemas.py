"""The envelope a developer writes from the seed story: one marshmallow Schema, built per emit.

Shared by ``naive_app.py`` (Flask-SocketIO, eventlet), ``asgi_app.py`` (python-socketio under uvicorn) and
the microbenchmark, so that all three do exactly the same validation and serialisation work.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, fields, validate


class RecentMocSchema(Schema):
    id = fields.UUID(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    theme = fields.String(required=True)
    buildStatus = fields.String(required=True, validate=validate.OneOf(["ADDED", "IN_PROGRESS", "BUILT"]))
    coverImageUrl = fields.Url(required=True, allow_none=True)
    createdAt = fields.DateTime(required=True)


class EnvelopeSchema(Schema):
    eventId = fields.UUID(required=True)
    type = fields.String(required=True)
    timestamp = fields.DateTime(required=True)
    payload = fields.Nested(RecentMocSchema, required=True)


def new_moc(title: str) -> dict[str, Any]:
    """What a create view has at hand after its write (the same fields the extension's bench view passes)."""
    return {
        "id": str(uuid.uuid4()),
        "title": title,
        "theme": "Bench",
        "buildStatus": "ADDED",
        "coverImageUrl": None,
        "createdAt": datetime.now(timezone.utc).isoformat(),
    }


def build_envelope(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Validate (load) and serialise (dump) the envelope with a Schema built for this emit."""
    schema = EnvelopeSchema()
    envelope = schema.load(
        {
            "eventId": str(uuid.uuid4()),
            "type": event_type,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "payload": payload,
        }
    )
    return schema.dump(envelope)
