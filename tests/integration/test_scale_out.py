"""Several server processes sharing delivery through Redis, emitters that serve no sockets, and Redis outages.

Every test has its own Redis channel (pub/sub channels are not per database; no test writes a key): the
scale-out test uses the machine's Redis, the outage tests a private ``redis-server`` on a port of their own
that they stop, restart on the same port and freeze. To show that a socket did *not* receive something, a
later event is sent to it and must be the next one it receives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.live_server import (
    DISCONNECTED,
    EVENT_TIMEOUT,
    REPO_ROOT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    DashboardSocket,
    LiveServer,
    new_user,
)
from tests.nginx_conf import NGINX_CONF, NOT_INSTALLED, NginxProxy, nginx_binary, with_upstreams
from tests.redis_server import (
    BlackHoleProxy,
    PrivateRedis,
    free_port,
    private_channel,
)

pytestmark = pytest.mark.live

PROCESS_TIMEOUT = 60.0  # a worker or CLI process: Python start-up and imports on a busy 2-core machine
NEW_MOC = {"title": "Harbour crane", "theme": "City", "build_status": "ADDED", "cover_image_url": None}
THEMES = [{"theme": "City", "moc_count": 4, "set_count": 9}]
SUMMARY = {
    "totalMocs": 1,
    "totalWishlistItems": 0,
    "mocsByBuildStatus": {"ADDED": 1, "IN_PROGRESS": 0, "BUILT": 0},
    "mocsByCoverageStatus": {"FULL_INVENTORY": 0, "PARTIAL_ORDERED": 0, "NONE": 1},
}
PARTIAL_PARTS = [
    {"id": "7d2b8c1e-5f6a-4b3c-9d8e-0a1b2c3d4e5f", "title": "Tower", "theme": "Castle", "build_status": "BUILT",
     "coverage_percentage": 100, "last_updated_at": "2024-05-01T10:00:00Z"}
]


def queue_config(url: str, channel: str, **extra: Any) -> dict[str, Any]:
    return {"DASHBOARD_WS_MESSAGE_QUEUE": url, "DASHBOARD_WS_CHANNEL": channel, **extra}


def subprocess_env(config: dict[str, Any]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DASHBOARD_WS_TEST_ASYNC_MODE"}
    return {**env, "DASHBOARD_WS_TEST_CONFIG": json.dumps(config), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


def run_worker(config: dict[str, Any], user: str, count: int) -> subprocess.CompletedProcess[str]:
    """``tests/worker.py``: a process with no server and no async mode emits ``count`` events to ``user``."""
    command = [sys.executable, "-m", "tests.worker", "--config", json.dumps(config), "--user", user, "--count", str(count)]
    return subprocess.run(command, check=False, cwd=REPO_ROOT, env=subprocess_env({}), capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT, stdin=subprocess.DEVNULL)


def worker_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The worker's JSON report: the last line of its output (structlog's default prints there too)."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(config: dict[str, Any], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``flask dashboard-ws emit ARGS`` against the test app with ``config``, as an operator would run it."""
    command = [sys.executable, "-m", "flask", "--app", "tests.server_app:app_from_env", "dashboard-ws", "emit", *args]
    return subprocess.run(command, check=False, cwd=REPO_ROOT, env=subprocess_env(config), capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT, input=stdin if stdin is not None else "")


def cli_event_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def receive_ids(sockets: list[DashboardSocket], event_ids: list[str], name: str | None = None) -> None:
    """Each socket's next events are exactly these, in this order."""
    for sock in sockets:
        received = [sock.next_event() for _ in event_ids]
        assert [data["eventId"] if isinstance(data, dict) else data for _, data in received] == event_ids, received
        if name is not None:
            assert {event for event, _ in received} == {name}


# Scale out


