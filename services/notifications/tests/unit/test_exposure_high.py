"""The `exposure_high` staff notice, golden in both languages, and exposure in partner notices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from billstate_notifications.domain import RenderError, render
from billstate_shared.contracts import NoticeRequestedData

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"

# As the collections engine builds them (services/collections, `_exposure_high`).
FACTS: dict[str, Any] = {
    "customer_id": "contoso",
    "stage": "final_notice",
    "as_of": "2026-10-16",
    "days_past_due": 15,
    "overdue": [{"amount": "900.00", "currency": "USD"}],
    "invoices": [
        {"invoice_id": "INV-1", "due_on": "2026-10-01", "open": "900.00", "currency": "USD"}
    ],
    "suspension_on": None,
    "policy": {"name": "standard", "version": 3},
    "exposure": [
        {"amount": "5800.00", "currency": "USD"},
        {"amount": "120.50", "currency": "EUR"},
    ],
    "above": [
        {
            "currency": "USD",
            "amount": "5800.00",
            "threshold": "5000.00",
            "subscription_ids": ["sub-1", "sub-2"],
        }
    ],
}


def notice(kind: str, facts: dict[str, Any], locale: str = "en") -> NoticeRequestedData:
    return NoticeRequestedData(
        notice_id=f"ntc-{kind}", kind=kind, audience="partner", locale=locale, facts=facts
    )


def letter(data: NoticeRequestedData) -> str:
    rendered = render(data, "Contoso Ltd", customer_id="contoso")
    return f"Subject: {rendered.subject}\n\n{rendered.text}\n{rendered.html}"


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_the_notice_matches_the_golden_file(locale: str) -> None:
    golden = GOLDEN / f"exposure_high.{locale}.txt"

    out = letter(notice("exposure_high", FACTS, locale))

    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize(
    ("locale", "words"),
    [("en", "Microsoft has billed you"), ("zh-TW", "Microsoft 已向您計費")],
)
def test_a_partner_notice_says_the_exposure_when_there_is_one(locale: str, words: str) -> None:
    facts = {k: v for k, v in FACTS.items() if k != "above"}
    with_it = render(notice("final_notice", facts, locale), "Contoso Ltd")
    without = render(
        notice("final_notice", {k: v for k, v in facts.items() if k != "exposure"}, locale),
        "Contoso Ltd",
    )

    assert words in with_it.text
    assert words in with_it.html
    assert "5,800.00" in with_it.text
    assert words not in without.text
    assert words not in without.html


def test_a_customer_never_sees_the_exposure() -> None:
    data = NoticeRequestedData(
        notice_id="ntc-1", kind="final_notice", audience="customer", locale="en", facts=FACTS
    )

    assert "Microsoft" not in render(data, "Contoso Ltd").text


def test_a_malformed_exposure_is_refused_with_its_path() -> None:
    bad = {**FACTS, "exposure": [{"amount": 5800, "currency": "USD"}]}

    with pytest.raises(RenderError) as err:
        render(notice("exposure_high", bad), "Contoso Ltd")

    assert "data.facts.exposure.0.amount" in str(err.value)
