"""The event types and the payload each one carries."""

from __future__ import annotations

import enum
from typing import Any

from marshmallow import Schema, ValidationError

from .schemas import (
    DashboardErrorSchema,
    DashboardSummarySchema,
    PartialPartsMocSchema,
    RecentMocSchema,
    ThemeStatsSchema,
)


class EventType(str, enum.Enum):
    """The Socket.IO event names; each event's name equals its envelope ``type``."""

    SUMMARY_UPDATED = "dashboard:summaryUpdated"
    RECENT_MOC_ADDED = "dashboard:recentMocAdded"
    PARTIAL_PARTS_UPDATED = "dashboard:partialPartsUpdated"
    THEME_BREAKDOWN_UPDATED = "dashboard:themeBreakdownUpdated"
    ERROR = "dashboard:error"

    def __str__(self) -> str:
        return self.value


class UnknownEventType(ValueError):
    """``emit_to_user`` was given a type that is not one of :class:`EventType`."""


# One schema instance per type, built once: building a Schema per emit is the costly part of marshmallow.
PAYLOAD_SCHEMAS: dict[EventType, Schema] = {
    EventType.SUMMARY_UPDATED: DashboardSummarySchema(),
    EventType.RECENT_MOC_ADDED: RecentMocSchema(),
    EventType.PARTIAL_PARTS_UPDATED: PartialPartsMocSchema(many=True),
    EventType.THEME_BREAKDOWN_UPDATED: ThemeStatsSchema(many=True),
    EventType.ERROR: DashboardErrorSchema(),
}


def event_type(value: EventType | str) -> EventType:
    """Return ``value`` as an :class:`EventType`, or raise :class:`UnknownEventType` naming it."""
    try:
        return EventType(value)
    except ValueError:
        known = ", ".join(member.value for member in EventType)
        raise UnknownEventType(f"unknown dashboard event type {value!r}; known types: {known}") from None


def wire_payload(kind: EventType, payload: Any) -> Any:
    """Validate ``payload`` for ``kind`` and return its wire form; raises ``marshmallow.ValidationError``."""
    schema = PAYLOAD_SCHEMAS[kind]
    if schema.many and not isinstance(payload, (list, tuple)):
        raise ValidationError({"_schema": [f"{kind.value} takes a list, got {type(payload).__name__}"]})
    return schema.load(payload)
