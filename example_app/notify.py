"""What each write tells its owner's open dashboards.

Call these after the commit: the extension sends the events when the request succeeds and only to the
owner's room, and the payloads come from :mod:`.dashboard`, so they match a fresh ``GET /api/dashboard``.
"""

from __future__ import annotations

from collections.abc import Set

from . import dashboard
from .extensions import realtime
from .models import CoverageStatus, Moc


def moc_added(moc: Moc) -> None:
    user_id = moc.owner_id
    realtime.emit_recent_moc_added(user_id, dashboard.recent_moc(moc.id))
    realtime.emit_summary_updated(user_id, dashboard.summary(user_id))
    realtime.emit_theme_breakdown_updated(user_id, dashboard.theme_breakdown(user_id))
    if moc.coverage_status is CoverageStatus.PARTIAL_ORDERED:
        realtime.emit_partial_parts_updated(user_id, dashboard.partial_parts_mocs(user_id))


def moc_changed(moc: Moc, changed: Set[str], was_partial: bool) -> None:
    """``changed`` names the attributes the write changed; the partial-parts list also shows build status."""
    if not changed:
        return
    user_id = moc.owner_id
    if was_partial or moc.coverage_status is CoverageStatus.PARTIAL_ORDERED:
        realtime.emit_partial_parts_updated(user_id, dashboard.partial_parts_mocs(user_id))
    realtime.emit_summary_updated(user_id, dashboard.summary(user_id))


def wishlist_changed(user_id: int) -> None:
    realtime.emit_summary_updated(user_id, dashboard.summary(user_id))
