"""The REST API, the seed command and the configuration, in this process with Flask's test client."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flask_dashboard_ws import DashboardViewSchema

SEEDED_ALICE = {
    "totalMocs": 8,
    "totalWishlistItems": 3,
    "mocsByBuildStatus": {"ADDED": 3, "IN_PROGRESS": 2, "BUILT": 3},
    "mocsByCoverageStatus": {"FULL_INVENTORY": 3, "PARTIAL_ORDERED": 3, "NONE": 2},
}


@pytest.fixture
def client(app):
    return app.test_client()


def sign_in(client, username="alice", password=None):
    from example_app.cli import DEMO_USERS

    response = client.post("/api/auth/login", json={"username": username, "password": password or DEMO_USERS[username]})
    return response


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alice(client):
    return bearer(sign_in(client).json["accessToken"])


def test_login_returns_tokens_that_the_api_accepts(client):
    response = sign_in(client)

    assert response.status_code == 200
    assert response.json["user"] == {"id": 1, "username": "alice"}
    assert client.get("/api/dashboard", headers=bearer(response.json["accessToken"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "errors"),
    [
        ({"username": "alice", "password": "wrong"}, 401, {"_schema": ["Wrong username or password."]}),
        ({"username": "nobody", "password": "alice-bricks"}, 401, {"_schema": ["Wrong username or password."]}),
        ({"username": "alice"}, 400, {"password": ["Missing data for required field."]}),
    ],
)
def test_login_refuses_wrong_credentials(client, body, status, errors):
    response = client.post("/api/auth/login", json=body)

    assert (response.status_code, response.json["errors"]) == (status, errors)


def test_refresh_token_renews_the_access_token_and_only_it_does(client):
    tokens = sign_in(client).json

    renewed = client.post("/api/auth/refresh", headers=bearer(tokens["refreshToken"]))
    with_access_token = client.post("/api/auth/refresh", headers=bearer(tokens["accessToken"]))

    assert renewed.status_code == 200
    assert client.get("/api/dashboard", headers=bearer(renewed.json["accessToken"])).status_code == 200
    assert with_access_token.status_code == 422
    assert client.get("/api/dashboard", headers=bearer(tokens["refreshToken"])).status_code == 422


def test_logout_needs_the_access_token_and_ends_the_users_sockets(client, monkeypatch):
    from example_app.auth import SIGNED_OUT_MESSAGE
    from example_app.extensions import realtime

    ended = []
    monkeypatch.setattr(realtime, "disconnect_user", lambda user_id, reason: ended.append((user_id, reason)))
    tokens = sign_in(client).json

    signed_out = client.post("/api/auth/logout", headers=bearer(tokens["accessToken"]))
    with_refresh_token = client.post("/api/auth/logout", headers=bearer(tokens["refreshToken"]))
    without_token = client.post("/api/auth/logout")

    assert (signed_out.status_code, signed_out.data) == (204, b"")
    assert (with_refresh_token.status_code, without_token.status_code) == (422, 401)
    assert ended == [("1", SIGNED_OUT_MESSAGE)]


def test_logout_with_no_sockets_open_succeeds(client, alice):
    assert client.post("/api/auth/logout", headers=alice).status_code == 204


def test_logout_reports_a_message_queue_outage(client, alice, monkeypatch):
    from example_app.extensions import realtime
    from flask_dashboard_ws import QueueUnavailable

    def unavailable(user_id, reason):
        raise QueueUnavailable("Redis is down")

    monkeypatch.setattr(realtime, "disconnect_user", unavailable)

    response = client.post("/api/auth/logout", headers=alice)

    assert response.status_code == 503
    assert response.json["errors"]["_schema"] == ["Signed out here, but other open dashboards may stay live for now."]


def test_dashboard_needs_a_valid_token(app, client):
    from flask_jwt_extended import create_access_token

    with app.app_context():
        expired = create_access_token("1", expires_delta=timedelta(seconds=-60))

    assert client.get("/api/dashboard").status_code == 401
    assert client.get("/api/dashboard", headers=bearer(expired)).status_code == 401


def test_dashboard_shows_the_seeded_collection_in_the_event_shapes(client, alice):
    view = client.get("/api/dashboard", headers=alice).json

    assert DashboardViewSchema().load(view)  # the same schemas as the events
    assert view["summary"] == SEEDED_ALICE
    assert view["themeBreakdown"] == [
        {"theme": "Castle", "mocCount": 3, "setCount": 312},
        {"theme": "City", "mocCount": 2, "setCount": 845},
        {"theme": "Space", "mocCount": 2, "setCount": 276},
        {"theme": "Technic", "mocCount": 1, "setCount": 498},
    ]
    assert [moc["title"] for moc in view["recentMocs"][:2]] == ["Gatehouse Expansion", "Mini Gearbox Crawler"]
    assert [moc["title"] for moc in view["partialPartsMocs"]] == [
        "Mini Gearbox Crawler", "Neo-Classic Shuttle", "Blacksmith's Forge",
    ]
    assert view["recentMocs"][0]["coverImageUrl"] == "/static/covers/castle.svg"
    assert view["recentMocs"][0]["createdAt"].endswith("Z")


def test_dashboard_shows_only_the_users_own_collection(client):
    bob = bearer(sign_in(client, "bob").json["accessToken"])

    view = client.get("/api/dashboard", headers=bob).json

    assert view["summary"]["totalMocs"] == 3
    assert {moc["title"] for moc in view["recentMocs"]} == {"Snowspeeder Diorama", "Rebel Outpost", "Tiny Lighthouse"}


def test_recent_mocs_keep_the_latest_ten_newest_first(client, alice):
    for number in range(1, 4):
        assert client.post("/api/mocs", headers=alice, json={"title": f"New {number}", "theme": "City"}).status_code == 201

    recent = client.get("/api/dashboard", headers=alice).json["recentMocs"]

    assert len(recent) == 10
    assert [moc["title"] for moc in recent[:3]] == ["New 3", "New 2", "New 1"]
    assert "Lakeside Watchtower" not in {moc["title"] for moc in recent}  # the oldest of eleven


def test_adding_a_moc_returns_it(client, alice):
    response = client.post(
        "/api/mocs", headers=alice,
        json={"title": "  River Barge  ", "theme": "City", "buildStatus": "IN_PROGRESS", "coverageStatus": "FULL_INVENTORY"},
    )

    assert response.status_code == 201
    moc = response.json
    assert (moc["title"], moc["theme"], moc["buildStatus"]) == ("River Barge", "City", "IN_PROGRESS")
    assert (moc["coverageStatus"], moc["coveragePercentage"], moc["coverImageUrl"]) == ("FULL_INVENTORY", 100, None)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"title": ["Missing data for required field."], "theme": ["Missing data for required field."]}),
        ({"title": "   ", "theme": "City"}, {"title": ["Length must be between 1 and 200."]}),
        ({"title": "x" * 201, "theme": "City"}, {"title": ["Length must be between 1 and 200."]}),
        ({"title": "Barge", "theme": "Atlantis"}, {"theme": ["Unknown theme."]}),
        ({"title": "Barge", "theme": "City", "buildStatus": "DONE"}, {"buildStatus": ["Must be one of: ADDED, IN_PROGRESS, BUILT."]}),
        ({"title": "Barge", "theme": "City", "coverImageUrl": "ftp://x/y.png"}, {"coverImageUrl": ["Not a valid URL."]}),
        ({"title": "Barge", "theme": "City", "colour": "red"}, {"colour": ["Unknown field."]}),
        (
            {"title": "Barge", "theme": "City", "coverageStatus": "PARTIAL_ORDERED"},
            {"coveragePercentage": ["Required when coverageStatus is PARTIAL_ORDERED."]},
        ),
        (
            {"title": "Barge", "theme": "City", "coverageStatus": "NONE", "coveragePercentage": 50},
            {"coveragePercentage": ["Must be 0 when coverageStatus is NONE."]},
        ),
        (
            {"title": "Barge", "theme": "City", "coverageStatus": "PARTIAL_ORDERED", "coveragePercentage": 101},
            {"coveragePercentage": ["Must be greater than or equal to 0 and less than or equal to 100."]},
        ),
        ([], {"_schema": ["Invalid input type."]}),
    ],
)
def test_invalid_moc_is_refused_with_field_messages(client, alice, body, errors):
    response = client.post("/api/mocs", headers=alice, json=body)

    assert response.status_code == 400
    assert response.json == {"errors": errors}
    assert client.get("/api/dashboard", headers=alice).json["summary"]["totalMocs"] == 8


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"_schema": ["Send at least one of buildStatus, coverageStatus, coveragePercentage."]}),
        ({"coveragePercentage": 50}, {"coveragePercentage": ["Send it with coverageStatus."]}),
        ({"title": "Renamed"}, {"title": ["Unknown field."]}),
    ],
)
def test_invalid_moc_change_is_refused_with_field_messages(client, alice, body, errors):
    moc_id = client.get("/api/dashboard", headers=alice).json["recentMocs"][0]["id"]

    response = client.patch(f"/api/mocs/{moc_id}", headers=alice, json=body)

    assert (response.status_code, response.json) == (400, {"errors": errors})


def test_only_the_owner_can_change_a_moc(client, alice):
    bob = bearer(sign_in(client, "bob").json["accessToken"])
    bobs_moc = client.get("/api/dashboard", headers=bob).json["recentMocs"][0]

    response = client.patch(f"/api/mocs/{bobs_moc['id']}", headers=alice, json={"buildStatus": "BUILT"})

    assert response.status_code == 404
    assert client.get("/api/dashboard", headers=bob).json["recentMocs"][0] == bobs_moc


def test_changing_coverage_moves_a_moc_onto_the_partial_list(client, alice):
    bakery = next(m for m in client.get("/api/dashboard", headers=alice).json["recentMocs"] if m["title"] == "Corner Bakery")

    response = client.patch(
        f"/api/mocs/{bakery['id']}", headers=alice, json={"coverageStatus": "PARTIAL_ORDERED", "coveragePercentage": 55.5}
    )

    assert response.status_code == 200
    partial = client.get("/api/dashboard", headers=alice).json["partialPartsMocs"]
    assert (partial[0]["title"], partial[0]["coveragePercentage"]) == ("Corner Bakery", 55.5)


def test_wishlist_items_are_validated_and_counted(client, alice):
    invalid = client.post("/api/wishlist", headers=alice, json={"name": "Castle", "setNumber": "castle"})
    valid = client.post("/api/wishlist", headers=alice, json={"name": "Lion Knights' Castle", "setNumber": "10305-1"})

    assert (invalid.status_code, invalid.json) == (400, {"errors": {"setNumber": ["Must look like 10305 or 10305-1."]}})
    assert (valid.status_code, valid.json["setNumber"]) == (201, "10305-1")
    assert client.get("/api/dashboard", headers=alice).json["summary"]["totalWishlistItems"] == 4


def test_themes_are_listed_for_the_add_form(client, alice):
    themes = client.get("/api/themes", headers=alice).json

    assert [theme["name"] for theme in themes] == ["Castle", "City", "Ideas", "Space", "Star Wars", "Technic"]


def test_the_page_imports_socket_io_client_from_the_app(client):
    from example_app.views import SOCKET_IO_CLIENT_DIST

    page = client.get("/")

    assert page.status_code == 200
    assert b'"socket.io-client": "/vendor/socket.io/socket.io.esm.min.js"' in page.data
    if (SOCKET_IO_CLIENT_DIST / "socket.io.esm.min.js").exists():  # after `npm ci --prefix example_app`
        with client.get("/vendor/socket.io/socket.io.esm.min.js") as bundle:
            assert bundle.status_code == 200
            assert b"export{" in bundle.data


def test_seed_resets_the_database_and_if_empty_keeps_it(app, client, alice):
    client.post("/api/mocs", headers=alice, json={"title": "Keep me", "theme": "City"})
    runner = app.test_cli_runner()

    kept = runner.invoke(args=["seed", "--if-empty"])
    count_after_keep = client.get("/api/dashboard", headers=alice).json["summary"]["totalMocs"]
    reset = runner.invoke(args=["seed"])
    count_after_reset = client.get("/api/dashboard", headers=bearer(sign_in(client).json["accessToken"])).json["summary"]

    assert "left as it is" in kept.output
    assert count_after_keep == 9
    assert "demo logins: alice / alice-bricks, bob / bob-bricks" in reset.output
    assert count_after_reset == SEEDED_ALICE


def test_seed_if_empty_creates_and_seeds_a_new_database(instance):
    from example_app import create_app
    from example_app.extensions import db

    app = create_app({"DASHBOARD_WS_ASYNC_MODE": "threading", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'new.sqlite'}"})

    result = app.test_cli_runner().invoke(args=["seed", "--if-empty"])

    assert "Seeded sqlite:///" in result.output
    assert sign_in(app.test_client()).status_code == 200
    with app.app_context():
        db.engine.dispose()


def test_configuration_defaults_and_database_url(instance, monkeypatch):
    from example_app.app import create_app, sqlalchemy_url

    default = create_app({"DASHBOARD_WS_ASYNC_MODE": "threading"})
    again = create_app({"DASHBOARD_WS_ASYNC_MODE": "threading"})
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    from_env = create_app({"DASHBOARD_WS_ASYNC_MODE": "threading"})

    assert default.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'example_app.sqlite'}"
    assert default.config["JWT_SECRET_KEY"] == again.config["JWT_SECRET_KEY"] == (instance / "jwt-secret").read_text()
    assert from_env.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
