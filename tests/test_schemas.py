import enum
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from flask_dashboard_ws import (
    DashboardErrorSchema,
    DashboardSummarySchema,
    DashboardViewSchema,
    PartialPartsMocSchema,
    RecentMocSchema,
    ThemeStatsSchema,
)
from flask_dashboard_ws.schemas import to_iso_z

MOC_ID = uuid.UUID("3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b")
WHEN = datetime(2025, 11, 30, 12, 34, 56, 789123, tzinfo=timezone.utc)
WHEN_Z = "2025-11-30T12:34:56.789Z"


class BuildStatus(enum.Enum):
    ADDED = "ADDED"
    IN_PROGRESS = "IN_PROGRESS"
    BUILT = "BUILT"


def wire(schema: Schema, data: Any) -> Any:
    """``load`` alone gives the wire form; ``dump`` of it changes nothing (apps may still call it)."""
    loaded = schema.load(data)
    assert schema.dump(loaded) == loaded
    return loaded


def errors(schema: Schema, data: Any) -> dict:
    with pytest.raises(ValidationError) as caught:
        schema.load(data)
    return caught.value.messages


BUILD_COUNTS = {"ADDED": 5, "IN_PROGRESS": 4, "BUILT": 3}
COVERAGE_COUNTS = {"FULL_INVENTORY": 6, "PARTIAL_ORDERED": 4, "NONE": 2}

SUMMARY = {"totalMocs": 12, "totalWishlistItems": 3, "mocsByBuildStatus": BUILD_COUNTS,
           "mocsByCoverageStatus": COVERAGE_COUNTS}
RECENT = {"id": str(MOC_ID), "title": "Medieval Castle", "theme": "Castle", "buildStatus": "IN_PROGRESS",
          "coverImageUrl": "https://cdn.example.com/castle.png", "createdAt": WHEN_Z}
PARTIAL = {"id": str(MOC_ID), "title": "Medieval Castle", "theme": "Castle", "buildStatus": "ADDED",
           "coveragePercentage": 62.5, "lastUpdatedAt": WHEN_Z}
THEME = {"theme": "Castle", "mocCount": 4, "setCount": 2}
ERROR = {"code": "SUMMARY_FAILED", "message": "Could not compute the summary."}


@dataclass
class Summary:
    total_mocs: int
    total_wishlist_items: int
    mocs_by_build_status: dict
    mocs_by_coverage_status: dict


@dataclass
class Moc:
    id: uuid.UUID
    title: str
    theme: str
    build_status: BuildStatus
    cover_image_url: str | None
    created_at: datetime


@dataclass
class PartialMoc:
    id: uuid.UUID
    title: str
    theme: str
    build_status: BuildStatus
    coverage_percentage: float
    last_updated_at: datetime


@dataclass
class Theme:
    theme: str
    moc_count: int
    set_count: int


