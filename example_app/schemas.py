"""What the REST API accepts and returns; a request that does not fit gets a 400 naming each field."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .extensions import db
from .models import BuildStatus, CoverageStatus, Theme

# Coverage statuses whose percentage follows from the status itself.
IMPLIED_PERCENTAGE = {CoverageStatus.FULL_INVENTORY: 100.0, CoverageStatus.NONE: 0.0}


class Text(fields.String):
    """A string with surrounding whitespace removed, so that "   " fails a minimum length."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ThemeName(fields.String):
    """A theme's name in, its ``Theme`` row out."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Theme:
        name = super()._deserialize(value, attr, data, **kwargs)
        theme = db.session.scalar(sa.select(Theme).filter_by(name=name))
        if theme is None:
            raise ValidationError("Unknown theme.")
        return theme


class LoginSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


class CoverageSchema(Schema):
    """Parts coverage: the percentage is required for PARTIAL_ORDERED and implied by the other statuses."""

    coverage_status = fields.Enum(CoverageStatus, data_key="coverageStatus")
    coverage_percentage = fields.Float(validate=validate.Range(min=0, max=100), data_key="coveragePercentage")

    @validates_schema
    def _coverage_is_consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        status = data.get("coverage_status")
        percentage = data.get("coverage_percentage")
        if status is None:
            if percentage is not None:
                raise ValidationError("Send it with coverageStatus.", "coveragePercentage")
            return
        implied = IMPLIED_PERCENTAGE.get(status)
        if implied is None and percentage is None:
            raise ValidationError("Required when coverageStatus is PARTIAL_ORDERED.", "coveragePercentage")
        if implied is not None and percentage not in (None, implied):
            raise ValidationError(f"Must be {implied:g} when coverageStatus is {status.value}.", "coveragePercentage")

    @post_load
    def _fill_implied_percentage(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "coverage_status" in data and "coverage_percentage" not in data:
            data["coverage_percentage"] = IMPLIED_PERCENTAGE[data["coverage_status"]]
        return data


class MocCreateSchema(CoverageSchema):
    title = Text(required=True, validate=validate.Length(min=1, max=200))
    theme = ThemeName(required=True)
    build_status = fields.Enum(BuildStatus, load_default=BuildStatus.ADDED, data_key="buildStatus")
    cover_image_url = fields.Url(
        load_default=None, allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=500),
        data_key="coverImageUrl",
    )
    coverage_status = fields.Enum(CoverageStatus, load_default=CoverageStatus.NONE, data_key="coverageStatus")


class MocUpdateSchema(CoverageSchema):
    build_status = fields.Enum(BuildStatus, data_key="buildStatus")

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one of buildStatus, coverageStatus, coveragePercentage.")


class WishlistItemCreateSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    set_number = fields.String(
        load_default=None, allow_none=True, data_key="setNumber",
        validate=validate.Regexp(r"^\d{3,7}(-\d{1,2})?$", error="Must look like 10305 or 10305-1."),
    )


class MocSchema(Schema):
    """A MOC as the API returns it."""

    id = fields.UUID()
    title = fields.String()
    theme = fields.Function(lambda moc: moc.theme.name)
    build_status = fields.Enum(BuildStatus, data_key="buildStatus")
    cover_image_url = fields.String(data_key="coverImageUrl")
    coverage_status = fields.Enum(CoverageStatus, data_key="coverageStatus")
    coverage_percentage = fields.Float(data_key="coveragePercentage")
    created_at = fields.DateTime(data_key="createdAt")
    updated_at = fields.DateTime(data_key="updatedAt")


class WishlistItemSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    set_number = fields.String(data_key="setNumber")
    created_at = fields.DateTime(data_key="createdAt")
