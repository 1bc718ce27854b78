"""A LEGO MOC collection whose dashboard updates live: the example app of flask-dashboard-ws.

This module imports nothing heavy, so that ``python -m example_app`` can monkey patch with eventlet
before Flask, SQLAlchemy and the standard library's socket users are imported (see ``__main__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app (``example_app.app.create_app``); ``flask --app example_app`` finds it here."""
    from .app import create_app as build

    return build(config)
