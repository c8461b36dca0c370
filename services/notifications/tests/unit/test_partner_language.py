"""Partner notices go out in the partner's language, end to end through the handler.

Collections requests every partner notice in `en` (it does not know the partner's language);
notifications renders it in `BILLSTATE_NOTIFICATIONS_DEFAULT_LOCALE`. Here that setting is
zh-TW: the partner copy of a stage notice (the very request `billstate replay` makes for
docs/examples/lifecycle.jsonl), an `access_failed` and an `approval_needed` are all delivered
in zh-TW, while the customer's own copy stays in the customer's language. The delivered
documents are compared with the zh-TW rendering of the same notice, word for word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billstate_notifications.channels import OutboxChannel
from billstate_notifications.domain import render
from billstate_notifications.domain.staff import staff_notice
from billstate_notifications.handlers import NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.contracts import (
    AccessApprovalNeeded,
    AccessFailed,
    NoticeRequestedData,
    decode,
    encode,
)
from billstate_shared.contracts.examples import EXAMPLES

REQUESTS = "notifications.requests.v1"
ACCESS = "access.events.v1"
CUSTOMERS = "billing.customers.v1"

# The partner copy of the final notice, as `billstate replay --policy policies/standard.yaml
# docs/examples/lifecycle.jsonl` requests it (collections' own output, locale "en").
PARTNER_FINAL_NOTICE = (
    b'{"event_id":"evt-ntc-f3ea72f262b096cb1885","event_type":"notice.requested",'
    b'"schema_version":1,"occurred_at":"2026-12-15T01:00:00+00:00","customer_id":"contoso",'
    b'"data":{"notice_id":"ntc-f3ea72f262b096cb1885","kind":"final_notice","audience":"partner",'
    b'"locale":"en","facts":{"customer_id":"contoso","stage":"final_notice","as_of":"2026-12-15",'
    b'"days_past_due":14,"overdue":[{"amount":"1450.00","currency":"USD"}],"invoices":'
    b'[{"invoice_id":"INV-2026-0001","due_on":"2026-12-01","open":"1450.00","currency":"USD"}],'
    b'"suspension_on":"2026-12-22","policy":{"name":"standard","version":3}}}}'
)


class Rec:
    def __init__(self, value: bytes, topic: str, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key: bytes | None = b"contoso"
        self.value: bytes | None = value


class Partner:
    """The notifications handler with a file outbox, for a partner reading `locale`."""

    def __init__(self, tmp_path: Path, locale: str) -> None:
        self.outbox = tmp_path / "outbox"
        self.handle = NotificationsHandler(
            store=Store(tmp_path / "n.sqlite3"),
            channel=OutboxChannel(self.outbox),
            default_locale=locale,
        )
        self.offset = 0

    async def send(self, value: bytes, topic: str) -> dict[str, Any] | None:
        self.offset += 1
        out = await self.handle(Rec(value, topic, self.offset))
        if not out:
            return None
        delivered = decode(out[0].value)
        assert delivered.event_type == "notice.delivered", delivered
        path = self.outbox / f"{delivered.data.notice_id}.json"
        document: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return document

    async def customer(self, locale: str) -> None:
        upsert = EXAMPLES["customer.upserted"]
        data = upsert.data.model_copy(update={"locale": locale, "name": "Contoso Ltd"})
        event = upsert.model_copy(update={"customer_id": "contoso", "data": data})
        assert await self.send(encode(event), CUSTOMERS) is None


def _same_text(document: dict[str, Any], notice: NoticeRequestedData, name: str | None) -> None:
    expected = render(notice, name, customer_id="contoso")
    assert (document["locale"], document["subject"], document["text"], document["html"]) == (
        expected.locale,
        expected.subject,
        expected.text,
        expected.html,
    )


def _request_as(raw: bytes, *, locale: str, audience: str) -> tuple[bytes, NoticeRequestedData]:
    """The same request for another audience or locale, with its own notice id."""
    event = decode(raw)
    assert isinstance(event.data, NoticeRequestedData)
    data = event.data.model_copy(
        update={
            "locale": locale,
            "audience": audience,
            "notice_id": f"{event.data.notice_id}-{audience}",
        }
    )
    copy = event.model_copy(update={"data": data, "event_id": f"evt-{data.notice_id}"})
    return encode(copy), data


async def test_a_partner_copy_of_a_stage_notice_reads_zh_tw(tmp_path: Path) -> None:
    partner = Partner(tmp_path, "zh-TW")
    await partner.customer("en")
    request = decode(PARTNER_FINAL_NOTICE).data
    assert isinstance(request, NoticeRequestedData)
    assert (request.audience, request.locale) == ("partner", "en")  # as collections asks

    document = await partner.send(PARTNER_FINAL_NOTICE, REQUESTS)
    assert document is not None
    assert (document["audience"], document["locale"]) == ("partner", "zh-TW")
    assert document["subject"].startswith("已寄送最後通知給 Contoso Ltd（contoso）")
    _same_text(document, request.model_copy(update={"locale": "zh-TW"}), "Contoso Ltd")

    # The customer's copy of the same notice keeps the customer's language.
    raw, data = _request_as(PARTNER_FINAL_NOTICE, locale="en", audience="customer")
    document = await partner.send(raw, REQUESTS)
    assert document is not None
    assert (document["audience"], document["locale"]) == ("customer", "en")
    _same_text(document, data, "Contoso Ltd")


async def test_a_suspended_partner_copy_reads_zh_tw_too(tmp_path: Path) -> None:
    partner = Partner(tmp_path, "zh-TW")
    await partner.customer("en")
    event = decode(PARTNER_FINAL_NOTICE)
    assert isinstance(event.data, NoticeRequestedData)
    facts = {
        **event.data.facts,
        "stage": "suspended",
        "suspension_on": None,
        "subscription_ids": ["sub-55d0f2", "sub-7c1e9a"],
    }
    data = event.data.model_copy(
        update={"kind": "suspended", "notice_id": "ntc-suspended-partner", "facts": facts}
    )
    raw = encode(event.model_copy(update={"data": data, "event_id": "evt-ntc-suspended"}))
    document = await partner.send(raw, REQUESTS)
    assert document is not None
    assert (document["kind"], document["locale"]) == ("suspended", "zh-TW")
    _same_text(document, data.model_copy(update={"locale": "zh-TW"}), "Contoso Ltd")


@pytest.mark.parametrize("event_type", ["access.failed", "access.approval_needed"])
async def test_staff_notices_read_zh_tw(tmp_path: Path, event_type: str) -> None:
    partner = Partner(tmp_path, "zh-TW")
    await partner.customer("en")  # a customer in English changes nothing for staff
    event = EXAMPLES[event_type]
    assert isinstance(event, AccessFailed | AccessApprovalNeeded)
    document = await partner.send(encode(event), ACCESS)
    assert document is not None
    assert (document["audience"], document["locale"]) == ("partner", "zh-TW")
    _same_text(document, staff_notice(event, "zh-TW"), "Contoso Ltd")
    assert document["subject"] != render(staff_notice(event, "en"), None).subject


async def test_an_english_partner_reads_english_whatever_the_customer_reads(
    tmp_path: Path,
) -> None:
    """The other way round: the customer reads zh-TW, the partner (default en) does not."""
    partner = Partner(tmp_path, "en")
    await partner.customer("zh-TW")
    raw, data = _request_as(PARTNER_FINAL_NOTICE, locale="zh-TW", audience="partner")
    document = await partner.send(raw, REQUESTS)
    assert document is not None
    assert (document["audience"], document["locale"]) == ("partner", "en")
    _same_text(document, data.model_copy(update={"locale": "en"}), "Contoso Ltd")
    failed = await partner.send(encode(EXAMPLES["access.failed"]), ACCESS)
    assert failed is not None
    assert failed["locale"] == "en"