def test_an_event_from_any_process_reaches_each_socket_of_its_user_once_and_in_order(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    config = queue_config(shared_redis, private_channel())
    server1, server2 = start_servers(config, 2)
    alice, bob = new_user(), new_user()
    alice_token, bob_token = server1.token(alice), server1.token(bob)
    alice_sockets = [server1.connect(auth=alice_token), server2.connect(auth=alice_token)]
    bob_socket = server1.connect(auth=bob_token)

    # Server 1, inside requests, deferred until each request has succeeded.
    ids = [server1.emitted("POST", "/api/mocs", alice_token, NEW_MOC, status=201)["eventId"] for _ in range(3)]
    receive_ids(alice_sockets, ids, "dashboard:recentMocAdded")

    # Server 2.
    ids = [server2.emitted("PUT", "/api/dashboard/theme-breakdown", alice_token, THEMES)["eventId"] for _ in range(3)]
    receive_ids(alice_sockets, ids, "dashboard:themeBreakdownUpdated")

    # A process that serves no sockets and set no async mode: eventlet, not monkey patched.
    result = run_worker(config, alice, count=5)
    assert result.returncode == 0, result.stdout + result.stderr
    report = worker_report(result)
    assert (report["async_mode"], report["socket_monkey_patched"]) == ("eventlet", False)
    receive_ids(alice_sockets, report["event_ids"], "dashboard:error")

    # The CLI, with the payload as an argument, from stdin and from a file.
    payload_file = server1.log_path.parent / "summary.json"
    payload_file.write_text(json.dumps(SUMMARY))
    ids = [
        cli_event_id(run_cli(config, "--user", alice, "--type", "dashboard:summaryUpdated", "--payload", json.dumps(SUMMARY))),
        cli_event_id(run_cli(config, "--user", alice, "--type", "dashboard:summaryUpdated", "--payload", "-",
                             stdin=json.dumps(SUMMARY))),
        cli_event_id(run_cli(config, "--user", alice, "--type", "dashboard:summaryUpdated", "--payload", f"@{payload_file}")),
    ]
    receive_ids(alice_sockets, ids, "dashboard:summaryUpdated")

    # Bob got none of Alice's events: the first event his socket receives is his own, sent after all of them
    # through the queue (from server 2 to his socket on server 1).
    bob_event = server2.emitted("POST", "/api/dashboard/errors", bob_token, {"code": "BOB", "message": "yours"})
    receive_ids([bob_socket], [bob_event["eventId"]])
    # And Alice's sockets got nothing twice: the next event each receives is a new one.
    last = server1.emitted("POST", "/api/dashboard/errors", alice_token, {"code": "END", "message": "the end"})
    receive_ids(alice_sockets, [last["eventId"]])
    for server in (server1, server2):
        assert "event_dropped" not in server.log


def test_an_apps_own_socketio_with_a_message_queue_shares_delivery(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    channel = private_channel()
    # TEST_OWN_SOCKETIO makes tests/server_app.py build SocketIO(app, message_queue=..., channel=...) itself.
    own = {"TEST_OWN_SOCKETIO": {"message_queue": shared_redis, "channel": channel}}
    (server,) = start_servers(own, 1)
    (other,) = start_servers(queue_config(shared_redis, channel), 1)
    user = new_user()
    token = server.token(user)
    sockets = [server.connect(auth=token), other.connect(auth=token)]
    receive_ids(sockets, [server.emitted("POST", "/api/dashboard/errors", token, {"code": "A", "message": "a"})["eventId"]])
    receive_ids(sockets, [other.emitted("POST", "/api/dashboard/errors", token, {"code": "B", "message": "b"})["eventId"]])


def test_behind_nginx_round_robin_websocket_only_needs_no_sticky_sessions(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str, tmp_path: Path
) -> None:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NOT_INSTALLED)
    websocket_only = {"DASHBOARD_WS_SOCKETIO_OPTIONS": {"transports": ["websocket"]}}
    servers = start_servers(queue_config(shared_redis, private_channel(), **websocket_only), 2)
    upstreams = [server.url.removeprefix("http://") for server in servers]
    port, prefix = free_port(), tmp_path / "nginx"
    proxy = NginxProxy(with_upstreams(NGINX_CONF.read_text(encoding="utf-8"), port, upstreams, prefix), port, prefix)
    try:
        proxy.start(nginx, "/api/health", START_TIMEOUT)
        url = proxy.url
        user = new_user()
        token = servers[0].token(user)
        marks = [server.log_mark() for server in servers]
        sockets: list[DashboardSocket] = []
        # nginx's round robin alternates per worker process, so among 10 connections both processes get some.
        for _ in range(10):
            sock = DashboardSocket()
            sock.connect(url, headers={}, auth={"token": token})
            assert sock.client.connected, (sock.error, sock.connect_error)
            sockets.append(sock)
        def connections_per_server() -> list[int]:
            return [sum(f"user_id={user}" in line for line in server.log.splitlines()[mark:] if " connected " in line)
                    for server, mark in zip(servers, marks)]

        deadline = time.monotonic() + EVENT_TIMEOUT
        while sum(connections_per_server()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)  # the servers' log lines are read by another thread: wait for all ten, bounded
        assert all(connections_per_server()) and sum(connections_per_server()) == 10, connections_per_server()

        # An event emitted through nginx (to whichever process) reaches all ten sockets, once each.
        response = requests.post(url + "/api/dashboard/errors", json={"code": "NGINX", "message": "hello"},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=15)
        assert response.status_code == 200, response.text
        receive_ids(sockets, [response.json()["event"]["eventId"]])
        # Long-polling is refused outright, rather than half-working across processes.
        assert requests.get(url + "/socket.io/?EIO=4&transport=polling", timeout=15).status_code == 400
        for sock in sockets:
            sock.client.disconnect()
    finally:
        proxy.stop(STOP_TIMEOUT)


def test_each_process_hears_only_the_users_it_has_sockets_of_and_either_mode_reaches_the_other(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    """Per-user channels: a user's channel has one subscriber per process with a socket of theirs, and none
    once they have gone. A process publishing on the shared channel ("shared", or python-socketio's own
    manager) and one publishing on users' channels ("user") reach each other's sockets."""
    channel = private_channel()
    [user_mode] = start_servers(queue_config(shared_redis, channel), 1)
    [shared_mode] = start_servers(queue_config(shared_redis, channel, DASHBOARD_WS_QUEUE_CHANNELS="shared"), 1)
    alice, bob = new_user(), new_user()
    alice_token, bob_token = user_mode.token(alice), user_mode.token(bob)
    client = redis.Redis.from_url(shared_redis)
    try:
        alice_socket = user_mode.connect(auth=alice_token)
        bob_socket = shared_mode.connect(auth=bob_token)
        assert numsub(client, f"{channel}:{{user:{alice}}}") == numsub(client, f"{channel}:{{user:{bob}}}") == 1

        to_bob = user_mode.emitted("POST", "/api/dashboard/errors", bob_token, {"code": "U", "message": "u"})
        receive_ids([bob_socket], [to_bob["eventId"]])
        to_alice = shared_mode.emitted("POST", "/api/dashboard/errors", alice_token, {"code": "S", "message": "s"})
        receive_ids([alice_socket], [to_alice["eventId"]])
        result = run_worker(queue_config(shared_redis, channel), alice, count=1)  # a write-only emitter
        assert result.returncode == 0, result.stdout + result.stderr
        receive_ids([alice_socket], worker_report(result)["event_ids"])

        alice_socket.client.disconnect()
        deadline = time.monotonic() + EVENT_TIMEOUT
        while numsub(client, f"{channel}:{{user:{alice}}}") != 0:
            assert time.monotonic() < deadline, "the process still hears a user with no socket in it"
            time.sleep(0.02)  # polling for the condition, bounded by the deadline
    finally:
        client.close()


def numsub(client: Any, channel: str) -> int:
    """How many connections are subscribed to ``channel`` (one per process listening)."""
    return dict(client.pubsub_numsub(channel))[channel.encode()]


def test_on_a_redis_cluster_processes_share_delivery_over_sharded_channels(
    start_servers: Callable[..., list[LiveServer]], redis_cluster: Any
) -> None:
    """redis+cluster://: each user's channel on the shard that owns its slot (SSUBSCRIBE, SPUBLISH). Every event,
    from either process or from a worker, reaches the user's sockets on the other process."""
    config = queue_config(redis_cluster.url, private_channel())
    servers = start_servers(config, 2)
    users = [new_user() for _ in range(4)]
    tokens = {user: servers[0].token(user) for user in users}
    placed = [(user, servers[index % 2]) for index, user in enumerate(users)]
    sockets = {user: server.connect(auth=tokens[user]) for user, server in placed}
    for user, server in placed:
        other = servers[1] if server is servers[0] else servers[0]
        sent = other.emitted("POST", "/api/dashboard/errors", tokens[user], {"code": "C", "message": "cluster"})
        receive_ids([sockets[user]], [sent["eventId"]])
    result = run_worker(config, users[0], count=2)
    assert result.returncode == 0, result.stdout + result.stderr
    receive_ids([sockets[users[0]]], worker_report(result)["event_ids"])


# Outages


def test_a_redis_outage_is_reported_in_bounded_time_and_delivery_resumes_after_it(
    start_servers: Callable[..., list[LiveServer]], private_redis: PrivateRedis
) -> None:
    timeout = 2.0
    config = queue_config(private_redis.url, private_channel(), DASHBOARD_WS_QUEUE_TIMEOUT=timeout)
    server1, server2 = start_servers(config, 2)
    user = new_user()
    token = server1.token(user)
    sock1, sock2 = server1.connect(auth=token), server2.connect(auth=token)
    receive_ids([sock1, sock2], [server2.emitted("POST", "/api/dashboard/errors", token, {"code": "UP", "message": "up"})["eventId"]])

    marks = [server.log_mark() for server in (server1, server2)]
    private_redis.stop()
    for server, mark in zip((server1, server2), marks):
        server.wait_for_log(r"queue_listen_failed", since=mark)

    # An emit at once: the view gets QueueUnavailable (the app answers 503) within the bound, and it is logged.
    started = time.monotonic()
    response = server2.request("POST", "/api/imports", token, PARTIAL_PARTS)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "QueueUnavailable"
    assert elapsed < 2 * timeout, elapsed
    import_id = response.json()["event"]["eventId"]
    server2.wait_for_log(rf"event_dropped .*event_id={import_id} .*reason=queue_unavailable")
    # (It reached the sockets of the emitting process itself, as documented.)
    receive_ids([sock2], [import_id])

    # A deferred emit: the view has returned (201), so the loss is logged.
    started = time.monotonic()
    response = server1.request("POST", "/api/mocs", token, NEW_MOC)
    assert response.status_code == 201, response.text
    assert time.monotonic() - started < 2 * timeout
    moc_id = response.json()["event"]["eventId"]
    server1.wait_for_log(rf"event_dropped .*event_id={moc_id} .*reason=queue_unavailable")
    receive_ids([sock1], [moc_id])

    # A process that serves no sockets is told (exit 1 here), and so is the CLI (exit 1, with the reason).
    result = run_worker(config, user, count=1)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not take the event" in worker_report(result)["error"]
    result = run_cli(config, "--user", user, "--type", "dashboard:error", "--payload", '{"code": "C", "message": "m"}')
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not take the event" in result.stderr and private_redis.url in result.stderr

    # The servers keep their sockets and keep serving: HTTP, and a new socket.
    assert server1.request("GET", "/api/health", token).status_code == 200
    sock3 = server1.connect(auth=token)

    marks = [server.log_mark() for server in (server1, server2)]
    private_redis.start()  # the same port
    for server, mark in zip((server1, server2), marks):
        server.wait_for_log(r"queue_listening", since=mark)

    # Delivery resumes without a restart, from either server and from a worker; and none of the events lost
    # during the outage turns up: the next event of each socket is the first one sent after it.
    after = server2.emitted("POST", "/api/dashboard/errors", token, {"code": "BACK", "message": "back"})
    receive_ids([sock1, sock2, sock3], [after["eventId"]])
    after = server1.emitted("POST", "/api/dashboard/errors", token, {"code": "BACK", "message": "back"})
    receive_ids([sock1, sock2, sock3], [after["eventId"]])
    result = run_worker(config, user, count=2)
    assert result.returncode == 0, result.stdout + result.stderr
    receive_ids([sock1, sock2, sock3], worker_report(result)["event_ids"])
    assert all(sock.client.connected for sock in (sock1, sock2, sock3))


def test_sockets_that_come_and_go_during_an_outage_get_every_later_event_once_redis_is_back(
    start_servers: Callable[..., list[LiveServer]], private_redis: PrivateRedis
) -> None:
    """Subscription churn in the middle of an outage: users leave, new users connect to either process, and
    once Redis is back every connected socket gets what either process emits to its user, once."""
    config = queue_config(private_redis.url, private_channel())
    server1, server2 = start_servers(config, 2)
    users = [new_user() for _ in range(5)]
    tokens = {user: server1.token(user) for user in users}
    sockets = {users[0]: server1.connect(auth=tokens[users[0]]), users[1]: server2.connect(auth=tokens[users[1]]),
               users[2]: server1.connect(auth=tokens[users[2]])}

    marks = [server.log_mark() for server in (server1, server2)]
    private_redis.stop()
    for server, mark in zip((server1, server2), marks):
        server.wait_for_log(r"queue_listen_failed", since=mark)
    sockets.pop(users[2]).client.disconnect()
    sockets[users[3]] = server1.connect(auth=tokens[users[3]])
    sockets[users[4]] = server2.connect(auth=tokens[users[4]])

    marks = [server.log_mark() for server in (server1, server2)]
    private_redis.start()  # the same port
    for server, mark in zip((server1, server2), marks):
        server.wait_for_log(r"queue_listening", since=mark)
    for user, sock in sockets.items():
        ids = [server.emitted("POST", "/api/dashboard/errors", tokens[user], {"code": "BACK", "message": "b"})["eventId"]
               for server in (server1, server2)]
        receive_ids([sock], ids)


def test_a_subscription_that_silently_stops_delivering_is_noticed_and_made_again(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    """The listener's connection black-holed (no reset, as after a NAT drop or a failover) while Redis itself is
    fine: its PING goes unanswered, it says so and subscribes again on a new connection, and delivery resumes."""
    channel = private_channel()
    proxy = BlackHoleProxy(shared_redis)
    try:
        [emitter] = start_servers(queue_config(shared_redis, channel), 1)
        [server] = start_servers(queue_config(proxy.url, channel, DASHBOARD_WS_QUEUE_HEALTH_INTERVAL=1.0), 1)
        user = new_user()
        token = emitter.token(user)
        sock = server.connect(auth=token)
        receive_ids([sock], [emitter.emitted("POST", "/api/dashboard/errors", token, {"code": "A", "message": "a"})["eventId"]])

        mark = server.log_mark()
        proxy.black_hole()
        server.wait_for_log(r"queue_listen_failed .*PING", since=mark)
        server.wait_for_log(r"queue_listening .*user_channels=1", since=mark)
        receive_ids([sock], [emitter.emitted("POST", "/api/dashboard/errors", token, {"code": "B", "message": "b"})["eventId"]])
    finally:
        proxy.close()


def test_a_frozen_redis_fails_an_emit_in_bounded_time_without_stalling_the_server(
    start_servers: Callable[..., list[LiveServer]], private_redis: PrivateRedis
) -> None:
    timeout = 1.5
    config = queue_config(private_redis.url, private_channel(), DASHBOARD_WS_QUEUE_TIMEOUT=timeout)
    server1, server2 = start_servers(config, 2)
    user = new_user()
    token = server1.token(user)
    sock1, sock2 = server1.connect(auth=token), server2.connect(auth=token)
    receive_ids([sock1, sock2], [server1.emitted("POST", "/api/dashboard/errors", token, {"code": "UP", "message": "up"})["eventId"]])

    private_redis.freeze()  # connections stay open and connects succeed, but Redis answers nothing
    try:
        outcome: dict[str, Any] = {}

        def emit_at_once() -> None:
            started = time.monotonic()
            outcome["response"] = server1.request("POST", "/api/imports", token, PARTIAL_PARTS)
            outcome["elapsed"] = time.monotonic() - started

        emitting = threading.Thread(target=emit_at_once)
        started = time.monotonic()
        emitting.start()
        # While that view waits on Redis, the same server answers other requests at once (with eventlet and
        # gevent too: the Redis client waits on green sockets and does not block the event loop).
        answered_during_the_wait = []
        while emitting.is_alive():
            asked = time.monotonic()
            assert server1.request("GET", "/api/health", token).status_code == 200
            answered = time.monotonic()
            assert answered - asked < timeout / 2, f"a request took {answered - asked:.2f}s while an emit waited"
            if emitting.is_alive():
                answered_during_the_wait.append(answered - started)
        emitting.join()
    finally:
        private_redis.thaw()

    assert outcome["response"].status_code == 503, outcome["response"].text
    assert timeout * 0.9 <= outcome["elapsed"] < 2 * timeout, outcome["elapsed"]
    assert answered_during_the_wait and max(answered_during_the_wait) > timeout / 2, answered_during_the_wait
    import_id = outcome["response"].json()["event"]["eventId"]
    server1.wait_for_log(rf"event_dropped .*event_id={import_id} .*reason=queue_unavailable")

    # Redis may still publish the PUBLISH it had received before it froze (documented): the other server's
    # socket gets that event at most once, then what is sent next.
    after = server1.emitted("POST", "/api/dashboard/errors", token, {"code": "THAWED", "message": "thawed"})
    receive_ids([sock1], [import_id, after["eventId"]])
    first = sock2.next_event()
    if first[1]["eventId"] == import_id:
        first = sock2.next_event()
    assert first[0] != DISCONNECTED and first[1]["eventId"] == after["eventId"], first


# Ending a user's sockets


def test_disconnect_user_ends_the_users_sockets_in_every_process(
    start_servers: Callable[..., list[LiveServer]], shared_redis: str
) -> None:
    server1, server2 = start_servers(queue_config(shared_redis, private_channel()), 2)
    user, other = new_user(), new_user()
    token, other_token = server1.token(user), server1.token(other)
    sockets = [server1.connect(auth=token), server2.connect(auth=token)]
    bystanders = [server1.connect(auth=other_token), server2.connect(auth=other_token)]

    response = requests.post(server1.url + "/api/logout?end_sockets=1", headers={"Authorization": f"Bearer {token}"},
                             timeout=EVENT_TIMEOUT)
    assert response.status_code == 200
    for sock in sockets:  # the one on server 2 through Redis
        name, envelope = sock.next_event()
        assert (name, envelope["payload"]) == ("dashboard:error", {"code": "SESSION_ENDED", "message": "Signed out."})
        assert sock.next_event()[0] == DISCONNECTED
    later = server2.emitted("POST", "/api/dashboard/errors", other_token, {"code": "STILL", "message": "here"})
    receive_ids(bystanders, [later["eventId"]])  # nothing of the other user's, and still connected
