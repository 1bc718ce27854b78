import json
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask import Flask
from flask_jwt_extended import JWTManager, get_jwt_identity, jwt_required
from structlog.testing import capture_logs
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_dashboard_ws import DashboardRealtime
from flask_dashboard_ws.auth import AuthFailed, Identity, find_token, verify_token
from tests.conftest import SECRET, Harness

NS = "/dashboard"
COOKIES = {"JWT_TOKEN_LOCATION": ["headers", "cookies"]}
# For connect_by_polling: no engine.io task that watches the sockets, which would outlive the test.
POLLING = {"DASHBOARD_WS_SOCKETIO_OPTIONS": {"monitor_clients": False}}
NOT_ALLOWED = "cookie sent from an origin that is not allowed"
PROXY_NOT_TRUSTED = ("X-Forwarded-Proto is not the app's scheme (http): "
                     "wrap app.wsgi_app in werkzeug's ProxyFix(x_proto=1) after init_app")
SUB_NOT_A_STRING = "sub claim is not a string, which PyJWT refuses unless JWT_VERIFY_SUB is False"


def reason(call, *args):
    with pytest.raises(AuthFailed) as caught:
        call(*args)
    return caught.value.reason


def verify(h, token):
    with h.app.app_context():
        return verify_token(token)


def refused_reason(h, token):
    with h.app.app_context():
        return reason(verify_token, token)


def connected_user(h, client):
    """The user whose room ``client`` joined, or None when the connection was refused."""
    if not client.is_connected(NS):
        assert h.sid(client) is None  # in no room at all
        return None
    return h.state.connections[h.sid(client)].user_id


def auth_failures(logs):
    return [entry["reason"] for entry in logs if entry["event"] == "auth_failed"]


def cookie(token):
    return {"Cookie": f"access_token_cookie={token}"}


def failure_detail(logs):
    [detail] = [entry["detail"] for entry in logs if entry["event"] == "auth_failed"]
    return detail


def connect_by_polling(h, headers=None, auth=None, query_string=""):
    """Connect as a long-polling client through the app's whole WSGI stack (``app.wsgi_app``: a ``ProxyFix``
    around it, Flask-SocketIO's middleware, engine.io's own Origin check), which the Socket.IO test client skips.

    Returns the HTTP status of the engine.io handshake (400 when engine.io refused the Origin) and the user
    whose room the socket joined, or None when the namespace refused it (and the server closed the session).
    A connected client then closes its session.
    """
    http = h.app.test_client(use_cookies=False)  # with its cookie jar, werkzeug's client drops a Cookie header
    url = f"/socket.io/?EIO=4&transport=polling{query_string}"
    opened = http.get(url, headers=headers)
    if opened.status_code != 200:
        return opened.status_code, None
    url += f"&sid={json.loads(opened.get_data(as_text=True)[1:])['sid']}"
    http.post(url, data=f"40{NS},{json.dumps(auth) if auth else ''}", headers=headers)
    answer = http.get(url, headers=headers).get_data(as_text=True)
    if not answer.startswith(f"40{NS},"):
        return 200, None
    user = h.state.connections[json.loads(answer[len(f"40{NS},"):])["sid"]].user_id
    http.post(url, data="1", headers=headers)  # the client's CLOSE packet
    return 200, user


def polling_outcome(h, headers):
    """The user, ``"engine.io: <status>"`` when engine.io refused the handshake, or the auth_failed detail."""
    with capture_logs() as logs:
        status, user = connect_by_polling(h, headers)
    if status != 200:
        return f"engine.io: {status}"
    return user or failure_detail(logs)


# --- where the token comes from ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("auth", "query_string", "header", "cookie"), "auth"),
        (("query_string", "header", "cookie"), "query_string"),
        (("header", "cookie"), "header"),
        (("cookie",), "cookie"),
    ],
)
def test_find_token_order(make_app, present, expected):
    h = make_app(**COOKIES)
    auth = {"token": "tok-auth"} if "auth" in present else None
    query = {"token": "tok-query_string"} if "query_string" in present else None
    headers = {}
    if "header" in present:
        headers["Authorization"] = "Bearer tok-header"
    if "cookie" in present:
        headers["Cookie"] = "access_token_cookie=tok-cookie"
    with h.app.test_request_context("/socket.io/", query_string=query, headers=headers):
        assert find_token(auth, []) == (f"tok-{expected}", expected)


