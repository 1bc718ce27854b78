"""``DATABASE_URL`` puts the app on PostgreSQL: seed, sign in, read and write in a database of its own."""

from __future__ import annotations


def test_the_app_runs_on_postgresql(postgres_url, monkeypatch):
    from example_app import create_app
    from example_app.cli import DEMO_USERS
    from example_app.extensions import db

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    app = create_app({"DASHBOARD_WS_ASYNC_MODE": "threading"})
    try:
        seeded = app.test_cli_runner().invoke(args=["seed"])
        client = app.test_client()
        token = client.post("/api/auth/login", json={"username": "alice", "password": DEMO_USERS["alice"]}).json
        headers = {"Authorization": f"Bearer {token['accessToken']}"}
        added = client.post(
            "/api/mocs", headers=headers,
            json={"title": "Pier", "theme": "Ideas", "coverageStatus": "PARTIAL_ORDERED", "coveragePercentage": 12.5},
        )
        changed = client.patch(f"/api/mocs/{added.json['id']}", headers=headers, json={"buildStatus": "BUILT"})
        view = client.get("/api/dashboard", headers=headers).json
        with app.app_context():
            dialect = db.engine.dialect.name
    finally:
        with app.app_context():
            db.engine.dispose()

    assert dialect == "postgresql"
    assert "Seeded postgresql+psycopg://postgres@127.0.0.1:5432/example_app_test_" in seeded.output
    assert (added.status_code, changed.status_code) == (201, 200)
    assert view["summary"]["totalMocs"] == 9
    assert view["summary"]["mocsByBuildStatus"]["BUILT"] == 4
    assert view["recentMocs"][0] == {
        "id": added.json["id"], "title": "Pier", "theme": "Ideas", "buildStatus": "BUILT",
        "coverImageUrl": None, "createdAt": view["recentMocs"][0]["createdAt"],
    }
    assert view["partialPartsMocs"][0]["coveragePercentage"] == 12.5
    assert {"theme": "Ideas", "mocCount": 1, "setCount": 64} in view["themeBreakdown"]
