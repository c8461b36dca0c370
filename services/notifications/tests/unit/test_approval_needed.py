"""Parked suspensions: one `approval_needed` staff notice per batch, golden in both languages;
`access.parked` and `access.unparked` accepted and turned into nothing."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billstate_notifications.channels import OutboxChannel
from billstate_notifications.domain import RenderError, render, staff_notice
from billstate_notifications.handlers import NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.contracts import AccessApprovalNeeded, decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.records import Produce

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"
ACCESS = "access.events.v1"
DELIVERIES = "notifications.deliveries.v1"
NOW = datetime(2027, 1, 11, 9, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def batch(**update: Any) -> AccessApprovalNeeded:
    """The contract's example batch (7 parked by the brake), with `update` on its data."""
    example = EXAMPLES["access.approval_needed"]
    assert isinstance(example, AccessApprovalNeeded)
    data = example.data.model_copy(update=update)
    return example.model_copy(update={"data": data})


STALE = {
    "batch_id": "stale_payment_feed-partner_center-2027-01-11T09:00Z",
    "guard": "stale_payment_feed",
    "count": 1,
    "customer_ids": ["contoso"],
    "reason": "no record on billing.payments.v1 for 41 hours, the limit is 36",
}


def letter(event: AccessApprovalNeeded, locale: str) -> str:
    """Subject, text and HTML of the staff notice, as one reviewable file."""
    rendered = render(staff_notice(event, locale), "Contoso Ltd", customer_id=event.customer_id)
    return f"Subject: {rendered.subject}\n\n{rendered.text}\n{rendered.html}"


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize(("guard", "event"), [("brake", batch()), ("stale", batch(**STALE))])
def test_the_notice_matches_the_golden_file(
    locale: str, guard: str, event: AccessApprovalNeeded
) -> None:
    golden = GOLDEN / f"approval_needed.{guard}.{locale}.txt"

    out = letter(event, locale)

    if UPDATE_GOLDEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize(
    ("locale", "brake", "stale"),
    [
        ("en", "more suspensions than the daily cap", "the payment feed has been silent"),
        ("zh-TW", "暫停數量超過每日上限", "付款資料來源已有一段時間沒有新資料"),
    ],
)
def test_the_notice_says_the_count_the_guard_the_customers_and_how_to_act(
    locale: str, brake: str, stale: str
) -> None:
    by_brake = render(staff_notice(batch(count=1234), locale), None, customer_id="contoso")
    by_silence = render(staff_notice(batch(**STALE), locale), None, customer_id="contoso")

    assert "1,234" in by_brake.subject  # the count, formatted by Babel for the locale
    assert brake in by_brake.subject
    assert brake in by_brake.text
    assert stale in by_silence.subject
    for rendered in (by_brake, by_silence):
        assert "billstate access pending" in rendered.text
        assert "billstate access approve --all --by NAME --reason TEXT --send" in rendered.text
        assert "billstate access reject --all --by NAME --reason TEXT --send" in rendered.text
    assert "more than 50 suspensions in 24 hours on partner_center" in by_brake.text
    joined = (
        "contoso, fabrikam, and northwind" if locale == "en" else "contoso、fabrikam和northwind"
    )
    assert joined in by_brake.text
    assert joined in by_brake.html


def test_the_notice_id_is_the_batchs_whatever_the_event() -> None:
    one = staff_notice(batch(), "en")
    again = staff_notice(
        batch().model_copy(update={"event_id": "approval-again", "customer_id": "fabrikam"}), "en"
    )

    assert (
        one.notice_id
        == again.notice_id
        == make_id("ntc", "approval_needed", "brake-partner_center-2027-01-11T09:00Z")
    )
    assert staff_notice(batch(batch_id="brake-later"), "en").notice_id != one.notice_id
    assert (one.kind, one.audience) == ("approval_needed", "partner")


def test_an_unknown_guard_in_the_facts_is_a_render_error() -> None:
    notice = staff_notice(batch(), "en")
    notice = notice.model_copy(update={"facts": {**notice.facts, "guard": "gremlins"}})

    with pytest.raises(RenderError) as err:
        render(notice, None)

    assert err.value.field == "data.facts.guard"


# ---- through the handler --------------------------------------------------------------------


@pytest.fixture
def handler(tmp_path: Path) -> NotificationsHandler:
    return NotificationsHandler(
        store=Store(tmp_path / "n.sqlite3"),
        channel=OutboxChannel(tmp_path / "outbox"),
        clock=lambda: NOW,
    )


def outcome(out: Produce) -> Any:
    assert out.topic == DELIVERIES
    return decode(out.value)


async def test_one_batch_gives_one_staff_notice_and_its_redelivery_none(
    handler: NotificationsHandler, tmp_path: Path
) -> None:
    raw = encode(batch())

    out = await handler(Rec(ACCESS, 2, 40, b"contoso", raw))
    again = await handler(Rec(ACCESS, 2, 41, b"contoso", raw))

    (delivered,) = out
    event = outcome(delivered)
    assert event.event_type == "notice.delivered"
    assert delivered.key == b"contoso"
    assert again == []
    (document,) = (tmp_path / "outbox").iterdir()
    doc = json.loads(document.read_text("utf-8"))
    assert (doc["notice_id"], doc["kind"], doc["audience"], doc["locale"]) == (
        event.data.notice_id,
        "approval_needed",
        "partner",
        "en",
    )
    assert doc["subject"] == (
        "Approval needed: 7 suspensions parked, more suspensions than the daily cap"
    )


@pytest.mark.parametrize("event_type", ["access.parked", "access.unparked"])
async def test_parked_and_unparked_are_accepted_and_give_nothing(
    handler: NotificationsHandler, tmp_path: Path, event_type: str
) -> None:
    event = EXAMPLES[event_type]

    # Accepted: no Refused (which the Loop would dead-letter), no output, nothing sent.
    assert await handler(Rec(ACCESS, 2, 7, event.customer_id.encode(), encode(event))) == []
    assert not (tmp_path / "outbox").exists()
    assert handler.store.access_events(event.customer_id) == []
