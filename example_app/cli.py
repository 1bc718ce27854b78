"""``flask --app example_app seed``: a fresh database with two demo users and their collections."""

from __future__ import annotations

from datetime import timedelta

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .extensions import db
from .models import BuildStatus, CoverageStatus, Moc, Theme, User, WishlistItem, utcnow

# Published in the README and printed at start-up: this is demo data, not a secret.
DEMO_USERS = {"alice": "alice-bricks", "bob": "bob-bricks"}

# Theme name, cover picture, and how many official sets the (made-up) catalogue lists for it.
THEMES = [
    ("Castle", "castle", 312),
    ("City", "city", 845),
    ("Ideas", "ideas", 64),
    ("Space", "space", 276),
    ("Star Wars", "star-wars", 921),
    ("Technic", "technic", 498),
]

# Per user: (title, theme, build status, coverage status, coverage %, days ago).
MOCS = {
    "alice": [
        ("Lakeside Watchtower", "Castle", "BUILT", "FULL_INVENTORY", 100, 40),
        ("Blacksmith's Forge", "Castle", "IN_PROGRESS", "PARTIAL_ORDERED", 72, 33),
        ("Moonbase Hab Module", "Space", "BUILT", "FULL_INVENTORY", 100, 27),
        ("Neo-Classic Shuttle", "Space", "IN_PROGRESS", "PARTIAL_ORDERED", 45, 21),
        ("Corner Bakery", "City", "ADDED", "NONE", 0, 14),
        ("Tram Stop", "City", "BUILT", "FULL_INVENTORY", 100, 9),
        ("Mini Gearbox Crawler", "Technic", "ADDED", "PARTIAL_ORDERED", 18, 5),
        ("Gatehouse Expansion", "Castle", "ADDED", "NONE", 0, 2),
    ],
    "bob": [
        ("Snowspeeder Diorama", "Star Wars", "BUILT", "FULL_INVENTORY", 100, 30),
        ("Rebel Outpost", "Star Wars", "IN_PROGRESS", "PARTIAL_ORDERED", 60, 12),
        ("Tiny Lighthouse", "Ideas", "ADDED", "NONE", 0, 4),
    ],
}

WISHLIST = {
    "alice": [("Medieval Town Square", "10332"), ("Galaxy Explorer", "10497"), ("Tram Station", "60423")],
    "bob": [("Millennium Falcon", "75192")],
}


def seed_demo_data() -> None:
    """Drop every table, create them again and add the demo data."""
    db.drop_all()
    db.create_all()
    themes = {name: Theme(name=name, set_count=sets) for name, _, sets in THEMES}
    covers = {name: f"/static/covers/{slug}.svg" for name, slug, _ in THEMES}
    db.session.add_all(themes.values())
    now = utcnow()
    for username, password in DEMO_USERS.items():
        user = User(username=username)
        user.set_password(password)
        db.session.add(user)
        for title, theme, build, coverage, percentage, days_ago in MOCS[username]:
            when = now - timedelta(days=days_ago)
            db.session.add(Moc(
                owner=user, title=title, theme=themes[theme], build_status=BuildStatus(build),
                cover_image_url=covers[theme], coverage_status=CoverageStatus(coverage),
                coverage_percentage=percentage, created_at=when, updated_at=when,
            ))
        for name, set_number in WISHLIST[username]:
            db.session.add(WishlistItem(owner=user, name=name, set_number=set_number))
    db.session.commit()


def is_seeded() -> bool:
    return sa.inspect(db.engine).has_table(User.__tablename__) and db.session.scalar(sa.select(User.id).limit(1)) is not None


@click.command("seed")
@click.option("--if-empty", is_flag=True, help="Leave a database that already has users as it is.")
@with_appcontext
def seed_command(if_empty: bool) -> None:
    """Reset the database and fill it with the demo users and their collections."""
    if if_empty and is_seeded():
        click.echo("The database already has users; left as it is.")
        return
    seed_demo_data()
    logins = ", ".join(f"{user} / {password}" for user, password in DEMO_USERS.items())
    click.echo(f"Seeded {db.engine.url.render_as_string(hide_password=True)}; demo logins: {logins}")
