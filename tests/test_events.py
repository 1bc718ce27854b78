import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from flask_dashboard_ws import EventType, UnknownEventType
from flask_dashboard_ws.events import PAYLOAD_SCHEMAS, event_type, wire_payload

MOC_ID = str(uuid.UUID("3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"))
WHEN_Z = "2025-11-30T12:34:56.789Z"
SUMMARY = {"totalMocs": 1, "totalWishlistItems": 0, "mocsByBuildStatus": {"ADDED": 1, "IN_PROGRESS": 0, "BUILT": 0},
           "mocsByCoverageStatus": {"FULL_INVENTORY": 0, "PARTIAL_ORDERED": 0, "NONE": 1}}
RECENT = {"id": MOC_ID, "title": "Castle", "theme": "Castle", "buildStatus": "ADDED", "coverImageUrl": None,
          "createdAt": WHEN_Z}
PARTIAL = {"id": MOC_ID, "title": "Castle", "theme": "Castle", "buildStatus": "BUILT", "coveragePercentage": 50.0,
           "lastUpdatedAt": WHEN_Z}
THEME = {"theme": "Castle", "mocCount": 1, "setCount": 0}
ERROR = {"code": "OOPS", "message": "Something failed."}

VALID = {
    EventType.SUMMARY_UPDATED: SUMMARY,
    EventType.RECENT_MOC_ADDED: RECENT,
    EventType.PARTIAL_PARTS_UPDATED: [PARTIAL],
    EventType.THEME_BREAKDOWN_UPDATED: [THEME],
    EventType.ERROR: ERROR,
}
LISTS = [EventType.PARTIAL_PARTS_UPDATED, EventType.THEME_BREAKDOWN_UPDATED]


def test_event_names():
    assert {member.value for member in EventType} == {
        "dashboard:summaryUpdated",
        "dashboard:recentMocAdded",
        "dashboard:partialPartsUpdated",
        "dashboard:themeBreakdownUpdated",
        "dashboard:error",
    }
    assert str(EventType.ERROR) == "dashboard:error"
    assert f"{EventType.SUMMARY_UPDATED}" == "dashboard:summaryUpdated"


def test_every_event_type_has_a_schema():
    assert set(PAYLOAD_SCHEMAS) == set(EventType)
    assert {kind for kind, schema in PAYLOAD_SCHEMAS.items() if schema.many} == set(LISTS)


@pytest.mark.parametrize("kind", list(EventType))
def test_event_type_accepts_members_and_their_names(kind):
    assert event_type(kind) is kind
    assert event_type(kind.value) is kind


@pytest.mark.parametrize("value", ["dashboard:unknown", "summaryUpdated", "SUMMARY_UPDATED", "", None, 42])
def test_an_unknown_event_type_is_named(value):
    with pytest.raises(UnknownEventType) as caught:
        event_type(value)
    assert repr(value) in str(caught.value)
    assert "dashboard:summaryUpdated" in str(caught.value)  # the known types are listed
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("kind", list(EventType))
def test_valid_payloads_come_back_in_wire_form(kind):
    assert wire_payload(kind, VALID[kind]) == VALID[kind]


def test_list_payloads_accept_objects_and_snake_case():
    created = datetime(2025, 11, 30, 12, 34, 56, 789000, tzinfo=timezone.utc)
    mocs = [SimpleNamespace(id=uuid.UUID(MOC_ID), title="Castle", theme="Castle", build_status="BUILT",
                            coverage_percentage=50, last_updated_at=created),
            {"id": MOC_ID, "title": "Castle", "theme": "Castle", "build_status": "BUILT", "coverage_percentage": 50.0,
             "last_updated_at": WHEN_Z}]
    assert wire_payload(EventType.PARTIAL_PARTS_UPDATED, mocs) == [PARTIAL, PARTIAL]
    themes = [SimpleNamespace(theme="Castle", moc_count=1, set_count=0), {"theme": "Castle", "moc_count": 1, "set_count": 0}]
    assert wire_payload(EventType.THEME_BREAKDOWN_UPDATED, themes) == [THEME, THEME]


