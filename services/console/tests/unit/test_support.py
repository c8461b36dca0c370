"""Support requests in the console: the helpdesk body's mapping, the signed receiver's
refusals, the read model (both back ends), the timeline's words, the list and the ticket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from billstate_console.domain.auth import AuthConfig
from billstate_console.domain.helpdesk import PayloadRefused, parse
from billstate_console.domain.i18n import Words
from billstate_console.domain.support import age_text
from billstate_console.domain.timeline import tell_raw
from billstate_console.store import Store
from billstate_console.web import STORE, build_app
from billstate_console.web_support import HELPDESK, ZENDESK
from billstate_shared.contracts import Event, SupportRequested, SupportResolved, decode
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.webhooks import new_secret, signed_headers

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)
VIEWER = "viewer-token-for-tests"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AUTH = AuthConfig(tokens=((VIEWER, "viewer"),), secret=b"s" * 32)
SECRET = new_secret()
ZENDESK_SECRET = "dGhpcyBpcyBhIHplbmRlc2sgc2VjcmV0"
AT = datetime(2026, 12, 21, 10, tzinfo=UTC)
Client = TestClient[web.Request, web.Application]


def own(kind: str = "support.requested", **data: Any) -> bytes:
    body = {"ticket_id": "T-1", "topic": "payment_claimed", "channel": "email", **data}
    if kind == "support.resolved":
        body = {"ticket_id": "T-1", "resolution": "payment found", **data}
    return json.dumps({"event_type": kind, "customer_id": "contoso", "data": body}).encode()


def zendesk(**ticket: str) -> bytes:
    body = {
        "ticket_id": "4711", "customer_id": "contoso", "tags": "vip payment_claimed",
        "via": "Mail", "title": "I paid on Friday", "status": "New", **ticket,
    }  # fmt: skip
    return json.dumps({"zendesk": body}).encode()


# ---- the body's mapping ---------------------------------------------------------------------


def test_billstates_own_body_makes_the_event_with_a_deterministic_id() -> None:
    event = parse(own(summary="paid yesterday"), AT)
    assert isinstance(event, SupportRequested)
    assert (event.customer_id, event.data.ticket_id, event.data.topic) == (
        "contoso", "T-1", "payment_claimed",
    )  # fmt: skip
    assert event.occurred_at == AT
    assert event.event_id == "helpdesk:contoso:T-1:requested"
    # A helpdesk's retry with a new webhook id, or later: the same event id.
    assert parse(own(summary="paid yesterday"), AT + timedelta(minutes=3)).event_id == (
        event.event_id
    )
    resolved = parse(own("support.resolved"), AT)
    assert isinstance(resolved, SupportResolved)
    assert resolved.event_id == "helpdesk:contoso:T-1:resolved"


def test_a_zendesk_trigger_body_maps_tags_via_and_status() -> None:
    event = parse(zendesk(), AT)
    assert isinstance(event, SupportRequested)
    assert event.data.ticket_id == "ZD-4711"
    assert (event.data.topic, event.data.channel, event.data.summary) == (
        "payment_claimed", "email", "I paid on Friday",
    )  # fmt: skip
    for status in ("Solved", "closed"):
        done = parse(zendesk(status=status, tags=""), AT)
        assert isinstance(done, SupportResolved)
        assert done.data.ticket_id == "ZD-4711"
        assert done.data.resolution == f"{status.lower()} in Zendesk"
    assert parse(zendesk(via="Web Form"), AT).data.channel == "web"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (zendesk(tags="vip"), "zendesk.tags"),  # no topic tag
        (zendesk(tags="dispute payment_claimed"), "zendesk.tags"),  # two
        (zendesk(priority="high"), "zendesk.priority"),  # a field the template has not
        (zendesk(customer_id=""), "zendesk.customer_id"),
        (zendesk(customer_id="not a customer id"), "customer_id"),
        (own(topic="refund"), "data.topic"),
        (own(colour="red"), "data.colour"),
        (own("support.resolved", resolution=""), "data.resolution"),
        (json.dumps({"event_type": "hold.placed", "customer_id": "c", "data": {}}).encode(),
         "event_type"),
        (json.dumps({"event_type": "support.requested", "customer_id": "c", "data": {},
                     "extra": 1}).encode(), "extra"),
        (b"[1]", "$"),
        (b"not json", "$"),
    ],
)  # fmt: skip
def test_a_body_that_makes_no_valid_event_is_refused_with_its_field(
    body: bytes, field: str
) -> None:
    with pytest.raises(PayloadRefused) as refused:
        parse(body, AT)
    assert refused.value.field == field


@given(tags=st.lists(st.sampled_from(["vip", "billing_question", "dispute", "x"]), max_size=4))
def test_exactly_one_topic_tag_makes_a_request(tags: list[str]) -> None:
    topics = {t for t in tags if t in {"billing_question", "dispute"}}
    body = zendesk(tags=" ".join(tags))
    if len(topics) != 1:
        with pytest.raises(PayloadRefused, match="exactly one") as refused:
            parse(body, AT)
        assert refused.value.field == "zendesk.tags"
        return
    event = parse(body, AT)
    assert isinstance(event, SupportRequested)
    assert {event.data.topic} == topics


# ---- the receiver over HTTP -----------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    store = Store(":memory:")
    app = build_app(store, AUTH, progress=Progress(), metrics=Metrics("console"))
    app[HELPDESK] = SECRET
    app[ZENDESK] = ZENDESK_SECRET
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c
    store.close()


async def post(client: Client, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    answer = await client.post("/hooks/helpdesk", data=body, headers=headers)
    return answer.status, await answer.json()


async def test_forged_stale_future_and_headerless_deliveries_are_refused(client: Client) -> None:
    body, now = own(), datetime.now(UTC)
    forged = signed_headers(new_secret(), "m-1", body, now)
    assert await post(client, body, forged) == (401, {"error": "bad signature", "field": "$"})
    stale = signed_headers(SECRET, "m-1", body, now - timedelta(minutes=6))
    assert await post(client, body, stale) == (401, {"error": "stale timestamp", "field": "$"})
    future = signed_headers(SECRET, "m-1", body, now + timedelta(minutes=6))
    assert await post(client, body, future) == (401, {"error": "future timestamp", "field": "$"})
    assert (await post(client, body, {}))[0] == 400
    # The body changed after signing: forged too.
    signed = signed_headers(SECRET, "m-1", body, now)
    assert (await post(client, own(topic="dispute"), signed))[0] == 401


async def test_a_signed_body_that_makes_no_event_is_422_with_the_field(client: Client) -> None:
    body = zendesk(tags="vip")
    status, answer = await post(
        client, body, signed_headers(SECRET, "m-2", body, datetime.now(UTC))
    )
    assert status == 422
    assert answer["field"] == "zendesk.tags"


async def test_a_replayed_webhook_id_is_a_duplicate_and_sends_nothing(client: Client) -> None:
    store = client.app[STORE]
    assert store.claim_hook("m-3")  # accepted before
    body = own()
    status, answer = await post(
        client, body, signed_headers(SECRET, "m-3", body, datetime.now(UTC))
    )
    assert (status, answer) == (200, {"result": "duplicate"})
    assert store.actions() == []


async def test_without_a_secret_the_receiver_is_not_there() -> None:
    store = Store(":memory:")
    app = build_app(store, AUTH, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        body = own()
        headers = signed_headers(SECRET, "m-4", body, datetime.now(UTC))
        answer = await c.post("/hooks/helpdesk", data=body, headers=headers)
        assert answer.status == 404
        body = zendesk(tags="payment_claimed")
        headers = zendesk_headers(body, datetime.now(UTC), "z-3")
        answer = await c.post("/hooks/zendesk", data=body, headers=headers)
        assert answer.status == 404
    store.close()


def zendesk_headers(
    body: bytes, at: datetime, invocation: str, secret: str = ZENDESK_SECRET
) -> dict[str, str]:
    """Headers as Zendesk sends them: base64(HMAC-SHA256(secret, timestamp + body))."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Invocation-Id": invocation,
    }


