"""A commitment at stake: one `commitment_alert` staff notice per subscription and renewal
or cancellation window, golden in both languages."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from billstate_notifications.channels import OutboxChannel
from billstate_notifications.domain import render, staff_notice
from billstate_notifications.handlers import NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.contracts import AccessCommitment, decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.domain.ids import make_id

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"
ACCESS = "access.events.v1"
NOW = datetime(2027, 1, 17, 6, 5, tzinfo=UTC)
CLOSES = datetime(2027, 1, 24, 1, 0, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def commitment(**update: Any) -> AccessCommitment:
    """The contract's example (an auto-renewal), with `update` on its data."""
    example = EXAMPLES["access.commitment"]
    assert isinstance(example, AccessCommitment)
    return example.model_copy(update={"data": example.data.model_copy(update=update)})


WINDOW = {
    "auto_renew": False,
    "renews_on": None,
    "cancellable_until": CLOSES,
    "term_cost": None,
    "reason": "can be cancelled until 2027-01-24 01:00 UTC, while the customer is at suspended",
}


def letter(event: AccessCommitment, locale: str) -> str:
    rendered = render(staff_notice(event, locale), "Contoso Ltd", customer_id=event.customer_id)
    return f"Subject: {rendered.subject}\n\n{rendered.text}\n{rendered.html}"


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize(
    ("case", "event"), [("renewal", commitment()), ("window", commitment(**WINDOW))]
)
def test_the_notice_matches_the_golden_file(
    locale: str, case: str, event: AccessCommitment
) -> None:
    golden = GOLDEN / f"commitment_alert.{case}.{locale}.txt"

    out = letter(event, locale)

    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


def test_the_notice_says_what_is_at_stake_and_until_when() -> None:
    renewal = render(staff_notice(commitment(), "en"), None, customer_id="contoso")
    window = render(staff_notice(commitment(**WINDOW), "en"), None, customer_id="contoso")

    assert "auto-renews on February 1, 2027" in renewal.subject
    assert "Term cost: $7,348.80" in renewal.text
    assert "can be cancelled until January 24, 2027 01:00 UTC" in window.subject
    assert "Term cost" not in window.text
    for rendered in (renewal, window):
        assert "cancels nothing" in rendered.text


def test_one_notice_per_event_id() -> None:
    one = staff_notice(commitment(), "en")
    again = staff_notice(commitment(reason="said differently"), "zh-TW")
    other = staff_notice(
        commitment(renews_on=date(2028, 2, 1)).model_copy(
            update={"event_id": "commitment-partner_center-sub-7a1c-2028-01-31"}
        ),
        "en",
    )

    event_id = EXAMPLES["access.commitment"].event_id
    assert (
        one.notice_id == again.notice_id == make_id("ntc", "contoso", "commitment_alert", event_id)
    )
    assert other.notice_id != one.notice_id
    assert (one.kind, one.audience) == ("commitment_alert", "partner")


async def test_through_the_handler_one_notice_and_its_redelivery_none(tmp_path: Path) -> None:
    handler = NotificationsHandler(
        store=Store(tmp_path / "n.sqlite3"),
        channel=OutboxChannel(tmp_path / "outbox"),
        clock=lambda: NOW,
    )
    raw = encode(commitment())

    out = await handler(Rec(ACCESS, 2, 40, b"contoso", raw))
    again = await handler(Rec(ACCESS, 2, 41, b"contoso", raw))

    (delivered,) = out
    assert decode(delivered.value or b"").event_type == "notice.delivered"
    assert again == []
    (document,) = (tmp_path / "outbox").iterdir()
    doc = json.loads(document.read_text("utf-8"))
    assert (doc["kind"], doc["audience"]) == ("commitment_alert", "partner")
