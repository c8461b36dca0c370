"""Operations: cases and their steps, parked suspensions, dead letters; the read model
rebuilt equals the incremental one (both back ends); the pages in both languages; the
routes' 401/403; CSRF; browser sign-in; refusals next to their field."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig
from billstate_console.handlers import ConsoleHandler
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts import Event, decode, encode
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)

VIEWER, OPERATOR = "viewer-token-for-tests", "operator-token-for-tests"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
SECRET = b"a-session-secret-for-tests"
AUTH = AuthConfig(tokens=((VIEWER, "viewer"), (OPERATOR, "operator")), secret=SECRET)
AT = datetime(2026, 12, 20, 9, tzinfo=UTC)
Client = TestClient[web.Request, web.Application]

EXCHANGE = {
    "at": "2026-12-20T09:00:01Z",
    "method": "PATCH",
    "path": "/v1/customers/tenant-1/subscriptions/sub-1",
    "status": 409,
    "request_id": "req-123",
    "correlation_id": "corr-456",
    "answer": "800002: subscription is locked",
}


def _event(event_id: str, event_type: str, minutes: int, data: dict[str, Any]) -> Event:
    return decode(
        json.dumps(
            {
                "event_id": event_id,
                "event_type": event_type,
                "occurred_at": (AT + timedelta(minutes=minutes)).isoformat(),
                "customer_id": "contoso",
                "data": data,
            }
        )
    )


def history() -> list[Event]:
    """Two cases (one with the provider's exchanges), their steps, two parked suspensions
    of which one was approved."""
    return [
        _event(
            "failed-1", "access.failed", 0,
            {"command_id": "cmd-1", "subscription_id": "sub-1", "provider": "partner_center",
             "attempts": 3, "error": "409 locked", "exchanges": [EXCHANGE]},
        ),
        _event(
            "drift-1", "access.drift", 5,
            {"subscription_id": "sub-2", "provider": "partner_center", "desired": "suspended",
             "observed": "active"},
        ),
        _event("ack-1", "case.acknowledged", 10,
               {"case_id": "failed-1", "by": "ops-anna", "note": "asked MS"}),
        _event("res-1", "case.resolved", 20,
               {"case_id": "drift-1", "by": "ops-ben", "note": "re-applied"}),
        _event(
            "parked-1", "access.parked", 30,
            {"command_id": "cmd-7", "subscription_ids": ["sub-1"], "provider": "builtin",
             "guard": "brake", "reason": "11 suspensions today"},
        ),
        _event(
            "parked-2", "access.parked", 31,
            {"command_id": "cmd-8", "subscription_ids": ["sub-2"], "provider": "builtin",
             "guard": "stale_payment_feed", "reason": "no payment for 3 days"},
        ),
        _event("unparked-2", "access.unparked", 40,
               {"command_id": "cmd-8", "outcome": "approved", "by": "ops-anna", "reason": "ok"}),
    ]  # fmt: skip


@dataclass(frozen=True)
class Rec:
    """A consumed record as the runtime hands it over (aiokafka's fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 1_797_000_000_000
    headers: tuple[tuple[str, bytes], ...] = ()


def letters() -> list[Rec]:
    bad = b'{"event_type": "invoice.issued", "customer_id": "contoso"}'
    headers = tuple(
        (f"billstate.dlq.{k}", v.encode())
        for k, v in {
            "reason": "is required",
            "field": "data.invoice_id",
            "topic": "billing.invoices.v1",
            "partition": "2",
            "offset": "17",
            "service": "invoicing",
            "event_type": "invoice.issued",
        }.items()
    )
    return [
        Rec("billing.invoices.v1.dlq", 0, 0, b"contoso", bad, headers=headers),
        Rec("billing.invoices.v1.dlq", 0, 1, b"contoso", bad, headers=headers),
    ]


def records() -> list[Rec]:
    topic = {"case": "operations.cases.v1"}
    events = [
        Rec(topic.get(e.event_type.split(".")[0], "access.events.v1"), 0, n, b"contoso", encode(e))
        for n, e in enumerate(history())
    ]
    return events + letters()


async def feed(store: Store, items: list[Rec]) -> None:
    handler = ConsoleHandler(store)
    for item in items:
        out: list[Produce] = await handler(item)
        assert out == []


async def test_rebuilt_equals_incremental_in_any_order(make_store: MakeStore) -> None:
    base = records()
    incremental = make_store()
    await feed(incremental, base)
    await feed(incremental, base[:3] + base[-1:])  # redelivery changes nothing
    expected = incremental.rows()  # every rebuilt table, the operations' ones included
    assert {t: len(r) for t, r in expected.items() if t in incremental.operations_rows()} == {
        "cases": 2, "case_notes": 2, "parked": 2, "unparked": 1, "letters": 2,
    }  # fmt: skip
    shuffled = random.Random(13)  # noqa: S311  (an order to test, not a secret)
    for _ in range(3):
        order = base[:]
        shuffled.shuffle(order)
        rebuilt = make_store()
        await feed(rebuilt, order)
        assert rebuilt.rows() == expected


async def test_cases_parked_and_letters_read_back() -> None:
    store = Store(":memory:")
    for order in itertools.islice(itertools.permutations(records()), 0, 1):
        await feed(store, list(order))
    assert {v.case.case_id: v.status for v in store.cases()} == {
        "failed-1": "acknowledged",
        "drift-1": "resolved",
    }
    assert [v.case.case_id for v in store.cases("acknowledged")] == ["failed-1"]
    assert store.case_counts() == {"open": 0, "acknowledged": 1, "resolved": 1}
    assert [p.command_id for p in store.parked()] == ["cmd-7"]
    assert store.letter_counts() == {"billing.invoices.v1.dlq": 2}
    (first, _) = store.letters()
    assert (first.source_topic, first.source_partition, first.source_offset) == (
        "billing.invoices.v1", 2, 17,
    )  # fmt: skip
    assert first.customer_id == "contoso"
    assert first.service == "invoicing"


# ---- pages ----------------------------------------------------------------------------------


@pytest.fixture
async def client(make_store: MakeStore) -> AsyncIterator[Client]:
    store = make_store()
    await feed(store, records())
    progress = Progress()
    progress.set_lag("access.events.v1", 0, 4)
    progress.set_lag("access.events.v1", 1, 3)
    app = build_app(store, AUTH, progress=progress, metrics=Metrics("console"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.mark.parametrize(
    ("lang", "words"),
    [("en", ["Escalations", "acknowledged", "asked MS"]), ("zh-TW", ["待處理問題", "處理中"])],
)
async def test_escalations_pages(client: Client, lang: str, words: list[str]) -> None:
    page = await client.get(f"/escalations?lang={lang}", headers=AS_VIEWER)
    text = await page.text()
    assert page.status == 200
    assert 'data-case-id="failed-1"' in text
    assert 'data-case-id="drift-1"' in text
    only = await (
        await client.get(f"/escalations?status=open&lang={lang}", headers=AS_VIEWER)
    ).text()
    assert "data-case-id" not in only
    case = await (await client.get(f"/cases/failed-1?lang={lang}", headers=AS_VIEWER)).text()
    for word in [*words[:1], "req-123", "corr-456", "800002: subscription is locked"]:
        assert word in case or word in text
    assert words[-1] in case or words[-1] in text
    assert 'id="acknowledge"' not in case  # a viewer gets no forms
    drift = await (await client.get(f"/cases/drift-1?lang={lang}", headers=AS_VIEWER)).text()
    assert 'id="no-exchanges"' in drift


async def test_escalation_pack(client: Client) -> None:
    text = await (await client.get("/cases/failed-1/pack", headers=AS_VIEWER)).text()
    assert "MS-RequestId: req-123" in text
    assert "MS-CorrelationId: corr-456" in text
    assert "Subscription: sub-1" in text
    assert "Command: cmd-1" in text
    doc = await (await client.get("/api/cases/failed-1/pack", headers=AS_VIEWER)).json()
    assert doc["customer_id"] == "contoso"
    assert doc["command_id"] == "cmd-1"
    assert doc["exchanges"][0]["request_id"] == "req-123"
    assert doc["status"] == "acknowledged"
    assert doc["notes"][0]["by"] == "ops-anna"
    drift = await (await client.get("/cases/drift-1/pack", headers=AS_VIEWER)).text()
    assert "no exchanges recorded" in drift
    assert (await client.get("/api/cases/nope/pack", headers=AS_VIEWER)).status == 404


@pytest.mark.parametrize(("lang", "word"), [("en", "daily brake"), ("zh-TW", "每日暫停上限")])
async def test_approvals_and_letters_pages(client: Client, lang: str, word: str) -> None:
    page = await (await client.get(f"/approvals?lang={lang}", headers=AS_OPERATOR)).text()
    assert 'data-command-id="cmd-7"' in page
    assert 'data-command-id="cmd-8"' not in page
    assert word in page
    assert 'class="approve"' in page
    api = await (await client.get("/api/approvals", headers=AS_VIEWER)).json()
    assert [p["command_id"] for p in api["items"]] == ["cmd-7"]
    dead = await (
        await client.get(
            f"/dead-letters?topic=billing.invoices.v1.dlq&lang={lang}", headers=AS_OPERATOR
        )
    ).text()
    assert 'data-at="0:1"' in dead
    assert "data.invoice_id: is required" in dead
    assert 'name="letter"' in dead
    api = await (await client.get("/api/dead-letters", headers=AS_VIEWER)).json()
    assert api["counts"] == {"billing.invoices.v1.dlq": 2}


@pytest.mark.parametrize(("lang", "word"), [("en", "Open escalations"), ("zh-TW", "未處理的問題")])
async def test_overview_shows_operations(client: Client, lang: str, word: str) -> None:
    page = await (await client.get(f"/?lang={lang}", headers=AS_VIEWER)).text()
    assert word in page
    assert re.search(r'id="parked-count">1<', page)
    assert "billing.invoices.v1.dlq" in page
    ops = await (await client.get("/api/operations", headers=AS_VIEWER)).json()
    assert ops["parked"] == 1
    assert ops["cases"]["acknowledged"] == 1
    assert ops["letters"] == {"billing.invoices.v1.dlq": 2}
    assert ops["lag"] == {"access.events.v1": 7}


GETS = [
    "/escalations",
    "/cases/failed-1",
    "/cases/failed-1/pack",
    "/approvals",
    "/dead-letters",
    "/api/operations",
    "/api/cases",
    "/api/cases/failed-1",
    "/api/cases/failed-1/pack",
    "/api/approvals",
    "/api/dead-letters",
]
POSTS = [
    "/cases/failed-1/acknowledge",
    "/cases/failed-1/resolve",
    "/approvals/cmd-7/approve",
    "/approvals/cmd-7/reject",
    "/dead-letters/redrive",
    "/customers/contoso/holds",
    "/customers/contoso/holds/h-1/release",
    "/api/cases/failed-1/acknowledge",
    "/api/cases/failed-1/resolve",
    "/api/approvals/cmd-7/approve",
    "/api/approvals/cmd-7/reject",
    "/api/dead-letters/redrive",
    "/api/customers/contoso/holds",
    "/api/customers/contoso/holds/h-1/release",
]


async def test_every_route_needs_an_identity_and_posts_an_operator(client: Client) -> None:
    for path in GETS:
        assert (await client.get(path)).status == 401, path
        assert (await client.get(path, headers=AS_VIEWER)).status == 200, path
    for path in POSTS:
        assert (await client.post(path, json={})).status == 401, path
        assert (await client.post(path, json={}, headers=AS_VIEWER)).status == 403, path


async def test_html_gets_go_to_sign_in_and_the_rest_stay_401(client: Client) -> None:
    html = {"Accept": "text/html"}
    page = await client.get("/escalations?lang=en", headers=html, allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/signin?next=")
    assert (await client.get("/api/cases", headers=html, allow_redirects=False)).status == 401
    assert (await client.post("/cases/failed-1/acknowledge", headers=html)).status == 401
    assert (await client.get("/signin?lang=zh-TW")).status == 200


async def test_refusals_are_400_next_to_their_field(client: Client) -> None:
    # Validation comes before sending: no producer is needed to be refused.
    bad = await client.post(
        "/api/customers/contoso/holds",
        json={"kind": "promise_to_pay", "reason": "promised"},
        headers=AS_OPERATOR,
    )
    assert bad.status == 400
    assert (await bad.json())["field"] == "until"
    note = await client.post("/api/cases/failed-1/resolve", json={"note": " "}, headers=AS_OPERATOR)
    assert note.status == 400
    assert (await note.json())["field"] == "note"
    why = await client.post("/api/approvals/cmd-7/approve", json={}, headers=AS_OPERATOR)
    assert why.status == 400
    assert (await why.json())["field"] == "reason"
    gone = await client.post(
        "/api/approvals/cmd-8/approve", json={"reason": "x"}, headers=AS_OPERATOR
    )
    assert gone.status == 404
    redrive = await client.post(
        "/api/dead-letters/redrive", json={"topic": "billing.invoices.v1.dlq", "letters": ["9:9"]},
        headers=AS_OPERATOR,
    )  # fmt: skip
    assert redrive.status == 400
    assert (await redrive.json())["field"] == "letters"


async def _signed_in(client: Client, token: str) -> str:
    """Sign in through the form; the CSRF token the pages then carry."""
    answer = await client.post(
        "/signin", data={"token": token, "next": "/escalations"}, allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/escalations"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie
    page = await (await client.get("/cases/failed-1?lang=en")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_browser_sign_in_csrf_and_sign_out(client: Client) -> None:
    wrong = await client.post("/signin", data={"token": "nope"})
    assert wrong.status == 401
    csrf = await _signed_in(client, OPERATOR)
    assert 'id="acknowledge"' in await (await client.get("/cases/failed-1")).text()
    # A form without the token, or with another's, is refused before anything is built.
    form = {"note": " "}
    assert (await client.post("/cases/failed-1/acknowledge", data=form)).status == 403
    bad = {**form, "csrf": "forged"}
    assert (await client.post("/cases/failed-1/acknowledge", data=bad)).status == 403
    refused = await client.post("/cases/failed-1/acknowledge?lang=en", data={**form, "csrf": csrf})
    assert refused.status == 400
    assert 'id="acknowledge-error"' in await refused.text()
    hold = await client.post(
        "/customers/contoso/holds?lang=zh-TW",
        data={"kind": "dispute", "reason": "wrong invoice", "csrf": csrf},
    )
    assert hold.status == 400
    assert 'id="hold-invoice-error"' in await hold.text()
    out = await client.post("/signout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/api/cases")).status == 401


async def test_a_viewer_session_reads_and_signs_out_but_does_not_act(client: Client) -> None:
    csrf = await _signed_in(client, VIEWER)
    assert 'id="acknowledge"' not in await (await client.get("/cases/failed-1")).text()
    acted = await client.post("/cases/failed-1/acknowledge", data={"note": "x", "csrf": csrf})
    assert acted.status == 403
    assert (await client.post("/signout", data={"csrf": csrf}, allow_redirects=False)).status == 303


async def test_secure_cookie_behind_an_https_proxy(client: Client) -> None:
    answer = await client.post(
        "/signin", data={"token": OPERATOR}, headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )  # fmt: skip
    assert "Secure" in answer.headers["Set-Cookie"]
    # Never a redirect elsewhere.
    away = await client.post(
        "/signin", data={"token": OPERATOR, "next": "//evil.example/"}, allow_redirects=False
    )
    assert away.headers["Location"] == "/"