# (schema, wire form, the same payload in snake_case, the same payload as an object)
CASES = {
    "summary": (DashboardSummarySchema(), SUMMARY,
                {"total_mocs": 12, "total_wishlist_items": 3, "mocs_by_build_status": BUILD_COUNTS,
                 "mocs_by_coverage_status": COVERAGE_COUNTS},
                Summary(12, 3, BUILD_COUNTS, COVERAGE_COUNTS)),
    "recent_moc": (RecentMocSchema(), RECENT,
                   {"id": str(MOC_ID), "title": "Medieval Castle", "theme": "Castle", "build_status": "IN_PROGRESS",
                    "cover_image_url": "https://cdn.example.com/castle.png", "created_at": WHEN_Z},
                   Moc(MOC_ID, "Medieval Castle", "Castle", BuildStatus.IN_PROGRESS,
                       "https://cdn.example.com/castle.png", WHEN)),
    "partial_parts_moc": (PartialPartsMocSchema(), PARTIAL,
                          {"id": str(MOC_ID), "title": "Medieval Castle", "theme": "Castle", "build_status": "ADDED",
                           "coverage_percentage": 62.5, "last_updated_at": WHEN_Z},
                          PartialMoc(MOC_ID, "Medieval Castle", "Castle", BuildStatus.ADDED, 62.5, WHEN)),
    "theme_stats": (ThemeStatsSchema(), THEME, {"theme": "Castle", "moc_count": 4, "set_count": 2},
                    Theme("Castle", 4, 2)),
    "error": (DashboardErrorSchema(), ERROR, dict(ERROR), SimpleNamespace(**ERROR)),
}
NAMES = list(CASES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", ["wire", "snake", "object"])
def test_each_form_loads_into_the_wire_form(name, form):
    schema, wire_form, snake, obj = CASES[name]
    given = {"wire": wire_form, "snake": snake, "object": obj}[form]
    assert wire(schema, given) == wire_form


def test_an_object_with_camel_case_attributes_is_read():
    assert wire(RecentMocSchema(), SimpleNamespace(**RECENT)) == RECENT


def test_an_objects_extra_attributes_are_not_read():
    moc = SimpleNamespace(**RECENT, owner_id="alice", secret="x")
    assert wire(RecentMocSchema(), moc) == RECENT


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keys_are_refused(name):
    schema, wire_form, _, _ = CASES[name]
    assert errors(schema, {**wire_form, "ownerId": "alice"}) == {"ownerId": ["Unknown field."]}


@pytest.mark.parametrize(("name", "key"), [(name, key) for name in NAMES for key in CASES[name][1]])
def test_each_required_key_missing_is_refused_by_name(name, key):
    schema, wire_form, _, _ = CASES[name]
    payload = {k: v for k, v in wire_form.items() if k != key}
    assert list(errors(schema, payload)) == [key]


@pytest.mark.parametrize("key", ["totalMocs", "coverImageUrl", "createdAt", "buildStatus", "mocCount"])
def test_a_key_given_twice_is_refused(key):
    snake = {"totalMocs": "total_mocs", "coverImageUrl": "cover_image_url", "createdAt": "created_at",
             "buildStatus": "build_status", "mocCount": "moc_count"}[key]
    schema, wire_form, _, _ = next(case for case in CASES.values() if key in case[1])
    messages = errors(schema, {**wire_form, snake: wire_form[key]})
    assert key in messages and snake in messages[key][0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("payload", [None, "text", [], 42])
def test_a_non_mapping_payload_is_refused(name, payload):
    schema = CASES[name][0]
    with pytest.raises(ValidationError):
        schema.load(payload)


# --- timestamps ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (WHEN, WHEN_Z),
        (datetime(2025, 11, 30, 12, 34, 56, 789999), "2025-11-30T12:34:56.789Z"),  # naive: UTC; ms truncated
        (datetime(2025, 11, 30, 14, 34, 56, 789000, tzinfo=timezone(timedelta(hours=2))), WHEN_Z),
        (datetime(2025, 12, 1, 0, 4, 56, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
         "2025-12-01T05:34:56.000Z"),
        (datetime(2025, 1, 2, 3, 4, 5), "2025-01-02T03:04:05.000Z"),
        (datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc), "0999-01-02T03:04:05.006Z"),  # JS pads the year
        (datetime(2025, 11, 30, 12, 34, 56, 789000, tzinfo=timezone(timedelta(0), "GMT")), WHEN_Z),
    ],
)
def test_to_iso_z_matches_date_to_iso_string(value, expected):
    assert to_iso_z(value) == expected


