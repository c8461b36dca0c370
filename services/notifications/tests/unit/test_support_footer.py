"""The billing support footer of customer notices: golden in both languages, never for staff."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billstate_notifications.domain import RenderError, render
from billstate_notifications.domain.view import day_spans
from billstate_shared.contracts import NoticeRequestedData
from billstate_shared.domain.policy import WEEKDAYS

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"

# As policies/support.yaml gives them (docs/policy.md "What a notice carries"), the cost line
# already in the notice's language.
COST = {
    "en": "Billing support is included in your subscription at no extra charge.",
    "zh-TW": "帳務支援已包含在您的訂閱中，不另收費。",
}


def support(locale: str = "en", **extra: Any) -> dict[str, Any]:
    return {
        "hours": {
            "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "opens": "09:00",
            "closes": "18:00",
            "timezone": "Asia/Taipei",
        },
        "contact": {
            "email": "billing@partner.example",
            "phone": "+886 2 2345 6789",
            "web": "https://support.partner.example/billing",
        },
        "languages": ["en", "zh-TW"],
        "cost": COST[locale],
        **extra,
    }


BASE: dict[str, Any] = {
    "customer_id": "contoso",
    "stage": "final_notice",
    "as_of": "2026-12-15",
    "days_past_due": 14,
    "overdue": [{"amount": "1450.00", "currency": "USD"}],
    "invoices": [
        {
            "invoice_id": "INV-2026-0001",
            "due_on": "2026-12-01",
            "open": "1450.00",
            "currency": "USD",
        }
    ],
    "suspension_on": "2026-12-22",
    "policy": {"name": "support", "version": 3},
}
CUSTOMER_KINDS = (
    "reminder",
    "overdue",
    "final_notice",
    "suspended",
    "restored",
    "payment_failed",
    "promise_broken",
)
FOOTER = {"en": "Contact billing support:", "zh-TW": "帳務問題請洽帳務支援："}


def notice(
    kind: str, facts: dict[str, Any], locale: str = "en", audience: str = "customer"
) -> NoticeRequestedData:
    return NoticeRequestedData(
        notice_id=f"ntc-{kind}", kind=kind, audience=audience, locale=locale, facts=facts
    )


def letter(data: NoticeRequestedData) -> str:
    rendered = render(data, "Contoso Ltd", customer_id="contoso")
    return f"Subject: {rendered.subject}\n\n{rendered.text}\n{rendered.html}"


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_the_notice_with_support_terms_matches_the_golden_file(locale: str) -> None:
    golden = GOLDEN / f"final_notice.support.{locale}.txt"

    out = letter(notice("final_notice", {**BASE, "support": support(locale)}, locale))

    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize("kind", [*CUSTOMER_KINDS, "grace"])
def test_every_customer_notice_ends_with_the_footer(kind: str, locale: str) -> None:
    plain = render(notice(kind, {**BASE, "stage": "grace"}, locale), "Contoso Ltd")
    rendered = render(
        notice(kind, {**BASE, "stage": "grace", "support": support(locale)}, locale), "Contoso Ltd"
    )

    # The letter as before, then the footer, the cost line last.
    assert rendered.text.startswith(plain.text.rstrip("\n") + "\n\n")
    assert rendered.text.rstrip().endswith(COST[locale])
    assert FOOTER[locale] in rendered.html
    assert rendered.html.index(FOOTER[locale]) > rendered.html.index("</ul>")


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize("kind", ["final_notice", "suspended", "exposure_high"])
def test_a_partner_notice_has_no_footer(kind: str, locale: str) -> None:
    with_it = render(notice(kind, {**BASE, "support": support()}, locale, "partner"), "Contoso")
    without = render(notice(kind, BASE, locale, "partner"), "Contoso")

    assert (with_it.text, with_it.html) == (without.text, without.html)


@pytest.mark.parametrize(
    ("days", "en", "zh"),
    [
        (["friday", "monday", "tuesday"], "Monday to Tuesday and Friday", "週一至週二及週五"),
        (["saturday"], "Saturday, 09:00", "週六 09:00"),
        (WEEKDAYS, "Monday to Sunday", "週一至週日"),
        (["monday", "wednesday", "friday"], "Monday, Wednesday and Friday", "週一、週三及週五"),
    ],
)
def test_service_days_are_named_in_the_notice_language(days: list[str], en: str, zh: str) -> None:
    terms = support()
    terms["hours"] = {**terms["hours"], "days": list(days)}

    assert en in render(notice("overdue", {**BASE, "support": terms}), None).text
    assert zh in render(notice("overdue", {**BASE, "support": terms}, "zh-TW"), None).text


def test_only_the_contacts_given_are_listed() -> None:
    terms = support(contact={"email": None, "phone": "+886 2 2345 6789"}, languages=["zh-TW"])

    text = render(notice("overdue", {**BASE, "support": terms}), None).text

    assert "Phone: +886 2 2345 6789" in text
    assert "E-mail" not in text
    assert "Web form" not in text
    assert "Languages: Traditional Chinese\n" in text


def test_the_footer_is_escaped_in_html() -> None:
    terms = support(cost="Free <b>& fast</b>")

    html = render(notice("overdue", {**BASE, "support": terms}), None).html

    assert "Free &lt;b&gt;&amp; fast&lt;/b&gt;" in html
    assert "<b>" not in html


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"hours": None}, "data.facts.support.hours"),
        ({"hours": {"days": ["funday"], "opens": "09:00", "closes": "18:00", "timezone": "UTC"}},
         "data.facts.support.hours.days.0"),
        ({"hours": {"days": [], "opens": "09:00", "closes": "18:00", "timezone": "UTC"}},
         "data.facts.support.hours.days"),
        ({"hours": {"days": ["monday"], "opens": "9am", "closes": "18:00", "timezone": "UTC"}},
         "data.facts.support.hours.opens"),
        ({"contact": {"email": 42}}, "data.facts.support.contact.email"),
        ({"cost": ["free"]}, "data.facts.support.cost"),
    ],
)  # fmt: skip
def test_malformed_support_terms_are_refused_with_their_path(
    change: dict[str, Any], path: str
) -> None:
    with pytest.raises(RenderError) as err:
        render(notice("overdue", {**BASE, "support": support(**change)}), None)

    assert path in str(err.value)


@given(st.sets(st.integers(min_value=0, max_value=6)))
def test_day_spans_cover_exactly_the_days_in_maximal_runs(days: set[int]) -> None:
    spans = day_spans(days)

    assert {d for first, last in spans for d in range(first, last + 1)} == days
    assert all(first <= last for first, last in spans)
    # Runs are in order and never touch: two adjacent runs would be one.
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(spans))