@pytest.mark.parametrize("kind", LISTS)
def test_an_empty_list_is_a_valid_list_payload(kind):
    assert wire_payload(kind, []) == []


@pytest.mark.parametrize("kind", LISTS)
def test_a_single_item_is_not_a_list_payload(kind):
    with pytest.raises(ValidationError) as caught:
        wire_payload(kind, VALID[kind][0])
    assert caught.value.messages == {"_schema": [f"{kind.value} takes a list, got dict"]}


@pytest.mark.parametrize(
    ("kind", "bad_item", "field"),
    [
        (EventType.PARTIAL_PARTS_UPDATED, {**PARTIAL, "coveragePercentage": 101}, "coveragePercentage"),
        (EventType.PARTIAL_PARTS_UPDATED, {k: v for k, v in PARTIAL.items() if k != "title"}, "title"),
        (EventType.THEME_BREAKDOWN_UPDATED, {**THEME, "mocCount": -1}, "mocCount"),
        (EventType.THEME_BREAKDOWN_UPDATED, {**THEME, "extra": 1}, "extra"),
    ],
)
def test_list_errors_name_the_index_and_field(kind, bad_item, field):
    good = VALID[kind][0]
    with pytest.raises(ValidationError) as caught:
        wire_payload(kind, [good, good, bad_item])
    assert list(caught.value.messages) == [2]
    assert list(caught.value.messages[2]) == [field]


@pytest.mark.parametrize("kind", [EventType.SUMMARY_UPDATED, EventType.RECENT_MOC_ADDED, EventType.ERROR])
def test_object_payloads_refuse_a_list(kind):
    with pytest.raises(ValidationError):
        wire_payload(kind, [VALID[kind]])


@pytest.mark.parametrize("kind", list(EventType))
def test_unknown_keys_are_refused_for_every_type(kind):
    payload = VALID[kind]
    bad = [{**payload[0], "userId": "bob"}] if kind in LISTS else {**payload, "userId": "bob"}
    with pytest.raises(ValidationError, match="userId"):
        wire_payload(kind, bad)


# --- deeply nested input ---------------------------------------------------------------------------------

# marshmallow checks a value's type before it looks inside, so no depth of nesting makes validation recurse.
DEPTH = 10_000  # far past Python's recursion limit (1,000 by default)


def nested(leaf: object, as_dict: bool = False) -> object:
    """``leaf`` inside ``DEPTH`` lists (or one-key dicts), built without recursion."""
    for _ in range(DEPTH):
        leaf = {"a": leaf} if as_dict else [leaf]
    return leaf


@pytest.mark.parametrize("kind", list(EventType))
def test_a_deeply_nested_list_payload_is_refused(kind):
    with pytest.raises(ValidationError) as caught:
        wire_payload(kind, nested(None))
    expected = {"_schema": ["Invalid input type."]}
    assert caught.value.messages == ({0: expected} if kind in LISTS else expected)


@pytest.mark.parametrize("kind", list(EventType))
def test_a_deeply_nested_dict_payload_is_refused(kind):
    payload = nested(None, as_dict=True)
    with pytest.raises(ValidationError) as caught:
        wire_payload(kind, [payload] if kind in LISTS else payload)
    messages = caught.value.messages[0] if kind in LISTS else caught.value.messages
    assert messages["a"] == ["Unknown field."]


@pytest.mark.parametrize("as_dict", [False, True])
@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in EventType for field in (VALID[kind][0] if kind in LISTS else VALID[kind])],
)
def test_a_deeply_nested_field_value_is_refused_by_name(kind, field, as_dict):
    item = VALID[kind][0] if kind in LISTS else VALID[kind]
    bad = {**item, field: nested("Castle", as_dict)}
    with pytest.raises(ValidationError) as caught:
        wire_payload(kind, [bad] if kind in LISTS else bad)
    messages = caught.value.messages[0] if kind in LISTS else caught.value.messages
    assert list(messages) == [field]
