import uuid
from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError

from flask_dashboard_ws import EnvelopeSchema, EventType
from flask_dashboard_ws.envelope import ISO_Z, make_envelope

PAYLOAD = {"code": "OOPS", "message": "Something failed."}
VALID = {"eventId": "6f1c1a52-3b0e-4d4a-9f3e-2a7b8c9d0e1f", "type": "dashboard:error",
         "timestamp": "2025-11-30T12:34:56.789Z", "payload": PAYLOAD}


def test_make_envelope():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    envelope = make_envelope(EventType.ERROR, PAYLOAD)
    after = datetime.now(timezone.utc)

    assert list(envelope) == ["eventId", "type", "timestamp", "payload"]
    event_id = uuid.UUID(envelope["eventId"])
    assert event_id.version == 4 and envelope["eventId"] == str(event_id)
    assert envelope["type"] == "dashboard:error"
    assert envelope["payload"] is PAYLOAD
    assert ISO_Z.match(envelope["timestamp"])
    sent_at = datetime.strptime(envelope["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before <= sent_at <= after
    assert EnvelopeSchema().validate(envelope) == {}


def test_each_envelope_has_its_own_event_id():
    assert make_envelope(EventType.ERROR, PAYLOAD)["eventId"] != make_envelope(EventType.ERROR, PAYLOAD)["eventId"]


@pytest.mark.parametrize("kind", list(EventType))
def test_the_type_is_the_event_name(kind):
    assert make_envelope(kind, [])["type"] == kind.value


@pytest.mark.parametrize("kind", list(EventType))
def test_made_envelopes_pass_the_envelope_schema(kind):
    """make_envelope() does not re-validate what it builds; this holds it to the schema instead."""
    for _ in range(200):
        assert EnvelopeSchema().validate(make_envelope(kind, [])) == {}


def test_envelope_schema_accepts_a_valid_envelope():
    assert EnvelopeSchema().validate(VALID) == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("eventId", str(uuid.uuid1())),
        ("eventId", str(uuid.uuid5(uuid.NAMESPACE_URL, "x"))),
        ("eventId", "not-a-uuid"),
        ("eventId", VALID["eventId"].replace("-", "")),
        ("eventId", VALID["eventId"].upper()),
        ("eventId", "urn:uuid:" + VALID["eventId"]),
        ("eventId", None),
        ("type", "dashboard:unknown"),
        ("type", "summaryUpdated"),
        ("timestamp", "2025-11-30T12:34:56Z"),
        ("timestamp", "2025-11-30T12:34:56.789"),
        ("timestamp", "2025-11-30T12:34:56.789+00:00"),
        ("timestamp", "2025-11-30T12:34:56.789123Z"),
        ("timestamp", "2025-11-30 12:34:56.789Z"),
        ("timestamp", "2025-11-30T12:34:56.789Z\n"),
        ("timestamp", "\u0662\u0660\u0662\u0665-11-30T12:34:56.789Z"),  # non-ASCII digits
        ("timestamp", 1764506096789),
        ("payload", None),
    ],
)
def test_envelope_schema_refuses_a_bad_field(key, value):
    assert list(EnvelopeSchema().validate({**VALID, key: value})) == [key]


@pytest.mark.parametrize("key", list(VALID))
def test_envelope_schema_requires_every_field(key):
    assert list(EnvelopeSchema().validate({k: v for k, v in VALID.items() if k != key})) == [key]


def test_envelope_schema_refuses_unknown_keys():
    assert EnvelopeSchema().validate({**VALID, "userId": "alice"}) == {"userId": ["Unknown field."]}


def test_envelope_schema_load_raises():
    with pytest.raises(ValidationError):
        EnvelopeSchema().load({**VALID, "eventId": str(uuid.uuid1())})