@pytest.fixture
def local_zone_not_utc():
    """Run the test with the process's local time zone five hours behind UTC."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST5"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_naive_datetimes_are_utc_whatever_the_local_zone(local_zone_not_utc):
    assert datetime(2025, 1, 1, 12).astimezone().utcoffset() == timedelta(hours=-5)  # the fixture works
    assert to_iso_z(datetime(2025, 11, 30, 12, 34, 56, 789000)) == WHEN_Z
    assert wire(RecentMocSchema(), {**RECENT, "createdAt": "2025-11-30T12:34:56.789"})["createdAt"] == WHEN_Z


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (WHEN_Z, WHEN_Z),
        ("2025-11-30T12:34:56.789123Z", WHEN_Z),
        ("2025-11-30T14:34:56.789+02:00", WHEN_Z),
        ("2025-11-30T12:34:56", "2025-11-30T12:34:56.000Z"),
        ("0001-01-01T05:00:00+05:00", "0001-01-01T00:00:00.000Z"),  # the first and last times in UTC
        ("9999-12-31T18:59:59.999-05:00", "9999-12-31T23:59:59.999Z"),
        (datetime(2025, 11, 30, 12, 34, 56, 789000), WHEN_Z),
        (datetime(2025, 11, 30, 7, 34, 56, 789000, tzinfo=timezone(timedelta(hours=-5))), WHEN_Z),
    ],
)
def test_timestamps_are_dumped_in_utc_with_milliseconds(given, expected):
    assert wire(RecentMocSchema(), {**RECENT, "createdAt": given})["createdAt"] == expected
    assert wire(PartialPartsMocSchema(), {**PARTIAL, "lastUpdatedAt": given})["lastUpdatedAt"] == expected


@pytest.mark.parametrize("value", ["yesterday", "", None, 1764506096, "2025-13-01T00:00:00Z"])
def test_bad_timestamps_are_refused(value):
    assert list(errors(RecentMocSchema(), {**RECENT, "createdAt": value})) == ["createdAt"]


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T04:59:59.999+05:00",
        "9999-12-31T23:00:00-05:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_times_outside_the_years_1_to_9999_in_utc_are_refused(value):
    expected = ["Not a time between the years 1 and 9999 in UTC."]
    assert errors(RecentMocSchema(), {**RECENT, "createdAt": value}) == {"createdAt": expected}
    assert errors(PartialPartsMocSchema(), {**PARTIAL, "lastUpdatedAt": value}) == {"lastUpdatedAt": expected}


# --- ranges and formats --------------------------------------------------------------------------------

COUNT_FIELDS = [(DashboardSummarySchema(), SUMMARY, "totalMocs"), (DashboardSummarySchema(), SUMMARY, "totalWishlistItems"),
                (ThemeStatsSchema(), THEME, "mocCount"), (ThemeStatsSchema(), THEME, "setCount")]


@pytest.mark.parametrize(("schema", "payload", "key"), COUNT_FIELDS)
@pytest.mark.parametrize("value", [-1, True, False, 1.5, 2.0, "3", None, 2**53])
def test_counts_must_be_non_negative_integers_javascript_holds_exactly(schema, payload, key, value):
    assert list(errors(schema, {**payload, key: value})) == [key]


@pytest.mark.parametrize(("schema", "payload", "key"), COUNT_FIELDS)
@pytest.mark.parametrize("value", [0, 2**53 - 1])  # 2**53 - 1: JavaScript's Number.MAX_SAFE_INTEGER
def test_zero_and_the_largest_safe_integer_are_counts(schema, payload, key, value):
    assert wire(schema, {**payload, key: value})[key] == value


@pytest.mark.parametrize("nested", ["mocsByBuildStatus", "mocsByCoverageStatus"])
@pytest.mark.parametrize("value", [-1, True, "1", 2**53])
def test_nested_counts_are_checked(nested, value):
    first = next(iter(SUMMARY[nested]))
    counts = {**SUMMARY[nested], first: value}
    assert list(errors(DashboardSummarySchema(), {**SUMMARY, nested: counts})[nested]) == [first]


@pytest.mark.parametrize(
    ("nested", "counts", "expected"),
    [
        ("mocsByBuildStatus", {"ADDED": 1, "IN_PROGRESS": 2}, {"BUILT": ["Missing data for required field."]}),
        ("mocsByBuildStatus", {**BUILD_COUNTS, "DRAFT": 1}, {"DRAFT": ["Unknown field."]}),
        ("mocsByBuildStatus", {"added": 5, "IN_PROGRESS": 4, "BUILT": 3},
         {"added": ["Unknown field."], "ADDED": ["Missing data for required field."]}),
        ("mocsByCoverageStatus", {"FULL_INVENTORY": 1, "PARTIAL_ORDERED": 2}, {"NONE": ["Missing data for required field."]}),
        ("mocsByCoverageStatus", {**COVERAGE_COUNTS, "UNKNOWN": 0}, {"UNKNOWN": ["Unknown field."]}),
    ],
)
def test_nested_status_keys_are_exact(nested, counts, expected):
    assert errors(DashboardSummarySchema(), {**SUMMARY, nested: counts}) == {nested: expected}


@pytest.mark.parametrize("title", ["C", "x" * 200])
def test_title_lengths_accepted(title):
    assert wire(RecentMocSchema(), {**RECENT, "title": title})["title"] == title


@pytest.mark.parametrize("title", ["", "x" * 201, None, 5])
def test_title_lengths_refused(title):
    assert list(errors(RecentMocSchema(), {**RECENT, "title": title})) == ["title"]
    assert list(errors(PartialPartsMocSchema(), {**PARTIAL, "title": title})) == ["title"]


@pytest.mark.parametrize("value", [0, 0.0, 37.25, 100])
def test_coverage_percentage_accepted(value):
    assert wire(PartialPartsMocSchema(), {**PARTIAL, "coveragePercentage": value})["coveragePercentage"] == value


@pytest.mark.parametrize("value", [-0.01, 100.01, float("nan"), float("inf"), float("-inf"),
                                   pytest.param(10**400, id="10**400"), True, None, "50", b"50"])
def test_coverage_percentage_refused(value):
    assert list(errors(PartialPartsMocSchema(), {**PARTIAL, "coveragePercentage": value})) == ["coveragePercentage"]


@pytest.mark.parametrize("status", ["DRAFT", "added", "", None])
def test_build_status_must_be_known(status):
    assert list(errors(RecentMocSchema(), {**RECENT, "buildStatus": status})) == ["buildStatus"]


def test_an_enum_with_an_unknown_value_is_refused():
    Other = enum.Enum("Other", {"DRAFT": "DRAFT"})
    assert list(errors(RecentMocSchema(), {**RECENT, "buildStatus": Other.DRAFT})) == ["buildStatus"]


@pytest.mark.parametrize("value", ["not-a-uuid", "", None, 42])
def test_moc_id_must_be_a_uuid(value):
    assert list(errors(RecentMocSchema(), {**RECENT, "id": value})) == ["id"]


def test_moc_id_is_dumped_as_a_string():
    assert wire(RecentMocSchema(), {**RECENT, "id": MOC_ID})["id"] == str(MOC_ID)


@pytest.mark.parametrize("url", [None, "https://cdn.example.com/a.png", "http://cdn.example.com/a.png?size=2",
                                 "/covers/a.png", "/media/x.png", "/media/a%5Cb%20c.png", "https://cdn.example.com"])
def test_cover_image_url_accepted(url):
    assert wire(RecentMocSchema(), {**RECENT, "coverImageUrl": url})["coverImageUrl"] == url


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", "data:image/png;base64,AAAA",
                                 "ftp://cdn.example.com/a.png", "", "not a url",
                                 "//evil.example.com/a.png"])
def test_cover_image_url_refused(url):
    assert list(errors(RecentMocSchema(), {**RECENT, "coverImageUrl": url})) == ["coverImageUrl"]


# Each one loads from evil.example in a browser (WHATWG URL parsing): "\" reads as "/", tabs and newlines
# are removed anywhere, C0 controls and spaces are stripped at the ends.
@pytest.mark.parametrize(
    "url",
    [
        "/\\evil.example/x.png",
        "\\\\evil.example/x.png",
        "\\/evil.example/x.png",
        "/\t/evil.example/x.png",
        "/\n/evil.example/x.png",
        "/\r/evil.example/x.png",
        "\t//evil.example/x.png",
        " //evil.example/x.png",
        "\x00//evil.example/x.png",
        "\x1f//evil.example/x.png",
    ],
)
def test_cover_image_url_a_browser_reads_as_another_host_is_refused(url):
    assert errors(RecentMocSchema(), {**RECENT, "coverImageUrl": url}) == {
        "coverImageUrl": ["Must be an absolute http(s) URL or a path on this site."]
    }


@pytest.mark.parametrize("url", ["/covers/a\\b.png", "https://cdn.example.com/a\\b.png", "/covers/a.png\x00",
                                 "/covers/\x01a.png", "/covers/a.png\n"])
def test_cover_image_url_with_a_backslash_or_control_character_anywhere_is_refused(url):
    assert list(errors(RecentMocSchema(), {**RECENT, "coverImageUrl": url})) == ["coverImageUrl"]


def test_theme_stats_theme_must_not_be_empty():
    assert list(errors(ThemeStatsSchema(), {**THEME, "theme": ""})) == ["theme"]


def test_a_moc_theme_may_be_empty():
    assert wire(RecentMocSchema(), {**RECENT, "theme": ""})["theme"] == ""


def test_error_code_must_not_be_empty():
    assert list(errors(DashboardErrorSchema(), {**ERROR, "code": ""})) == ["code"]


# --- the whole dashboard view ----------------------------------------------------------------------------

VIEW = {"summary": SUMMARY, "themeBreakdown": [THEME], "recentMocs": [RECENT], "partialPartsMocs": [PARTIAL]}


def test_dashboard_view_in_wire_and_snake_form():
    snake = {"summary": CASES["summary"][2], "theme_breakdown": [CASES["theme_stats"][3]],
             "recent_mocs": [CASES["recent_moc"][3]], "partial_parts_mocs": [CASES["partial_parts_moc"][2]]}
    assert wire(DashboardViewSchema(), VIEW) == VIEW
    assert wire(DashboardViewSchema(), snake) == VIEW


def test_dashboard_view_empty_lists():
    view = {**VIEW, "themeBreakdown": [], "recentMocs": [], "partialPartsMocs": []}
    assert wire(DashboardViewSchema(), view) == view


def test_dashboard_view_errors_name_the_list_index_and_field():
    view = {**VIEW, "recentMocs": [RECENT, {**RECENT, "coverImageUrl": "javascript:alert(1)"}]}
    assert errors(DashboardViewSchema(), view) == {"recentMocs": {1: {"coverImageUrl": ["Not a valid URL."]}}}


def test_nested_counts_may_be_objects():
    counts = SimpleNamespace(**BUILD_COUNTS)
    assert wire(DashboardSummarySchema(), {**SUMMARY, "mocsByBuildStatus": counts})["mocsByBuildStatus"] == BUILD_COUNTS
