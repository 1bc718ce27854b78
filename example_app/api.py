"""The JSON API behind the dashboard page: the dashboard view and the writes that change it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, request
from flask_jwt_extended import current_user, jwt_required

from flask_dashboard_ws import DashboardViewSchema

from . import dashboard, notify
from .extensions import db
from .models import CoverageStatus, Moc, Theme, WishlistItem
from .schemas import MocCreateSchema, MocSchema, MocUpdateSchema, WishlistItemCreateSchema, WishlistItemSchema

bp = Blueprint("api", __name__, url_prefix="/api")

_view_schema = DashboardViewSchema()


@bp.get("/dashboard")
@jwt_required()
def get_dashboard() -> dict[str, Any]:
    """The whole view, validated by the same schemas as the events so both always agree."""
    return _view_schema.load(dashboard.view(current_user.id))


@bp.get("/themes")
@jwt_required()
def list_themes() -> list[dict[str, Any]]:
    themes = db.session.scalars(sa.select(Theme).order_by(Theme.name))
    return [{"name": theme.name, "setCount": theme.set_count} for theme in themes]


@bp.post("/mocs")
@jwt_required()
def add_moc() -> tuple[dict[str, Any], int]:
    data = MocCreateSchema().load(request.get_json(silent=True))
    moc = Moc(owner_id=current_user.id, **data)
    db.session.add(moc)
    db.session.commit()
    notify.moc_added(moc)
    return MocSchema().dump(moc), 201


@bp.patch("/mocs/<uuid:moc_id>")
@jwt_required()
def update_moc(moc_id: uuid.UUID) -> Any:
    moc = db.session.get(Moc, moc_id)
    if moc is None or moc.owner_id != current_user.id:
        return {"errors": {"id": ["No such MOC."]}}, 404
    changes = MocUpdateSchema().load(request.get_json(silent=True))
    was_partial = moc.coverage_status is CoverageStatus.PARTIAL_ORDERED
    changed = {name for name, value in changes.items() if getattr(moc, name) != value}
    for name in changed:
        setattr(moc, name, changes[name])
    db.session.commit()
    notify.moc_changed(moc, changed, was_partial)
    return MocSchema().dump(moc)


@bp.post("/wishlist")
@jwt_required()
def add_wishlist_item() -> tuple[dict[str, Any], int]:
    data = WishlistItemCreateSchema().load(request.get_json(silent=True))
    item = WishlistItem(owner_id=current_user.id, **data)
    db.session.add(item)
    db.session.commit()
    notify.wishlist_changed(item.owner_id)
    return WishlistItemSchema().dump(item), 201