@pytest.mark.parametrize(
    ("present", "expected_user"),
    [
        (("auth", "query_string", "header", "cookie"), "alice"),
        (("query_string", "header", "cookie"), "bob"),
        (("header", "cookie"), "carol"),
        (("cookie",), "dave"),
    ],
)
def test_the_first_source_decides_the_user(make_app, present, expected_user):
    h = make_app(**COOKIES)
    headers = {}
    if "header" in present:
        headers["Authorization"] = f"Bearer {h.token('carol')}"
    if "cookie" in present:
        headers["Cookie"] = f"access_token_cookie={h.token('dave')}"
    client = h.client(
        auth={"token": h.token("alice")} if "auth" in present else None,
        query_string=f"token={h.token('bob')}" if "query_string" in present else None,
        headers=headers,
    )
    assert connected_user(h, client) == expected_user
    assert h.user_rooms() == {f"user:{expected_user}"}


def test_a_null_auth_token_falls_through_to_the_next_source(harness):
    client = harness.client(auth={"token": None}, headers={"Authorization": f"Bearer {harness.token('bob')}"})
    assert connected_user(harness, client) == "bob"


def test_an_invalid_first_source_is_not_skipped(harness):
    # A bad token in the auth payload refuses the connection even though the header holds a good one.
    with capture_logs() as logs:
        client = harness.client(auth={"token": "garbage"}, headers={"Authorization": f"Bearer {harness.token()}"})
    assert connected_user(harness, client) is None
    assert auth_failures(logs) == ["token_invalid"]


def test_cookies_are_ignored_unless_jwt_token_location_has_them(harness):
    with capture_logs() as logs:
        client = harness.client(headers={"Cookie": f"access_token_cookie={harness.token()}"})
    assert connected_user(harness, client) is None
    assert auth_failures(logs) == ["token_missing"]


def test_a_custom_cookie_name_is_used(make_app):
    h = make_app(JWT_ACCESS_COOKIE_NAME="session_jwt", **COOKIES)
    client = h.client(headers={"Cookie": f"session_jwt={h.token()}"})
    assert connected_user(h, client) == "alice"


def test_a_custom_header_name_and_type(make_app):
    h = make_app(JWT_HEADER_NAME="X-Auth", JWT_HEADER_TYPE="JWT")
    assert connected_user(h, h.client(headers={"X-Auth": f"JWT {h.token()}"})) == "alice"
    assert connected_user(h, h.client(headers={"Authorization": f"Bearer {h.token('bob')}"})) is None


def test_an_empty_header_type_means_the_whole_header_is_the_token(make_app):
    h = make_app(JWT_HEADER_TYPE="")
    assert connected_user(h, h.client(headers={"Authorization": h.token()})) == "alice"


@pytest.mark.parametrize(
    ("cors", "origin", "accepted"),
    [
        (None, None, True),  # no Origin: not a browser's cross-site WebSocket
        (None, "http://localhost", True),  # the app's own origin
        (None, "https://evil.example", False),
        (None, "http://localhost:8080", False),
        (None, "https://localhost", False),
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://app.example.com"], "http://localhost", True),
        (["https://app.example.com"], "https://evil.example", False),
        ("https://app.example.com", "https://app.example.com", True),
        ("*", "https://evil.example", False),
        ("*", "http://localhost", True),
    ],
)
def test_cookie_origin(make_app, cors, origin, accepted):
    h = make_app(DASHBOARD_WS_CORS_ALLOWED_ORIGINS=cors, **COOKIES)
    headers = {"Cookie": f"access_token_cookie={h.token()}"}
    if origin is not None:
        headers["Origin"] = origin
    with capture_logs() as logs:
        client = h.client(headers=headers)
    assert connected_user(h, client) == ("alice" if accepted else None)
    assert auth_failures(logs) == ([] if accepted else ["token_invalid"])


