"""The HTTP face's guard: probes and metrics open, every other route behind the bearer token,
and off (403) when no token is configured. Against access-control's own routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import build_app
from billstate_shared.runtime.metrics import Metrics

TOKEN = "s3cr3t-token-for-tests"


async def hello(_request: web.Request) -> web.Response:
    return web.json_response({"hello": True})


def app(token: str | None) -> web.Application:
    return build_app(
        Progress(),
        Metrics("access-control"),
        [web.get("/customers/{customer_id}/access", hello), web.post("/reconcile", hello)],
        token=None if token is None else SecretStr(token),
    )


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app(TOKEN))) as client:
        yield client


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/startupz", "/metrics"])
async def test_probes_and_metrics_need_no_token(
    guarded: TestClient[web.Request, web.Application], path: str
) -> None:
    async with guarded.get(path) as answer:
        assert answer.status in (200, 503)  # 503: not assigned, which is the probe's answer
        assert "WWW-Authenticate" not in answer.headers


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"],
)
async def test_other_routes_refuse_a_missing_or_wrong_token(
    guarded: TestClient[web.Request, web.Application], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", "/customers/contoso/access"), ("POST", "/reconcile")):
        async with guarded.request(method, path, headers=headers) as answer:
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="billstate"'
            assert await answer.json() == {"error": "a bearer token is required"}


async def test_the_right_token_is_let_through(
    guarded: TestClient[web.Request, web.Application],
) -> None:
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        async with guarded.get("/customers/contoso/access", headers=headers) as answer:
            assert (answer.status, await answer.json()) == (200, {"hello": True})
        async with guarded.post("/reconcile", headers=headers) as answer:
            assert answer.status == 200
    # An unknown path is behind the guard too: nothing is told without the token.
    async with guarded.get("/nothing-here") as answer:
        assert answer.status == 401
    async with guarded.get("/nothing-here", headers={"Authorization": f"Bearer {TOKEN}"}) as ok:
        assert ok.status == 404


async def test_without_a_token_the_routes_are_off() -> None:
    async with TestClient(TestServer(app(None))) as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
            async with client.get("/customers/contoso/access", headers=headers) as answer:
                assert answer.status == 403
                assert "disabled" in (await answer.json())["error"]
        async with client.get("/healthz") as answer:
            assert answer.status in (200, 503)
