"""The Partner Center test server's invoice routes: the shapes, paging, and faults by path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import pytest

from billstate_devkit.partner_center import PartnerCenterServer, billing_line

TENANT = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
DEC = (date(2026, 12, 1), date(2026, 12, 31))


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenterServer]:
    async with PartnerCenterServer() as server:
        yield server


async def call(
    pc: PartnerCenterServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        form = {
            "grant_type": "client_credentials",
            "client_id": pc.client_id,
            "client_secret": pc.client_secret,
            "scope": pc.scope,
        }
        async with session.post(pc.token_url, data=form) as answer:
            token = (await answer.json())["access_token"]
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        async with session.get(pc.base_url + path, headers=sent) as answer:
            return answer.status, await answer.json()


async def test_line_items_come_a_page_at_a_time_until_no_next(pc: PartnerCenterServer) -> None:
    pc.add_invoice(
        "G1", date(2027, 1, 9), [billing_line(TENANT, f"s{i}", *DEC, "2.5") for i in range(5)]
    )
    status, first = await call(
        pc,
        "/v1/invoices/G1/lineitems?provider=onetime&invoicelineitemtype=billinglineitems&currencycode=USD&size=2",
    )
    pages, body = [first], first
    while "next" in body["links"]:
        following = body["links"]["next"]
        (header,) = following["headers"]
        assert header["key"] == "MS-ContinuationToken"
        status, body = await call(pc, "/v1" + following["uri"], {header["key"]: header["value"]})
        assert status == 200
        pages.append(body)

    assert [p["totalCount"] for p in pages] == [2, 2, 1]
    items = [i for p in pages for i in p["items"]]
    assert [i["subscriptionId"] for i in items] == ["s0", "s1", "s2", "s3", "s4"]
    assert {i["invoiceNumber"] for i in items} == {"G1"}
    assert items[0]["chargeStartDate"] == "2026-12-01T00:00:00Z"
    assert items[0]["attributes"]["objectType"] == "OneTimeInvoiceLineItem"


async def test_a_next_page_without_a_valid_token_is_refused(pc: PartnerCenterServer) -> None:
    pc.add_invoice("G1", date(2027, 1, 9), [billing_line(TENANT, "s", *DEC, "1")])

    status, body = await call(
        pc,
        "/v1/invoices/G1/lineitems/OneTime/BillingLineItems?seekOperation=Next",
        {"MS-ContinuationToken": "made-up"},
    )

    assert status == 400
    assert body["code"] == 600042


async def test_invoices_list_newest_first_and_faults_by_path(pc: PartnerCenterServer) -> None:
    pc.add_invoice("G1", date(2026, 12, 9), [billing_line(TENANT, "s", *DEC, "1")])
    pc.add_invoice("G2", date(2027, 1, 9), [billing_line(TENANT, "s", *DEC, "-3")])
    pc.fail_path("/v1/invoices/G2/", times=1, status=500)

    _, listing = await call(pc, "/v1/invoices")
    failed, _ = await call(
        pc, "/v1/invoices/G2/lineitems?provider=onetime&invoicelineitemtype=billinglineitems"
    )
    then, _ = await call(
        pc, "/v1/invoices/G2/lineitems?provider=onetime&invoicelineitemtype=billinglineitems"
    )

    assert [i["id"] for i in listing["items"]] == ["G2", "G1"]
    assert [i["documentType"] for i in listing["items"]] == ["creditNote", "invoice"]
    assert (failed, then) == (500, 200)


async def test_a_subscription_carries_its_term_and_cancellation_window(
    pc: PartnerCenterServer,
) -> None:
    pc.add_subscription(TENANT, "s1", cancellationAllowedUntilDate="2027-01-24T01:00:12Z")

    status, body = await call(pc, f"/v1/customers/{TENANT}/subscriptions")

    assert status == 200
    (sub,) = body["items"]
    assert sub["cancellationAllowedUntilDate"] == "2027-01-24T01:00:12Z"
    assert (sub["commitmentEndDate"], sub["autoRenewEnabled"]) == ("2027-01-03T00:00:00Z", True)
    assert sub["refundableQuantity"] == {"totalQuantity": 0, "details": []}
