"""Shared fixtures for the unit tests: an app factory and token helpers.

The apps use ``DASHBOARD_WS_ASYNC_MODE="threading"`` and Flask-SocketIO's in-process test client. Each app's
expiry watcher is replaced by one whose background task is recorded instead of started, so no test depends
on a thread or on the wall clock.
"""

from __future__ import annotations

import gc
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from flask_socketio import SocketIO

from flask_dashboard_ws import DashboardRealtime
from flask_dashboard_ws.expiry import ExpiryWatcher
from flask_dashboard_ws.extension import DashboardState
from tests.redis_server import NO_SHARED_REDIS, SHARED_REDIS_URL, PrivateRedis, PrivateRedisCluster, shared_redis_answers

NS = "/dashboard"
SECRET = "unit-test-secret-that-is-long-enough-for-hs256-and-hs512-0123456789abcdef"


@dataclass
class Harness:
    """One app set up like a user's: ``JWTManager(app)`` then ``DashboardRealtime(app)``."""

    app: Flask
    jwt: JWTManager
    dashboard: DashboardRealtime
    started: list[Callable[[], None]] = field(default_factory=list)  # expiry tasks, recorded not run

    @property
    def state(self) -> DashboardState:
        return self.app.extensions["dashboard_ws"]

    @property
    def socketio(self) -> SocketIO:
        return self.state.socketio

    def token(self, identity: Any = "alice", **kwargs: Any) -> str:
        with self.app.app_context():
            return create_access_token(identity, **kwargs)

    def refresh_token(self, identity: Any = "alice") -> str:
        with self.app.app_context():
            return create_refresh_token(identity)

    def client(self, token: str | None = None, *, auth: Any = None, query_string: str | None = None,
               headers: dict[str, str] | None = None):
        """A test client of the dashboard namespace; ``token`` goes in the auth payload."""
        if token is not None:
            auth = {"token": token}
        return self.socketio.test_client(self.app, namespace=NS, auth=auth, query_string=query_string, headers=headers)

    def sid(self, client: Any) -> str | None:
        return self.socketio.server.manager.sid_from_eio_sid(client.eio_sid, NS)

    def room(self, name: str) -> set[str]:
        """The sids in room ``name`` of the dashboard namespace."""
        return {sid for sid, _ in self.socketio.server.manager.get_participants(NS, name)}

    @staticmethod
    def received(client: Any) -> list[tuple[str, Any]]:
        """``(event name, first argument)`` of what ``client`` received in the namespace since the last call."""
        return [(packet["name"], packet["args"][0]) for packet in client.get_received(NS)]

    def user_rooms(self) -> set[str]:
        return {room for room in self.socketio.server.manager.rooms.get(NS, {}) if isinstance(room, str)
                and room.startswith("user:")}


def build_harness(config: dict[str, Any] | None = None, socketio: SocketIO | None = None,
                  dashboard: DashboardRealtime | None = None) -> Harness:
    app = Flask("dashboard_test_app")
    app.config.update(TESTING=True, JWT_SECRET_KEY=SECRET, DASHBOARD_WS_ASYNC_MODE="threading")
    app.config.update(config or {})
    jwt = JWTManager(app)
    dashboard = dashboard or DashboardRealtime()
    dashboard.init_app(app, socketio)
    harness = Harness(app=app, jwt=jwt, dashboard=dashboard)
    state = harness.state
    state.expiry = ExpiryWatcher(state.end_expired, harness.started.append, lambda seconds: None)
    return harness


@pytest.fixture
def make_app() -> Callable[..., Harness]:
    """``make_app(**config)``: a new :class:`Harness` whose app has ``config`` on top of the test defaults."""

    def factory(socketio: SocketIO | None = None, dashboard: DashboardRealtime | None = None, **config: Any) -> Harness:
        return build_harness(config, socketio=socketio, dashboard=dashboard)

    return factory


@pytest.fixture
def harness(make_app: Callable[..., Harness]) -> Harness:
    return make_app()


def raw_claims(**overrides: Any) -> dict[str, Any]:
    """The claims of a flask-jwt-extended access token for ``alice``, valid now, with ``overrides``."""
    now = int(time.time())
    claims = {"sub": "alice", "type": "access", "fresh": False, "jti": str(uuid.uuid4()), "iat": now, "nbf": now,
              "exp": now + 900}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


@pytest.fixture
def mint() -> Callable[..., str]:
    """``mint(key=SECRET, algorithm="HS256", headers=None, **claim_overrides)``: a hand-made JWT (``None`` drops a claim)."""

    def factory(key: Any = SECRET, algorithm: str = "HS256", headers: dict[str, Any] | None = None,
                **overrides: Any) -> str:
        return pyjwt.encode(raw_claims(**overrides), key, algorithm=algorithm, headers=headers)

    return factory


# --- Redis: the machine's shared server, and private ones a test may stop and restart --------------------

@pytest.fixture
def shared_redis() -> str:
    if not shared_redis_answers():
        pytest.fail(NO_SHARED_REDIS)
    return SHARED_REDIS_URL


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[PrivateRedisCluster]:
    """A Redis Cluster of three masters of the test's own (sharded pub/sub: redis+cluster:// URLs)."""
    try:
        cluster = PrivateRedisCluster(tmp_path)
    except FileNotFoundError:
        pytest.skip("redis-server and redis-cli are not installed: the cluster tests start a cluster of their own")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        # redis-py's RedisCluster keeps one connection of its start-up node discovery out of its pools, so close()
        # leaves it to the garbage collector, which warns: collect it here, where that warning is expected.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    try:
        server = PrivateRedis(tmp_path)
    except FileNotFoundError:
        pytest.skip("redis-server is not installed: the outage tests start a Redis of their own")
    server.start()
    yield server
    server.stop()
