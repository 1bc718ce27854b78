"""Marshmallow schemas for the event payloads and the envelope (wire format: camelCase).

Payload schemas load what an app naturally has at hand (the wire mapping, a snake_case mapping, or an
object such as a model instance with ``datetime`` and enum values) straight into the wire form: camelCase
keys, UUIDs as canonical strings, times as ``Date.toISOString()`` strings. One ``load`` is the whole
validation and conversion of an emit, with no ``dump`` pass after it; ``dump`` of a wire mapping returns it
unchanged, for apps that serve the same shapes over REST.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

BUILD_STATUSES = ("ADDED", "IN_PROGRESS", "BUILT")
COVERAGE_STATUSES = ("FULL_INVENTORY", "PARTIAL_ORDERED", "NONE")

# JavaScript's Number.MAX_SAFE_INTEGER: a larger count would reach the browser rounded.
MAX_SAFE_INTEGER = 2**53 - 1

# What lets a browser read a path on this site as another host: it strips C0 controls and spaces at the
# ends, removes tabs and newlines anywhere and reads "\" as "/", so "/\evil.example" and "/\t/evil.example"
# become "//evil.example". None of these characters belongs in a URL, so each is refused anywhere.
_BROWSER_REWRITES = re.compile(r"[\x00-\x20\\]")


def to_iso_z(value: datetime) -> str:
    """Format ``value`` exactly like ``Date.toISOString()``; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    elif value.utcoffset():
        value = value.astimezone(timezone.utc)
    # isoformat() of the naive UTC time is several times faster than strftime() and zero-pads the year as JS.
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class Count(fields.Integer):
    """A non-negative integer that JavaScript holds exactly; ``True``/``False`` and numeric strings are refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, required=True, validate=validate.Range(min=0, max=MAX_SAFE_INTEGER), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Percentage(fields.Float):
    """A number from 0 to 100; strings and booleans are refused, as for counts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=True, validate=validate.Range(min=0, max=100), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> float:
        if isinstance(value, (bool, str, bytes)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class SiteUrl(fields.Url):
    """An absolute http(s) URL, or a path on this site that no browser reads as another host.

    marshmallow takes ``//host/path`` and ``/\\host/path`` for relative URLs; browsers load both from ``host``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(relative=True, schemes={"http", "https"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        if url.startswith("//") or _BROWSER_REWRITES.search(url):
            raise ValidationError("Must be an absolute http(s) URL or a path on this site.")
        return url


class IsoDateTime(fields.DateTime):
    """An ISO 8601 string or a ``datetime`` in; the ``Date.toISOString()`` form out, on load and on dump."""

    default_error_messages = {"out_of_range": "Not a time between the years 1 and 9999 in UTC."}

    # Loads into the wire string, not a datetime: that is what makes one load the whole conversion.
    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if not isinstance(value, datetime):
            value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return to_iso_z(value)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is in year 0 in UTC
            raise self.make_error("out_of_range") from None

    def _serialize(self, value: datetime | str | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return value if value is None or isinstance(value, str) else to_iso_z(value)


class UuidString(fields.UUID):
    """A UUID (object or string) in; its canonical lowercase string out."""

    def _deserialize(  # type: ignore[override]  # the wire string, as IsoDateTime
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        return str(super()._deserialize(value, attr, data, **kwargs))


class Status(fields.String):
    """One of a fixed set of names; a Python ``Enum`` member is taken by its value."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(required=True, validate=validate.OneOf(choices), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, enum.Enum):
            value = value.value
        return super()._deserialize(value, attr, data, **kwargs)


class WireSchema(Schema):
    """Base for payload schemas: accepts camelCase or snake_case keys, or an object's attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._snake_to_wire = {name: f.data_key for name, f in self.fields.items() if f.data_key not in (None, name)}

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        """Load under the wire key (``attribute = data_key``), so ``load`` alone yields the wire form."""
        if field_obj.data_key:
            field_obj.attribute = field_obj.data_key

    @pre_load
    def _to_wire_keys(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            return self._rename_snake_keys(data)
        if isinstance(data, (str, bytes, list, tuple)) or data is None:
            return data  # let marshmallow report the wrong type
        return self._read_attributes(data)

    def _rename_snake_keys(self, data: Mapping[str, Any]) -> dict[str, Any]:
        wire = dict(data)
        for name, key in self._snake_to_wire.items():
            if name in data:
                if key in data:
                    raise ValidationError(f"given twice, as {key!r} and {name!r}", key)
                wire[key] = wire.pop(name)
        return wire

    def _read_attributes(self, obj: Any) -> dict[str, Any]:
        wire = {}
        for name, field in self.fields.items():
            key = field.data_key or name
            for attribute in (name, key):
                if hasattr(obj, attribute):
                    wire[key] = getattr(obj, attribute)
                    break
        return wire


class BuildStatusCountsSchema(WireSchema):
    ADDED = Count()
    IN_PROGRESS = Count()
    BUILT = Count()


class CoverageStatusCountsSchema(WireSchema):
    FULL_INVENTORY = Count()
    PARTIAL_ORDERED = Count()
    NONE = Count()


class DashboardSummarySchema(WireSchema):
    """``dashboard:summaryUpdated``: the user's totals, and their MOCs counted by build and by parts coverage."""

    total_mocs = Count(data_key="totalMocs")
    total_wishlist_items = Count(data_key="totalWishlistItems")
    mocs_by_build_status = fields.Nested(BuildStatusCountsSchema, required=True, data_key="mocsByBuildStatus")
    mocs_by_coverage_status = fields.Nested(CoverageStatusCountsSchema, required=True, data_key="mocsByCoverageStatus")


class MocBaseSchema(WireSchema):
    """The fields that a recent MOC and a partial-parts MOC share."""

    id = UuidString(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    theme = fields.String(required=True)
    build_status = Status(BUILD_STATUSES, data_key="buildStatus")


class RecentMocSchema(MocBaseSchema):
    """``dashboard:recentMocAdded``: one MOC the user has just added."""

    cover_image_url = SiteUrl(required=True, allow_none=True, data_key="coverImageUrl")
    created_at = IsoDateTime(required=True, data_key="createdAt")


class PartialPartsMocSchema(MocBaseSchema):
    """One MOC of ``dashboard:partialPartsUpdated``, which carries the list of them (``many=True``)."""

    coverage_percentage = Percentage(data_key="coveragePercentage")
    last_updated_at = IsoDateTime(required=True, data_key="lastUpdatedAt")


class ThemeStatsSchema(WireSchema):
    """One theme of ``dashboard:themeBreakdownUpdated``, which carries the list of them (``many=True``)."""

    theme = fields.String(required=True, validate=validate.Length(min=1))
    moc_count = Count(data_key="mocCount")
    set_count = Count(data_key="setCount")


class DashboardErrorSchema(WireSchema):
    """``dashboard:error``: a machine-readable ``code`` and a message for the user."""

    code = fields.String(required=True, validate=validate.Length(min=1))
    message = fields.String(required=True)


class DashboardViewSchema(WireSchema):
    """The whole dashboard as ``GET /api/dashboard`` serves it, in the shapes the events carry."""

    summary = fields.Nested(DashboardSummarySchema, required=True)
    theme_breakdown = fields.List(fields.Nested(ThemeStatsSchema), required=True, data_key="themeBreakdown")
    recent_mocs = fields.List(fields.Nested(RecentMocSchema), required=True, data_key="recentMocs")
    partial_parts_mocs = fields.List(fields.Nested(PartialPartsMocSchema), required=True, data_key="partialPartsMocs")
