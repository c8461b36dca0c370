"""Sign-in: a token or a trusted proxy's header gives a role; nothing else gets in."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig, Denial, Identity, identify
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
        assert answer.status == 501  # the action itself is the next slice's


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
