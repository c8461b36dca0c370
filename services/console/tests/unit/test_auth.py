"""Sign-in: a token or a trusted proxy's header gives a role; nothing else gets in."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import (
    AuthConfig,
    Denial,
    Identity,
    csrf_ok,
    csrf_token,
    from_session,
    identify,
    issue,
    signed_in,
)
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

VIEWER, OPERATOR = "viewer-token-for-tests", "operator-token-for-tests"
TOKENS = AuthConfig(tokens=((VIEWER, "viewer"), (OPERATOR, "operator")))
READS = [
    "/",
    "/customers",
    "/customers/contoso",
    "/api/overview",
    "/api/customers",
    "/api/customers/contoso",
    "/api/customers/contoso/timeline",
    "/no/such/page",
]
Client = TestClient[web.Request, web.Application]


def config(*proxies: str) -> AuthConfig:
    return AuthConfig(
        tokens=TOKENS.tokens,
        proxies=tuple(ipaddress.ip_network(p) for p in proxies),
    )


async def client_for(auth: AuthConfig) -> Client:
    app = build_app(Store(":memory:"), auth, progress=Progress(), metrics=Metrics("console"))
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with await client_for(config("10.1.2.3")) as c:
        yield c


def test_identify_by_token() -> None:
    def who(header: str | None) -> Identity | Denial:
        return identify(TOKENS, peer="127.0.0.1", authorization=header, user=None, groups=None)

    assert who(f"Bearer {VIEWER}") == Identity("token:viewer", "viewer", "token")
    assert who(f"bearer {OPERATOR}") == Identity("token:operator", "operator", "token")
    for bad in (None, "", "Bearer", f"Basic {VIEWER}", f"Bearer {VIEWER}x", VIEWER):
        assert isinstance(who(bad), Denial)
        assert who(bad).status == 401  # type: ignore[union-attr]


def test_identify_by_proxy_header() -> None:
    auth = config("10.0.0.0/8")

    def who(peer: str, groups: str | None) -> Identity | Denial:
        return identify(auth, peer=peer, authorization=None, user="alice", groups=groups)

    assert who("10.9.9.9", "staff, billstate-operators") == Identity("alice", "operator", "proxy")
    assert who("10.9.9.9", "billstate-viewers") == Identity("alice", "viewer", "proxy")
    assert who("10.9.9.9", "staff") == Denial(403, "no console role for this user")
    refused = who("192.168.1.1", "billstate-operators")
    assert isinstance(refused, Denial)
    assert refused.status == 401
    # A forged header is refused even when a valid token comes with it.
    forged = identify(
        auth,
        peer="192.168.1.1",
        authorization=f"Bearer {OPERATOR}",
        user="mallory",
        groups="billstate-operators",
    )
    assert isinstance(forged, Denial)
    assert forged.status == 401


async def test_every_route_but_the_probes_needs_an_identity(client: Client) -> None:
    for path in READS:
        async with client.get(path) as answer:
            assert answer.status == 401, path
            assert "WWW-Authenticate" in answer.headers
    async with client.post("/api/customers/contoso/holds") as answer:
        assert answer.status == 401
    for path in ("/healthz", "/readyz", "/metrics"):
        async with client.get(path) as answer:
            assert answer.status in (200, 503), path  # 503: not assigned, the probe's answer


async def test_a_viewer_reads_but_may_not_post(client: Client) -> None:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with client.get("/api/overview", headers=headers) as answer:
        assert answer.status == 200
    for path in ("/api/customers/contoso/holds", "/customers", "/"):
        async with client.post(path, headers=headers) as answer:
            assert answer.status == 403, path


async def test_an_operator_may_post(client: Client) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    async with client.post("/api/customers/contoso/holds", headers=headers) as answer:
        assert answer.status == 400  # let in (a bearer token needs no CSRF), then refused
        assert (await answer.json())["field"] == "reason"


async def test_a_proxy_header_from_elsewhere_is_refused(client: Client) -> None:
    # The test client connects from 127.0.0.1; the configured proxy is 10.1.2.3.
    headers = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "billstate-operators"}
    async with client.get("/api/overview", headers=headers) as answer:
        assert answer.status == 401
        assert "proxy" in (await answer.json())["error"]


async def test_a_proxy_header_from_the_proxy_signs_in() -> None:
    async with await client_for(config("127.0.0.1/32")) as c:
        viewer = {"X-Forwarded-User": "bob", "X-Forwarded-Groups": "billstate-viewers"}
        async with c.get("/", headers=viewer) as answer:
            assert answer.status == 200
            assert "bob" in await answer.text()
        async with c.post("/api/customers/contoso/holds", headers=viewer) as answer:
            assert answer.status == 403
        nobody = {"X-Forwarded-User": "eve", "X-Forwarded-Groups": "staff"}
        async with c.get("/", headers=nobody) as answer:
            assert answer.status == 403


SECRET = b"a-session-secret-for-tests"
NOW = datetime(2026, 12, 20, 9, tzinfo=UTC)


def test_a_session_is_signed_and_expires() -> None:
    auth = AuthConfig(tokens=TOKENS.tokens, secret=SECRET, session_ttl=timedelta(hours=8))
    identity = signed_in(Identity("token:operator", "operator", "token"), "nonce-1")
    cookie = issue(auth, identity, nonce="nonce-1", now=NOW)
    back = from_session(auth, cookie, now=NOW + timedelta(hours=7))
    assert back == Identity("token:operator", "operator", "session", session="nonce-1")
    assert from_session(auth, cookie, now=NOW + timedelta(hours=8)) is None  # expired
    body, _, mac = cookie.partition(".")
    forged = body.replace(body[5], "A" if body[5] != "A" else "B") + "." + mac
    assert from_session(auth, forged, now=NOW) is None
    other = AuthConfig(tokens=TOKENS.tokens, secret=b"another-secret")
    assert from_session(other, cookie, now=NOW) is None
    assert from_session(auth, None, now=NOW) is None
    assert from_session(auth, "garbage", now=NOW) is None


def test_csrf_tokens_are_bound_to_the_session_or_the_user() -> None:
    auth = AuthConfig(secret=SECRET)
    one = Identity("token:operator", "operator", "session", session="n1")
    two = Identity("token:operator", "operator", "session", session="n2")
    assert csrf_ok(auth, one, csrf_token(auth, one))
    assert not csrf_ok(auth, two, csrf_token(auth, one))
    assert not csrf_ok(auth, one, None)
    alice = Identity("alice", "operator", "proxy")
    assert csrf_token(auth, alice) != csrf_token(auth, Identity("bob", "operator", "proxy"))


def test_events_name_an_operator_id_never_an_email() -> None:
    auth = AuthConfig(proxies=(ipaddress.ip_network("10.0.0.0/8"),))

    def who(user: str, username: str | None) -> Identity | Denial:
        return identify(
            auth, peer="10.1.1.1", authorization=None, user=user,
            groups="billstate-operators", username=username,
        )  # fmt: skip

    with_name = who("alice@example.com", "alice")
    assert isinstance(with_name, Identity)
    assert with_name.actor == "alice"
    without = who("alice@example.com", None)
    assert isinstance(without, Identity)
    assert without.actor is None
    plain = who("alice", None)
    assert isinstance(plain, Identity)
    assert plain.actor == "alice"
    assert Identity("token:operator", "operator", "token").actor == "token:operator"


async def test_a_proxy_users_form_needs_the_csrf_token_and_an_operator_id() -> None:
    auth = AuthConfig(proxies=(ipaddress.ip_network("127.0.0.1/32"),), secret=SECRET)
    app = build_app(Store(":memory:"), auth, progress=Progress(), metrics=Metrics("console"))
    headers = {"X-Forwarded-User": "alice@example.com", "X-Forwarded-Groups": "billstate-operators"}
    token = csrf_token(auth, Identity("alice@example.com", "operator", "proxy"))
    form = {"kind": "manual", "reason": "call first"}
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        async with c.post("/customers/contoso/holds", data=form, headers=headers) as answer:
            assert answer.status == 403
        async with c.post(
            "/customers/contoso/holds", data={**form, "csrf": token}, headers=headers
        ) as answer:
            assert answer.status == 400  # let in; no operator id to put in the event
            assert "operator id" in await answer.text()
