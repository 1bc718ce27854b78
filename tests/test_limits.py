"""flask_dashboard_ws/limits.py: the token buckets, the client address and the handshake gate's decision (the rest
is live: integration/)."""

from types import SimpleNamespace

import engineio.packet
import engineio.socket

from flask_dashboard_ws.limits import BucketsByKey, TokenBucket, client_address


def test_a_bucket_gives_a_burst_of_one_seconds_worth_then_its_rate():
    bucket = TokenBucket(3)
    now = bucket.stamp
    assert [bucket.reserve(now) for _ in range(4)] == [0.0, 0.0, 0.0, None]
    assert bucket.reserve(now + 0.34) == 0.0 and bucket.reserve(now + 0.34) is None  # one more each third of a second


def test_a_bucket_books_turns_up_to_max_wait_ahead_and_refuses_beyond():
    bucket = TokenBucket(2)
    now = bucket.stamp
    waits = [bucket.reserve(now, max_wait=1.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.5, 1.0, None]  # the burst, then a turn every half second for one second
    assert bucket.reserve(now + 0.5, max_wait=1.0) == 1.0  # the refused one booked nothing


def test_a_new_bucket_read_at_a_time_just_before_it_was_made_still_has_its_burst():
    bucket = TokenBucket(1)
    assert bucket.reserve(bucket.stamp - 0.001) == 0.0


def test_buckets_by_key_are_separate_and_full_ones_are_forgotten_when_there_are_many():
    buckets = BucketsByKey(1, most=2)
    now = 1e9
    assert buckets.reserve("a", now) == 0.0 and buckets.reserve("a", now) is None and buckets.reserve("b", now) == 0.0
    assert buckets.reserve("c", now + 10) == 0.0  # a and b are full again by then: forgotten, not counted
    assert set(buckets.buckets) == {"c"}


def test_the_client_address_is_the_one_the_farthest_trusted_proxy_saw():
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7"}
    assert client_address(environ, 0) == "10.0.0.1"
    assert client_address(environ, 1) == "198.51.100.7"
    assert client_address(environ, 2) == "203.0.113.9"
    assert client_address(environ, 3) == "10.0.0.1"  # fewer entries than trusted proxies: not trusted


def test_a_packet_without_data_is_queued_behind_a_backlog_over_the_limit(make_app):
    """A ping (no data) sent to a stalled socket must not fail on its size: the backlog is what is measured."""
    h = make_app(DASHBOARD_WS_MAX_OUTGOING_BYTES=1024)
    guard, eio = h.state.guard, h.socketio.server.eio
    socket = engineio.socket.Socket(eio, "stalled")
    eio.sockets["stalled"] = socket
    for _ in range(5):  # over the limit in characters, but too few packets to be measured yet
        guard.send_packet("stalled", engineio.packet.Packet(engineio.packet.MESSAGE, "x" * 300))
    assert not socket.closed
    for _ in range(4):  # pings: once eight packets wait, the backlog is measured and the socket closed
        guard.send_packet("stalled", engineio.packet.Packet(engineio.packet.PING))
    assert socket.closed and guard.counts["slow_reader"] == 1


def handshake(query: str = "EIO=4&transport=websocket") -> dict[str, str]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/", "QUERY_STRING": query, "REMOTE_ADDR": "10.0.0.7"}


def test_gevent_websockets_hook_keeps_a_refused_handshake_plain_http_and_the_gate_answers_it(make_app):
    """``before_upgrade`` (gevent-websocket's pre_start_hook under DashboardRealtime.run) and the gate share one
    decision per request: a handshake is counted against the rates once, and a refused one gets its status."""
    h = make_app(DASHBOARD_WS_METRICS_PATH="/metrics")
    gate, guard = h.state.gate, h.state.guard
    admitted = []
    admit = guard.admit
    guard.admit = lambda environ: admitted.append(environ) or admit(environ)
    started = []

    environ = handshake()
    assert gate.before_upgrade(SimpleNamespace(environ=environ)) is False  # admitted: upgrade it
    gate(environ, lambda status, headers: started.append(status))
    assert len(admitted) == 1 and started != ["429 Too Many Requests"]

    guard.draining = True
    environ, started = handshake(), []
    assert gate.before_upgrade(SimpleNamespace(environ=environ)) is True
    assert b"".join(gate(environ, lambda status, headers: started.append(status))) == b"This server is shutting down.\n"
    assert started == ["503 Service Unavailable"] and len(admitted) == 1
    assert guard.counts["draining"] == 1
    assert h.state.metrics.registry.get_sample_value(
        "dashboard_ws_connection_attempts_total", {"outcome": "refused", "reason": "draining"}) == 1
    assert gate.before_upgrade(SimpleNamespace(environ=handshake("EIO=4&transport=websocket&sid=abc"))) is False
