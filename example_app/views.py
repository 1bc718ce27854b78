"""The dashboard page and the socket.io-client build it imports."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, render_template, send_from_directory

bp = Blueprint("views", __name__)

# Installed by `npm ci --prefix example_app`; served from here so the page needs no CDN and no build step.
SOCKET_IO_CLIENT_DIST = Path(__file__).parent / "node_modules" / "socket.io-client" / "dist"


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/vendor/socket.io/<path:filename>")
def socket_io_client(filename: str) -> Response:
    return send_from_directory(SOCKET_IO_CLIENT_DIST, filename)
