"""flask-dashboard-ws: push validated dashboard events from a Flask app to its users' browser tabs."""

from marshmallow import ValidationError

from .config import ConfigError
from .emitter import DeliveryUnavailable
from .envelope import EnvelopeSchema, EventTooLarge
from .events import EventType, UnknownEventType
from .extension import DashboardRealtime
from .queue import QueueUnavailable
from .schemas import (
    DashboardErrorSchema,
    DashboardSummarySchema,
    DashboardViewSchema,
    PartialPartsMocSchema,
    RecentMocSchema,
    ThemeStatsSchema,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DashboardErrorSchema",
    "DashboardRealtime",
    "DashboardSummarySchema",
    "DashboardViewSchema",
    "DeliveryUnavailable",
    "EnvelopeSchema",
    "EventTooLarge",
    "EventType",
    "PartialPartsMocSchema",
    "QueueUnavailable",
    "RecentMocSchema",
    "ThemeStatsSchema",
    "UnknownEventType",
    "ValidationError",
    "__version__",
]