async def test_zendesk_signs_its_own_way_and_the_receiver_checks_it(client: Client) -> None:
    store = client.app[STORE]
    body, now = zendesk(tags="payment_claimed"), datetime.now(UTC)

    async def send(data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        answer = await client.post("/hooks/zendesk", data=data, headers=headers)
        return answer.status, await answer.json()

    forged = zendesk_headers(body, now, "z-1", secret="another secret")
    assert await send(body, forged) == (401, {"error": "bad signature", "field": "$"})
    stale = zendesk_headers(body, now - timedelta(minutes=6), "z-1")
    assert await send(body, stale) == (401, {"error": "stale timestamp", "field": "$"})
    assert (await send(body, {}))[0] == 400
    tampered = zendesk_headers(body, now, "z-1")
    assert (await send(zendesk(tags="dispute"), tampered))[0] == 401
    # A valid invocation already accepted (a Zendesk retry): nothing is sent again.
    assert store.claim_hook("zendesk:z-2")
    assert await send(body, zendesk_headers(body, now, "z-2")) == (200, {"result": "duplicate"})
    assert store.actions() == []
    # A fresh, valid one passes the checks (no producer in this app: not sent, retry welcome).
    status, answer = await send(body, zendesk_headers(body, now, "z-4"))
    assert (status, answer["error"]) == (503, "actions are not configured (no producer)")
    assert store.claim_hook("zendesk:z-4")  # released again for the retry


# ---- the read model -------------------------------------------------------------------------


def request(cid: str, ticket: str, topic: str, at: datetime, n: int = 0) -> Event:
    body = {
        "event_id": f"sr-{cid}-{ticket}-{n}", "event_type": "support.requested",
        "occurred_at": at.isoformat(), "customer_id": cid,
        "data": {"ticket_id": ticket, "topic": topic, "channel": "phone",
                 "summary": f"words {n}"},
    }  # fmt: skip
    return decode(json.dumps(body))


def resolved(cid: str, ticket: str, at: datetime) -> Event:
    body = {
        "event_id": f"rs-{cid}-{ticket}", "event_type": "support.resolved",
        "occurred_at": at.isoformat(), "customer_id": cid,
        "data": {"ticket_id": ticket, "resolution": "found the payment"},
    }  # fmt: skip
    return decode(json.dumps(body))


def test_open_requests_oldest_first_and_resolution_closes(make_store: MakeStore) -> None:
    store = make_store()
    events = [
        request("fabrikam", "T-2", "dispute", AT + timedelta(hours=1)),
        request("contoso", "T-1", "payment_claimed", AT),
        request("contoso", "T-1", "payment_claimed", AT + timedelta(hours=5), n=1),  # duplicate
        request("tailspin", "T-3", "billing_question", AT + timedelta(hours=2)),
        resolved("tailspin", "T-3", AT + timedelta(hours=3)),
    ]
    for event in events:
        store.apply(event)
    found = [(t.customer_id, t.ticket_id, t.topic, t.summary) for t in store.open_tickets()]
    assert found == [
        ("contoso", "T-1", "payment_claimed", "words 0"),
        ("fabrikam", "T-2", "dispute", "words 0"),
    ]
    assert [t.ticket_id for t in store.open_tickets("fabrikam")] == ["T-2"]
    closed = store.ticket("tailspin", "T-3")
    assert closed is not None
    assert not closed.open
    assert closed.resolution == "found the payment"
    # Any order of arrival gives the same rows (a rebuilt store equals this one).
    again = make_store()
    for event in reversed(events):
        again.apply(event)
    assert again.rows()["support"] == store.rows()["support"]


def test_the_timeline_tells_requests_and_resolutions_in_both_languages() -> None:
    asked = request("contoso", "ZD-4711", "payment_claimed", AT).model_dump_json()
    done = resolved("contoso", "ZD-4711", AT).model_dump_json()
    en, zh = Words("en"), Words("zh-TW")
    told = tell_raw(asked, en)
    assert told.summary == "support ticket ZD-4711: payment claimed (by phone)"
    assert told.why == "words 0"
    assert tell_raw(asked, zh).summary == "客服單 ZD-4711：客戶表示已付款（經由 phone）"
    assert tell_raw(done, en).summary == "support ticket ZD-4711 resolved"
    assert tell_raw(done, en).why == "found the payment"
    assert tell_raw(done, zh).summary == "客服單 ZD-4711 已結案"


def test_age_in_words() -> None:
    en, zh = Words("en"), Words("zh-TW")
    assert [age_text(n, en) for n in (0, 1, 3)] == ["today", "1 day", "3 days"]
    assert age_text(3, zh) == "3 天"


# ---- the pages --------------------------------------------------------------------------------


@pytest.fixture
async def filled(make_store: MakeStore) -> AsyncIterator[Client]:
    store = make_store()
    now = datetime.now(UTC)
    failed = {
        "event_id": "failed-1", "event_type": "access.failed", "occurred_at": now.isoformat(),
        "customer_id": "contoso",
        "data": {"command_id": "cmd-1", "subscription_id": "sub-1", "provider": "partner_center",
                 "attempts": 3, "error": "409 locked"},
    }  # fmt: skip
    for event in (
        request("contoso", "ZD-1", "access_problem", now - timedelta(days=3, hours=1)),
        request("fabrikam", "ZD-2", "dispute", now - timedelta(hours=2)),
        decode(json.dumps(failed)),
    ):
        store.apply(event)
    app = build_app(store, AUTH, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_the_open_list_is_oldest_first_with_its_age(filled: Client) -> None:
    answer = await filled.get("/api/support", headers=AS_VIEWER)
    items = (await answer.json())["items"]
    assert [(i["ticket_id"], i["age_days"], i["age"]) for i in items] == [
        ("ZD-1", 3, "3 days"), ("ZD-2", 0, "today"),
    ]  # fmt: skip
    page = await (await filled.get("/support?lang=zh-TW", headers=AS_VIEWER)).text()
    assert page.index("ZD-1") < page.index("ZD-2")
    assert "3 天" in page
    assert "帳務爭議" in page


async def test_the_ticket_page_links_the_pack_marked_with_the_ticket(filled: Client) -> None:
    answer = await filled.get("/api/customers/contoso/support/ZD-1", headers=AS_VIEWER)
    detail = await answer.json()
    assert detail["ticket"]["topic"] == "access_problem"
    assert [s["access"] for s in detail["access_problems"]] == ["failed"]
    (case,) = detail["cases"]
    assert case["pack"] == "/cases/failed-1/pack?ticket=ZD-1"
    page = await (await filled.get("/customers/contoso/support/ZD-1", headers=AS_VIEWER)).text()
    assert 'href="/cases/failed-1/pack?ticket=ZD-1"' in page
    pack = await (await filled.get(case["pack"], headers=AS_VIEWER)).text()
    assert pack.startswith("Support ticket: ZD-1\nEscalation failed-1")
    missing = await filled.get("/api/customers/contoso/support/ZD-9", headers=AS_VIEWER)
    assert missing.status == 404


async def test_a_dispute_flags_the_customer(filled: Client) -> None:
    page = await (await filled.get("/customers/fabrikam", headers=AS_VIEWER)).text()
    assert 'id="dispute-flag"' in page
    detail = await (await filled.get("/api/customers/fabrikam", headers=AS_VIEWER)).json()
    assert detail["disputed"] is True
    other = await (await filled.get("/api/customers/contoso", headers=AS_VIEWER)).json()
    assert other["disputed"] is False


async def test_the_ticket_page_shows_collections_hold_and_its_flag(make_store: MakeStore) -> None:
    store = make_store()
    now = datetime.now(UTC)
    state = {
        "event_id": "state-1", "event_type": "collections.state", "occurred_at": now.isoformat(),
        "customer_id": "contoso",
        "data": {
            "stage": "final_notice", "delinquent": True,
            "overdue": [{"currency": "USD", "amount": "100.00"}], "anchor_due_on": "2026-11-20",
            "days_past_due": 31, "as_of": "2026-12-21", "holds": [],
            "suspended_subscription_ids": [],
            "next": {"stage": "suspended", "earliest_on": "2026-12-24"},
            "policy": {"name": "standard", "version": 3},
            "waiting": "payment claimed in support ticket ZD-7 (filed 2026-12-21), held 3"
                       " business days to 2026-12-24",
            "tickets": [
                {"ticket_id": "ZD-7", "topic": "payment_claimed", "opened_on": "2026-12-21",
                 "holds_until": "2026-12-24"},
                {"ticket_id": "ZD-8", "topic": "dispute", "opened_on": "2026-12-21"},
            ],
        },
    }  # fmt: skip
    store.apply(request("contoso", "ZD-7", "payment_claimed", now))
    store.apply(decode(json.dumps(state)))
    app = build_app(store, AUTH, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        answer = await c.get("/api/customers/contoso/support/ZD-7", headers=AS_VIEWER)
        detail = await answer.json()
        assert detail["holds_until"] == "2026-12-24"
        assert detail["customer"]["waiting"].startswith("payment claimed in support ticket ZD-7")
        # The dispute is collections' ticket only (the console never read its request).
        assert detail["disputed"] is True
        page = await (
            await c.get("/customers/contoso/support/ZD-7?lang=zh-TW", headers=AS_VIEWER)
        ).text()
        assert 'id="holds-until"' in page
        assert "付款聲明暫緩至" in page
        customer = await (await c.get("/api/customers/contoso", headers=AS_VIEWER)).json()
        assert [t["ticket_id"] for t in customer["tickets"]] == ["ZD-7", "ZD-8"]
        assert customer["disputed"] is True