@pytest.mark.parametrize(
    ("forwarded", "origin", "refusal"),
    [
        # The proxy says https, the app sees http: it does not trust its proxy, so it cannot tell its own origin.
        ("https", "https://localhost", PROXY_NOT_TRUSTED),
        ("https", "http://localhost", PROXY_NOT_TRUSTED),
        ("https", "https://evil.example", PROXY_NOT_TRUSTED),
        ("https, http", "https://localhost", PROXY_NOT_TRUSTED),  # the first value, as engine.io reads it
        # A plain-HTTP proxy.
        ("http", "http://localhost", None),
        ("http", "https://localhost", NOT_ALLOWED),
        ("http", "https://evil.example", NOT_ALLOWED),
    ],
)
def test_cookie_origin_behind_a_proxy(make_app, forwarded, origin, refusal):
    # The Socket.IO test client's requests are http://localhost; see the next tests for ProxyFix.
    h = make_app(**COOKIES)
    with capture_logs() as logs:
        client = h.client(headers={"Origin": origin, "X-Forwarded-Proto": forwarded, **cookie(h.token())})
    if refusal is None:
        assert connected_user(h, client) == "alice"
    else:
        assert connected_user(h, client) is None
        assert failure_detail(logs) == refusal


def test_a_listed_origin_needs_no_trusted_proxy(make_app):
    h = make_app(DASHBOARD_WS_CORS_ALLOWED_ORIGINS=["https://app.example.com"], **COOKIES)
    headers = {"Origin": "https://app.example.com", "X-Forwarded-Proto": "https", **cookie(h.token())}
    assert connected_user(h, h.client(headers=headers)) == "alice"


@pytest.mark.parametrize(
    ("proxy_fix", "cors", "origin", "outcome"),
    [
        # With ProxyFix the app's origin is https://localhost for engine.io and for the cookie check alike.
        (True, None, "https://localhost", "alice"),
        (True, None, "http://localhost", "engine.io: 400"),
        (True, None, "https://evil.example", "engine.io: 400"),
        # "*": engine.io admits any origin, the cookie check only the app's own, whole.
        (True, "*", "https://localhost", "alice"),
        (True, "*", "http://localhost", NOT_ALLOWED),  # an http:// page is not the https:// app
        (True, "*", "https://localhost:8443", NOT_ALLOWED),
        (True, "*", "https://evil.example", NOT_ALLOWED),
        # Without it engine.io admits both schemes (it reads X-Forwarded-Proto itself); the cookie check does not.
        (False, None, "https://localhost", PROXY_NOT_TRUSTED),
        (False, None, "http://localhost", PROXY_NOT_TRUSTED),
    ],
)
def test_cookie_origin_behind_a_tls_proxy_with_proxy_fix(make_app, proxy_fix, cors, origin, outcome):
    h = make_app(DASHBOARD_WS_CORS_ALLOWED_ORIGINS=cors, **COOKIES, **POLLING)
    if proxy_fix:
        h.app.wsgi_app = ProxyFix(h.app.wsgi_app, x_proto=1)
    assert polling_outcome(h, {"Origin": origin, "X-Forwarded-Proto": "https", **cookie(h.token())}) == outcome


@pytest.mark.parametrize(("x_host", "outcome"), [(1, "alice"), (0, NOT_ALLOWED)])
def test_a_proxy_that_changes_host_needs_proxy_fix_x_host(make_app, x_host, outcome):
    # engine.io admits X-Forwarded-Host's origin either way; the cookie check only when ProxyFix trusts it.
    h = make_app(**COOKIES, **POLLING)
    h.app.wsgi_app = ProxyFix(h.app.wsgi_app, x_proto=1, x_host=x_host)
    headers = {"Host": "127.0.0.1:8001", "X-Forwarded-Host": "dash.example.com", "X-Forwarded-Proto": "https",
               "Origin": "https://dash.example.com", **cookie(h.token())}
    assert polling_outcome(h, headers) == outcome


def test_proxy_fix_must_wrap_the_socketio_middleware(mint):
    # Wrapped before init_app, ProxyFix only sees the app's other requests: Flask-SocketIO's middleware,
    # which init_app puts around app.wsgi_app, answers /socket.io/ itself.
    app = Flask("dashboard_test_app")
    app.config.update(TESTING=True, JWT_SECRET_KEY=SECRET, DASHBOARD_WS_ASYNC_MODE="threading", **COOKIES, **POLLING)
    jwt = JWTManager(app)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)
    h = Harness(app=app, jwt=jwt, dashboard=DashboardRealtime(app))
    headers = {"Origin": "https://localhost", "X-Forwarded-Proto": "https", **cookie(mint())}
    assert polling_outcome(h, headers) == PROXY_NOT_TRUSTED


