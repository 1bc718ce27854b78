"""Everything the dashboard shows, computed in one place.

``GET /api/dashboard`` and the events sent after each write both come from these functions, so a page that
applies events shows exactly what a fresh fetch would. Each returns snake_case mappings that the
extension's payload schemas validate and turn into the camelCase wire form.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from .extensions import db
from .models import BuildStatus, CoverageStatus, Moc, Theme, WishlistItem

RECENT_LIMIT = 10

_MOC_COLUMNS = (Moc.id, Moc.title, Theme.name.label("theme"), Moc.build_status)


def summary(user_id: int) -> dict[str, Any]:
    by_build = {status.value: 0 for status in BuildStatus}
    by_coverage = {status.value: 0 for status in CoverageStatus}
    counts = (
        sa.select(Moc.build_status, Moc.coverage_status, sa.func.count())
        .where(Moc.owner_id == user_id)
        .group_by(Moc.build_status, Moc.coverage_status)
    )
    for build_status, coverage_status, count in db.session.execute(counts):
        by_build[build_status.value] += count
        by_coverage[coverage_status.value] += count
    wishlist = sa.select(sa.func.count()).select_from(WishlistItem).where(WishlistItem.owner_id == user_id)
    return {
        "total_mocs": sum(by_build.values()),
        "total_wishlist_items": db.session.scalar(wishlist),
        "mocs_by_build_status": by_build,
        "mocs_by_coverage_status": by_coverage,
    }


def theme_breakdown(user_id: int) -> list[dict[str, Any]]:
    """The themes the user has MOCs in, most MOCs first."""
    moc_count = sa.func.count(Moc.id)
    query = (
        sa.select(Theme.name.label("theme"), moc_count.label("moc_count"), Theme.set_count)
        .join(Moc, Moc.theme_id == Theme.id)
        .where(Moc.owner_id == user_id)
        .group_by(Theme.id, Theme.name, Theme.set_count)
        .order_by(moc_count.desc(), Theme.name)
    )
    return [row._asdict() for row in db.session.execute(query)]


def _recent_query() -> sa.Select:
    return (
        sa.select(*_MOC_COLUMNS, Moc.cover_image_url, Moc.created_at)
        .join(Moc.theme)
        .order_by(Moc.created_at.desc(), Moc.id.desc())
    )


def recent_mocs(user_id: int) -> list[dict[str, Any]]:
    query = _recent_query().where(Moc.owner_id == user_id).limit(RECENT_LIMIT)
    return [row._asdict() for row in db.session.execute(query)]


def recent_moc(moc_id: uuid.UUID) -> dict[str, Any]:
    """One MOC in the shape of a ``recentMocs`` entry, for the ``recentMocAdded`` event."""
    return db.session.execute(_recent_query().where(Moc.id == moc_id)).one()._asdict()


def partial_parts_mocs(user_id: int) -> list[dict[str, Any]]:
    """The MOCs whose parts are partly owned with the rest ordered, most recently changed first."""
    query = (
        sa.select(*_MOC_COLUMNS, Moc.coverage_percentage, Moc.updated_at.label("last_updated_at"))
        .join(Moc.theme)
        .where(Moc.owner_id == user_id, Moc.coverage_status == CoverageStatus.PARTIAL_ORDERED)
        .order_by(Moc.updated_at.desc(), Moc.id.desc())
    )
    return [row._asdict() for row in db.session.execute(query)]


def view(user_id: int) -> dict[str, Any]:
    return {
        "summary": summary(user_id),
        "theme_breakdown": theme_breakdown(user_id),
        "recent_mocs": recent_mocs(user_id),
        "partial_parts_mocs": partial_parts_mocs(user_id),
    }
