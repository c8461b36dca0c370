"""The pages and the JSON API, rendered from a store filled with the lifecycle's history."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig
from billstate_console.domain.i18n import choose
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts import (
    CustomerUpserted,
    CustomerUpsertedData,
    StageEntered,
    StageEnteredData,
)
from billstate_shared.contracts.events import Money, PolicyRef, Why
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

VIEWER, OPERATOR = "viewer-token-for-tests", "operator-token-for-tests"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
Client = TestClient[web.Request, web.Application]


def add_customers(store: Store, count: int) -> None:
    """`count` customers in final_notice with EUR overdue, beside contoso."""
    at = datetime(2026, 12, 20, 9, tzinfo=UTC)
    for n in range(count):
        cid = f"fabrikam-{n:03d}"
        store.apply(
            CustomerUpserted(
                event_id=f"cust-{cid}",
                event_type="customer.upserted",
                occurred_at=at,
                customer_id=cid,
                data=CustomerUpsertedData(
                    name=f"Fabrikam {n:03d}",
                    locale="en",
                    billing_email="ap@fabrikam.example",
                    partner_contact_email="am@partner.example",
                    tags=["smb"],
                    subscription_ids=["sub-1"],
                ),
            )
        )
        overdue = [Money(amount="100.50", currency="EUR")]  # type: ignore[arg-type]
        store.apply(
            StageEntered(
                event_id=f"stg-{cid}",
                event_type="collections.stage_entered",
                occurred_at=at,
                customer_id=cid,
                data=StageEnteredData(
                    stage="final_notice",
                    previous="overdue",
                    as_of=at.date(),
                    days_past_due=15,
                    overdue=overdue,
                    why=Why(
                        rule="stages.final_notice",
                        text="EUR 100.50 overdue for 15 days",
                        trigger_event_id=None,
                        anchor_invoice_id="INV-9",
                        anchor_due_on=at.date(),
                        days_past_due=15,
                        overdue=overdue,
                        policy=PolicyRef(name="standard", version=3),
                    ),
                ),
            )
        )


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    add_customers(store, 60)
    auth = AuthConfig(tokens=((VIEWER, "viewer"), (OPERATOR, "operator")))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"), page_size=25)
    async with TestClient(TestServer(app)) as c:
        yield c


async def page(client: Client, path: str, headers: dict[str, str] | None = None) -> str:
    async with client.get(path, headers={**AS_VIEWER, **(headers or {})}) as answer:
        assert answer.status == 200, path
        assert answer.content_type == "text/html"
        return await answer.text()


def cells(html: str, table: str) -> list[list[str]]:
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL)
    found = [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.DOTALL)
        ]
        for r in rows
    ]
    return [row for row in found if row]  # the header row has no <td>


async def test_overview(client: Client) -> None:
    html = await page(client, "/")
    assert cells(html, "per-stage") == [["current", "1"], ["final notice", "60"]]
    assert cells(html, "overdue") == [["EUR", "€6,030.00"]]
    assert "Dec 26, 2026" in html  # the furthest business date reached
    async with client.get("/api/overview", headers=AS_VIEWER) as answer:
        assert await answer.json() == {
            "customers": 61,
            "per_stage": {"current": 1, "final_notice": 60},
            "overdue": [{"currency": "EUR", "amount": "6030.00"}],
            "exposure": [],
            "as_of": "2026-12-26",
        }


async def test_customers_filter_search_and_pages(client: Client) -> None:
    html = await page(client, "/customers?stage=final_notice&page=3")
    rows = cells(html, "customers")
    assert [r[0] for r in rows] == [f"fabrikam-{n:03d}" for n in range(50, 60)]
    assert "3 / 3 (60)" in html
    assert 'rel="prev"' in html
    assert 'rel="next"' not in html
    html = await page(client, "/customers?q=CONTOSO")
    assert [r[:3] for r in cells(html, "customers")] == [["contoso", "Contoso Ltd.", "current"]]
    html = await page(client, "/customers?q=fabrikam%20007")
    assert [r[0] for r in cells(html, "customers")] == ["fabrikam-007"]
    async with client.get("/api/customers?stage=current&per_page=10", headers=AS_VIEWER) as answer:
        body = await answer.json()
    assert body["total"] == 1
    assert body["items"][0]["customer_id"] == "contoso"
    assert body["items"][0]["next"] == {"stage": "overdue", "on": "2026-12-26"}


async def test_customer_page_shows_stage_why_and_timeline_newest_first(client: Client) -> None:
    html = await page(client, "/customers/contoso")
    assert '<dd class="stage" id="stage">current</dd>' in html
    assert "left no overdue balance" in html
    assert "overdue on Dec 26, 2026" in html  # the next step, dated as the page dates
    timeline = cells(html, "timeline")
    times = [row[0] for row in timeline]
    assert times == sorted(times, reverse=True)
    decisions = [row for row in timeline if row[2] == "collections.stage_entered"]
    assert [row[3] for row in decisions] == [
        "entered current (from suspended)",
        "entered suspended (from final notice)",
        "entered final notice (from overdue)",
        "entered overdue (from current)",
    ]
    assert all(row[4] for row in decisions)  # each decision with its why
    assert any(row[2] == "access.suspended" for row in timeline)
    assert any(row[2] == "notice.delivered" for row in timeline)


async def test_customer_in_traditional_chinese(client: Client) -> None:
    html = await page(client, "/customers/fabrikam-001?lang=zh-TW")
    assert '<html lang="zh-TW">' in html
    assert "時間軸" in html
    assert '<dd class="stage" id="stage">最後通知</dd>' in html
    assert "€100.50" in html
    by_header = await page(client, "/", {"Accept-Language": "fr;q=1, zh-Hant-TW;q=0.8, en;q=0.5"})
    assert "各階段客戶數" in by_header


async def test_unknown_customer(client: Client) -> None:
    async with client.get("/customers/nobody", headers=AS_VIEWER) as answer:
        assert answer.status == 404
    async with client.get("/api/customers/nobody/timeline", headers=AS_VIEWER) as answer:
        assert answer.status == 404


async def test_api_customer_and_timeline_hide_addresses_from_viewers(client: Client) -> None:
    async with client.get("/api/customers/contoso", headers=AS_VIEWER) as answer:
        customer = await answer.json()
    assert customer["stage"] == "current"
    assert customer["since"] == "2026-12-26"
    async with client.get("/api/customers/contoso/timeline", headers=AS_VIEWER) as answer:
        viewer = await answer.json()
    async with client.get("/api/customers/contoso/timeline", headers=AS_OPERATOR) as answer:
        operator = await answer.json()
    assert viewer["items"][0]["occurred_at"] >= viewer["items"][-1]["occurred_at"]
    assert "ap@contoso.example" not in str(viewer)
    assert "ap@contoso.example" in str(operator)


def test_language_choice() -> None:
    assert choose("zh-TW", "en") == "zh-TW"
    assert choose(None, "zh-HK,en;q=0.5") == "zh-TW"
    assert choose(None, "zh-CN, fr") == "en"
    assert choose("xx", None) == "en"
    assert choose(None, "de;q=0.9, en-GB;q=0.8") == "en"
