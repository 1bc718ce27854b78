"""The collection: users, their MOCs and wishlist items, and the theme catalogue."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.TypeDecorator):
    """A UTC timestamp that reads back time-zone aware: SQLite keeps no zone, PostgreSQL does."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class BuildStatus(str, enum.Enum):
    ADDED = "ADDED"
    IN_PROGRESS = "IN_PROGRESS"
    BUILT = "BUILT"


class CoverageStatus(str, enum.Enum):
    """How much of a MOC's parts list the user has: all of it, some with the rest ordered, or none."""

    FULL_INVENTORY = "FULL_INVENTORY"
    PARTIAL_ORDERED = "PARTIAL_ORDERED"
    NONE = "NONE"


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Theme(db.Model):
    """A LEGO theme; ``set_count`` is the number of official sets the catalogue lists for it."""

    __tablename__ = "themes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    set_count: Mapped[int] = mapped_column(default=0)


class Moc(db.Model):
    __tablename__ = "mocs"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    theme_id: Mapped[int] = mapped_column(sa.ForeignKey("themes.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    build_status: Mapped[BuildStatus] = mapped_column(sa.Enum(BuildStatus, native_enum=False), default=BuildStatus.ADDED)
    cover_image_url: Mapped[str | None] = mapped_column(sa.String(500))
    coverage_status: Mapped[CoverageStatus] = mapped_column(
        sa.Enum(CoverageStatus, native_enum=False), default=CoverageStatus.NONE
    )
    coverage_percentage: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship()
    theme: Mapped[Theme] = relationship()


class WishlistItem(db.Model):
    """An official set the user would like to own."""

    __tablename__ = "wishlist_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    set_number: Mapped[str | None] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship()