@pytest.mark.parametrize("source", ["auth", "query_string", "header"])
def test_the_origin_is_not_checked_for_tokens_a_page_must_read_first(make_app, source):
    h = make_app(**COOKIES)
    token = h.token()
    headers = {"Origin": "https://evil.example"}
    if source == "header":
        headers["Authorization"] = f"Bearer {token}"
    client = h.client(auth={"token": token} if source == "auth" else None,
                      query_string=f"token={token}" if source == "query_string" else None, headers=headers)
    assert connected_user(h, client) == "alice"


# --- refusals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, {}, {"token": None}, {"token": ""}, {"token_": "x"}, "a-string", ["token"]])
def test_token_missing(harness, auth):
    with harness.app.test_request_context("/socket.io/"):
        assert reason(find_token, auth, []) == "token_missing"


@pytest.mark.parametrize("token", [123, ["a"], {"jwt": "a"}, b"bytes", True])
def test_a_non_string_auth_token_is_invalid(harness, token):
    with harness.app.test_request_context("/socket.io/"):
        assert reason(find_token, {"token": token}, []) == "token_invalid"


@pytest.mark.parametrize("header", ["Token abc", "bearer abc", "Bearer", "Bearer ", "Bearer    ", "abc"])
def test_a_malformed_authorization_header_is_invalid(harness, header):
    with harness.app.test_request_context("/socket.io/", headers={"Authorization": header}):
        assert reason(find_token, None, []) == "token_invalid"


def test_an_empty_query_token_is_missing(harness):
    with harness.app.test_request_context("/socket.io/", query_string={"token": ""}):
        assert reason(find_token, None, []) == "token_missing"


def now():
    return int(time.time())


def tampered(token):
    """``token`` with one character of its signature changed (a middle one: the last may only hold padding bits)."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{signature[:5]}{'A' if signature[5] != 'A' else 'B'}{signature[6:]}"


@pytest.mark.parametrize(
    ("config", "make_token", "expected"),
    [
        ({}, lambda h, mint: "not.a.jwt", "token_invalid"),
        ({}, lambda h, mint: "", "token_invalid"),
        ({}, lambda h, mint: "a.b", "token_invalid"),
        ({}, lambda h, mint: mint(key="another-secret-that-is-long-enough-for-hs256-and-hs512-0123456789abcdef"), "token_invalid"),
        ({}, lambda h, mint: tampered(h.token()), "token_invalid"),
        ({}, lambda h, mint: mint(key=None, algorithm="none"), "token_invalid"),
        ({}, lambda h, mint: mint(algorithm="HS512"), "token_invalid"),
        ({"JWT_ALGORITHM": "HS512"}, lambda h, mint: mint(algorithm="HS256"), "token_invalid"),
        ({"JWT_DECODE_AUDIENCE": "dashboard"}, lambda h, mint: mint(aud="billing"), "token_invalid"),
        ({"JWT_DECODE_AUDIENCE": "dashboard"}, lambda h, mint: mint(), "token_invalid"),
        ({"JWT_DECODE_ISSUER": "https://auth.example.com"}, lambda h, mint: mint(iss="https://evil.example"),
         "token_invalid"),
        ({"JWT_DECODE_ISSUER": "https://auth.example.com"}, lambda h, mint: mint(), "token_invalid"),
        ({}, lambda h, mint: mint(nbf=now() + 3600), "token_invalid"),
        ({}, lambda h, mint: mint(sub=""), "token_invalid"),
        ({}, lambda h, mint: mint(sub="   "), "token_invalid"),
        ({}, lambda h, mint: mint(sub=None), "token_invalid"),
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: mint(uid=True), "token_invalid"),
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: mint(uid=["alice"]), "token_invalid"),
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: mint(uid=None), "token_invalid"),
        ({}, lambda h, mint: mint(exp=now() - 60), "token_expired"),
        ({}, lambda h, mint: h.token(expires_delta=timedelta(seconds=-1)), "token_expired"),
        ({}, lambda h, mint: h.refresh_token(), "wrong_token_type"),
        ({}, lambda h, mint: mint(type="refresh"), "wrong_token_type"),
        ({}, lambda h, mint: mint(type="id"), "wrong_token_type"),
    ],
)
def test_refusal_reasons(make_app, mint, config, make_token, expected):
    h = make_app(**config)
    assert refused_reason(h, make_token(h, mint)) == expected


@pytest.mark.parametrize(
    ("config", "claims"),
    [
        ({"JWT_DECODE_AUDIENCE": "dashboard"}, {"aud": "dashboard"}),
        ({"JWT_DECODE_AUDIENCE": ["dashboard", "api"]}, {"aud": ["api"]}),
        ({"JWT_DECODE_ISSUER": "https://auth.example.com"}, {"iss": "https://auth.example.com"}),
        ({"JWT_ALGORITHM": "HS512"}, {}),
        ({"JWT_DECODE_ALGORITHMS": ["HS256", "HS512"]}, {}),
    ],
)
def test_the_apps_decode_settings_accept_matching_tokens(make_app, mint, config, claims):
    h = make_app(**config)
    algorithm = config.get("JWT_ALGORITHM", "HS256")
    assert verify(h, mint(algorithm=algorithm, **claims)).user_id == "alice"


def test_a_token_without_exp_never_expires(harness, mint):
    assert verify(harness, mint(exp=None)) == Identity(user_id="alice", expires_at=None)
    client = harness.client(mint(exp=None))
    assert connected_user(harness, client) == "alice"
    assert harness.started == []  # nothing to watch


def test_revoked_token(harness):
    harness.jwt.token_in_blocklist_loader(lambda header, claims: claims["sub"] == "mallory")
    assert refused_reason(harness, harness.token("mallory")) == "token_revoked"
    assert verify(harness, harness.token("alice")).user_id == "alice"


def test_token_verification_loader_false_is_invalid(harness):
    harness.jwt.token_verification_loader(lambda header, claims: claims["sub"] != "mallory")
    assert refused_reason(harness, harness.token("mallory")) == "token_invalid"
    assert verify(harness, harness.token("alice")).user_id == "alice"


def test_user_lookup_returning_none_is_invalid(harness):
    users = {"alice": object()}
    harness.jwt.user_lookup_loader(lambda header, claims: users.get(claims["sub"]))
    assert refused_reason(harness, harness.token("ghost")) == "token_invalid"
    assert verify(harness, harness.token("alice")).user_id == "alice"


@pytest.mark.parametrize("loader", ["token_in_blocklist_loader", "token_verification_loader", "user_lookup_loader"])
def test_app_callbacks_get_the_tokens_header(harness, loader):
    seen = []

    def callback(header, claims):
        seen.append(header)
        return {"token_in_blocklist_loader": False}.get(loader, True)

    getattr(harness.jwt, loader)(callback)
    token = harness.token(additional_headers={"kid": "key-2026"})
    assert verify(harness, token).user_id == "alice"
    assert seen == [pyjwt.get_unverified_header(token)] and seen[0]["kid"] == "key-2026"


@pytest.mark.parametrize("loader", ["token_in_blocklist_loader", "token_verification_loader", "user_lookup_loader"])
def test_a_raising_app_callback_refuses_the_connection(harness, loader):
    def broken(header, claims):
        raise RuntimeError("database is down")

    getattr(harness.jwt, loader)(broken)
    with capture_logs() as logs:
        client = harness.client(harness.token())
    assert connected_user(harness, client) is None
    failure = next(entry for entry in logs if entry["event"] == "auth_failed")
    assert (failure["reason"], failure["detail"]) == ("token_invalid", "RuntimeError")


# --- identity ----------------------------------------------------------------------------------------------

def test_a_custom_identity_claim_is_the_user_id(make_app, mint):
    h = make_app(JWT_IDENTITY_CLAIM="uid")
    assert verify(h, h.token("alice")).user_id == "alice"
    assert verify(h, mint(sub="mallory", uid="alice")).user_id == "alice"
    assert connected_user(h, h.client(mint(sub="mallory", uid="alice"))) == "alice"


def test_an_integer_identity_becomes_a_string(make_app, mint):
    h = make_app(JWT_IDENTITY_CLAIM="uid")
    assert verify(h, mint(uid=42)).user_id == "42"
    client = h.client(mint(uid=42))
    assert h.user_rooms() == {"user:42"}
    assert connected_user(h, client) == "42"


@pytest.mark.parametrize(
    ("config", "make_token", "user_id"),
    [
        # PyJWT 2.10+ refuses a sub that is not a string, and create_access_token(42) makes one.
        ({}, lambda h, mint: h.token(42), None),
        ({}, lambda h, mint: mint(sub=42), None),
        ({}, lambda h, mint: h.token("42"), "42"),
        ({"JWT_VERIFY_SUB": False}, lambda h, mint: h.token(42), "42"),
        ({"JWT_VERIFY_SUB": False}, lambda h, mint: mint(sub=42), "42"),
        # Another identity claim leaves sub out of the token; a sub that is there is still checked.
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: h.token(42), "42"),
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: mint(sub=None, uid=42), "42"),
        ({"JWT_IDENTITY_CLAIM": "uid"}, lambda h, mint: mint(sub=7, uid=42), None),
        ({"JWT_IDENTITY_CLAIM": "uid", "JWT_VERIFY_SUB": False}, lambda h, mint: mint(sub=7, uid=42), "42"),
    ],
)
def test_an_integer_identity_works_where_jwt_required_accepts_it(make_app, mint, config, make_token, user_id):
    h = make_app(**config)

    @h.app.get("/whoami")
    @jwt_required()
    def whoami():
        return {"identity": get_jwt_identity()}

    token = make_token(h, mint)
    rest = h.app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
    with capture_logs() as logs:
        client = h.client(token)
    assert connected_user(h, client) == user_id
    if user_id is None:
        assert rest.status_code == 422
        assert auth_failures(logs) == ["token_invalid"] and failure_detail(logs) == SUB_NOT_A_STRING
    else:
        assert rest.status_code == 200 and str(rest.json["identity"]) == user_id


def test_expires_at_is_the_exp_claim(harness, mint):
    exp = now() + 100
    assert verify(harness, mint(exp=exp)).expires_at == exp


def test_leeway_is_added_to_expires_at(make_app, mint):
    h = make_app(JWT_DECODE_LEEWAY=30)
    exp = now() + 100
    assert verify(h, mint(exp=exp)).expires_at == exp + 30
    # A token that expired less than the leeway ago is still accepted, until exp + leeway.
    expired = int(time.time()) - 10
    assert verify(h, mint(exp=expired)).expires_at == expired + 30
    assert refused_reason(make_app(), mint(exp=expired)) == "token_expired"


def test_decode_key_loader_selects_the_key_per_token(harness, mint):
    keys = {"k1": "first-key-that-is-long-enough-for-hs256-0123456789",
            "k2": "second-key-that-is-long-enough-for-hs256-012345678"}
    harness.jwt.decode_key_loader(lambda header, claims: keys[header["kid"]])
    assert verify(harness, mint(key=keys["k2"], headers={"kid": "k2"}, sub="bob")).user_id == "bob"
    assert verify(harness, mint(key=keys["k1"], headers={"kid": "k1"})).user_id == "alice"
    assert refused_reason(harness, mint(key=keys["k1"], headers={"kid": "k2"})) == "token_invalid"
    assert refused_reason(harness, mint(headers={"kid": "k1"})) == "token_invalid"  # signed with the app secret
    assert refused_reason(harness, mint(key=keys["k1"], headers={"kid": "k3"})) == "token_invalid"  # loader raises
    client = harness.client(mint(key=keys["k2"], headers={"kid": "k2"}, sub="bob"))
    assert connected_user(harness, client) == "bob"


def test_decode_key_loader_sees_the_unverified_claims(harness, mint):
    per_user = {"alice": "alice-key-that-is-long-enough-for-hs256-0123456789"}
    harness.jwt.decode_key_loader(lambda header, claims: per_user[claims["sub"]])
    assert verify(harness, mint(key=per_user["alice"])).user_id == "alice"
    assert refused_reason(harness, mint()) == "token_invalid"


# --- what the client is told -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("make_auth", "expected"),
    [
        (lambda h: None, "token_missing"),
        (lambda h: {"token": "garbage"}, "token_invalid"),
        (lambda h: {"token": h.token(expires_delta=timedelta(seconds=-5))}, "token_expired"),
        (lambda h: {"token": h.refresh_token()}, "wrong_token_type"),
    ],
)
def test_a_refused_client_is_told_the_reason(harness, monkeypatch, make_auth, expected):
    server = harness.socketio.server
    # Connect to "/" first so the test client has installed its packet hook, then record what it is sent.
    client = harness.socketio.test_client(harness.app, namespace="/")
    sent = []
    deliver = server._send_packet
    monkeypatch.setattr(server, "_send_packet", lambda eio_sid, pkt: (sent.append(pkt), deliver(eio_sid, pkt)))
    client.connect(namespace=NS, auth=make_auth(harness))
    assert not client.is_connected(NS)
    errors = [pkt.data for pkt in sent if pkt.packet_type == 4 and pkt.namespace == NS]  # CONNECT_ERROR
    assert errors == [{"message": "Authentication failed", "data": {"code": "AUTH_FAILED", "reason": expected}}]
