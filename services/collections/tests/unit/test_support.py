"""Support requests (issue 17): open tickets, the payment claim's hold on the suspend stage,
and the support terms in customer notices. The running example is test_guards.py's: INV-1,
USD 100.00, due 2026-11-01, billing sub-A; unpaid, final_notice on 11-15 and the suspend stage
due on 11-22, a Sunday (Monday 11-23 with business days only).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from scenario import ROOT, TAIPEI, Story, d, make_policy, run, standard

from billstate_collections.domain.book import CURRENT
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import claim_ends, step
from billstate_collections.domain.snapshot import state_data, state_record
from billstate_shared.contracts import StageEntered
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import Refused
from billstate_shared.policy_file import load_policy

DUE = "2026-11-01"
SUPPORT = yaml.safe_load((ROOT / "policies" / "support.yaml").read_text(encoding="utf-8"))[
    "support"
]


def business_days(**calendar: Any) -> Policy:
    return make_policy(calendar={"suspend_on": "business_days", "weekend": ["saturday", "sunday"],
                                 **calendar})  # fmt: skip


def unpaid(s: Story) -> list[Any]:
    return [s.upsert(subs=["sub-A"]), s.issue("INV-1", "100.00", DUE, subs=["sub-A"])]


def entered(r: Any, stage: str) -> StageEntered:
    (found,) = [e for e in r.entered() if e.data.stage == stage]
    return found


def d_at(day: str, hour: int) -> datetime:
    return datetime.combine(d(day), time(hour), tzinfo=TAIPEI)


def tickets(r: Any, policy: Policy | None = None) -> list[tuple[str, str, str, str | None]]:
    data = state_data(r.book(), policy or r.policy)
    return [
        (t.ticket_id, t.topic, t.opened_on.isoformat(),
         t.holds_until.isoformat() if t.holds_until else None)
        for t in data.tickets
    ]  # fmt: skip


# ---- the hold's length ----------------------------------------------------------------------


def test_a_claim_holds_through_the_third_business_date_after_it_was_filed() -> None:
    s = Story()
    policy = business_days()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-19"),
        s.support("ZD-1"),  # Thursday, after the day's tick
        s.days("2026-11-20", "2026-11-30"),
        policy=policy,
    )
    # Held Friday, Monday, Tuesday (the weekend is not counted): in on Wednesday.
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d("2026-11-25")
    assert suspended.data.why.text.endswith(
        " Postponed until today: payment claimed in support ticket ZD-1 (filed 2026-11-19),"
        " held 3 business days to 2026-11-24."
    )
    assert [(e.data.as_of, e.data.stage) for e in r.entered()][:2] == [
        (d("2026-11-02"), "overdue"),
        (d("2026-11-15"), "final_notice"),
    ]
    assert tickets(r) == [("ZD-1", "payment_claimed", "2026-11-19", "2026-11-24")]


def test_a_holiday_is_not_a_business_date_of_the_hold() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-19"),
        s.support("ZD-1"),
        s.days("2026-11-20", "2026-11-30"),
        policy=business_days(extra_holidays=["2026-11-23"]),
    )
    assert entered(r, "suspended").data.as_of == d("2026-11-26")
    assert "held 3 business days to 2026-11-25" in entered(r, "suspended").data.why.text


def test_with_any_day_every_date_counts_and_the_policy_sets_the_length() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"), s.support("ZD-1"),
            s.days("2026-11-20", "2026-11-30"))  # fmt: skip
    assert entered(r, "suspended").data.as_of == d("2026-11-23")
    s = Story()
    longer = make_policy(support={**SUPPORT, "payment_claim_hold_days": 5})
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"), s.support("ZD-1"),
            s.days("2026-11-20", "2026-11-30"), policy=longer)  # fmt: skip
    assert entered(r, "suspended").data.as_of == d("2026-11-25")


def test_claim_ends_counts_business_dates_after_the_filing_date() -> None:
    policy = business_days()
    assert claim_ends(policy, d("2026-11-16")) == d("2026-11-19")  # Monday -> Thursday
    assert claim_ends(policy, d("2026-11-22")) == d("2026-11-25")  # Sunday -> Wednesday
    assert claim_ends(standard(), d("2026-11-20")) == d("2026-11-23")


def test_a_claim_before_the_days_tick_holds_from_its_own_date() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-21"), policy=business_days())
    # 01:00 local on Sunday the 22nd, before that day's tick: filed on the 22nd.
    early = s.support("ZD-1", at=d_at("2026-11-22", 1))
    r.feed(early, s.days("2026-11-22", "2026-11-30"))
    assert tickets(r) == [("ZD-1", "payment_claimed", "2026-11-22", "2026-11-25")]
    assert entered(r, "suspended").data.as_of == d("2026-11-26")


# ---- what else goes on, and what the schedule says ---------------------------------------------


def test_only_the_suspend_entry_waits_and_the_state_says_why() -> None:
    s = Story()
    policy = business_days()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-12"), s.support("ZD-1"),
            s.days("2026-11-13", "2026-11-15"), policy=policy)  # fmt: skip
    # Filed on the 12th, held through the 17th: final_notice comes on the 15th as always.
    assert entered(r, "final_notice").data.as_of == d("2026-11-15")
    r = run(unpaid(s := Story()), s.days("2026-10-25", "2026-11-20"), s.support("ZD-1"),
            s.days("2026-11-21", "2026-11-23"), policy=policy)  # fmt: skip
    assert r.suspends() == []
    data = state_data(r.book(), policy)
    assert data.waiting == (
        "payment claimed in support ticket ZD-1 (filed 2026-11-20), held 3 business days"
        " to 2026-11-25"
    )
    assert data.next is not None
    assert (data.next.stage, data.next.earliest_on) == ("suspended", d("2026-11-26"))


def test_suspension_on_in_notices_counts_the_claim() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-19"),
        s.support("ZD-1"),
        s.fail("INV-1"),
        s.days("2026-11-20", "2026-11-30"),
        policy=business_days(),
    )
    (failed,) = r.notices("payment_failed")
    assert failed.data.facts["suspension_on"] == "2026-11-25"
    assert entered(r, "suspended").data.as_of == d("2026-11-25")


# ---- once per episode -------------------------------------------------------------------------


def test_a_second_claim_in_the_same_episode_holds_nothing() -> None:
    s = Story()
    policy = business_days()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-18"),
        s.support("ZD-1"),
        s.resolve("ZD-1"),  # not due yet: nothing to enter
        s.support("ZD-2"),
        s.days("2026-11-19", "2026-11-30"),
        policy=policy,
    )
    assert entered(r, "suspended").data.as_of == d("2026-11-23")  # as without any claim
    assert "Postponed until today: 2026-11-22 is a Sunday" in entered(r, "suspended").data.why.text
    assert tickets(r) == [("ZD-2", "payment_claimed", "2026-11-18", None)]


def test_a_new_episode_gets_a_new_hold() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.issue("INV-2", "100.00", "2026-12-01", subs=["sub-A"]),
        s.days("2026-10-25", "2026-11-19"),
        s.support("ZD-1"),
        s.pay("PAY-1", "100.00", invoice_id="INV-1"),  # the episode ends
        s.days("2026-11-20", "2026-12-17"),
        s.support("ZD-2"),
        s.days("2026-12-18", "2026-12-31"),
        policy=business_days(),
    )
    assert [e.data.as_of for e in r.entered() if e.data.stage == "suspended"] == [d("2026-12-23")]
    # The first claim no longer holds; the second holds Friday, Monday, Tuesday.
    assert tickets(r) == [
        ("ZD-1", "payment_claimed", "2026-11-19", None),
        ("ZD-2", "payment_claimed", "2026-12-17", "2026-12-22"),
    ]


def test_a_claim_while_nothing_is_delinquent_holds_nothing() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-10-30"), s.support("ZD-1"),
            s.days("2026-10-31", "2026-11-30"))  # fmt: skip
    assert tickets(r) == [("ZD-1", "payment_claimed", "2026-10-30", None)]
    assert entered(r, "suspended").data.as_of == d("2026-11-22")


# ---- resolution ---------------------------------------------------------------------------------


def test_resolution_ends_the_hold_and_the_suspension_comes_on_that_event() -> None:
    s = Story()
    policy = business_days()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-20"), s.support("ZD-1"),
            s.days("2026-11-21", "2026-11-23"), policy=policy)  # fmt: skip
    assert r.suspends() == []
    outputs = r.feed(s.resolve("ZD-1"))
    assert [o.event_type for o in outputs][:2] == ["collections.stage_entered", "access.suspend"]
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d("2026-11-23")
    assert "payment claimed in support ticket ZD-1" in suspended.data.why.text
    assert tickets(r) == []


def test_resolution_on_a_closed_date_waits_for_the_next_business_date() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-20"), s.support("ZD-1"),
            s.days("2026-11-21", "2026-11-22"), policy=business_days())  # fmt: skip
    assert r.feed(s.resolve("ZD-1")) == []  # Sunday
    r.feed(s.days("2026-11-23", "2026-11-24"))
    assert entered(r, "suspended").data.as_of == d("2026-11-23")


def test_payment_ends_the_episode_and_with_it_the_hold() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-20"), s.support("ZD-1"),
            s.pay("PAY-1", "100.00"), s.days("2026-11-21", "2026-11-30"))  # fmt: skip
    assert r.suspends() == []
    assert r.book().stage == CURRENT
    assert tickets(r) == [("ZD-1", "payment_claimed", "2026-11-20", None)]
    assert not r.book().claimed


# ---- with promises and payments in flight: the longest hold wins -------------------------------


@pytest.mark.parametrize(
    ("promised", "suspended_on"),
    [("2026-11-26", "2026-11-27"), ("2026-11-20", "2026-11-25")],
)
def test_with_a_promise_to_pay_the_longer_holds(promised: str, suspended_on: str) -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"), s.promise("P-1", promised),
            s.support("ZD-1"), s.days("2026-11-20", "2026-11-30"),
            policy=business_days())  # fmt: skip
    assert entered(r, "suspended").data.as_of == d(suspended_on)


@pytest.mark.parametrize(
    ("expected_by", "suspended_on"),
    [("2026-11-26", "2026-11-27"), ("2026-11-23", "2026-11-25")],
)
def test_with_a_payment_in_flight_the_longer_holds(expected_by: str, suspended_on: str) -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"),
            s.pending("PAY-1", "100.00", expected_by), s.support("ZD-1"),
            s.days("2026-11-20", "2026-11-30"), policy=business_days())  # fmt: skip
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d(suspended_on)
    assert "support ticket ZD-1" in suspended.data.why.text
    assert "payment PAY-1" in suspended.data.why.text


# ---- other topics, duplicates, limits ---------------------------------------------------


def test_a_dispute_flags_the_customer_without_holding_anything() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"), s.support("ZD-9", "dispute"),
            s.support("ZD-8", "billing_question"), s.days("2026-11-20", "2026-11-30"))  # fmt: skip
    assert entered(r, "suspended").data.as_of == d("2026-11-22")
    assert tickets(r) == [
        ("ZD-8", "billing_question", "2026-11-19", None),
        ("ZD-9", "dispute", "2026-11-19", None),
    ]
    # A payment claim after them is still the episode's first: it holds.
    assert r.book().claimed is False


def test_duplicates_and_unknown_resolutions_change_nothing() -> None:
    s = Story()
    policy = standard()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-19"), s.support("ZD-1"))
    book = r.book()
    before = (dump_book(book, policy), book.version)
    assert r.feed(s.support("ZD-1", "dispute")) == []
    assert r.feed(s.resolve("ZD-404")) == []
    assert (dump_book(book, policy), book.version) == before
    r.feed(s.resolve("ZD-1"))
    after = dump_book(book, policy)
    assert r.feed(s.resolve("ZD-1")) == []
    assert r.feed(s.support("ZD-1")) == []  # a redelivery after its resolution
    assert dump_book(book, policy) == after
    assert tickets(r) == []


def test_a_17th_open_ticket_is_refused_and_changes_nothing() -> None:
    s = Story()
    policy = standard()
    r = run(unpaid(s), [s.support(f"ZD-{n}", "billing_question") for n in range(16)])
    book = r.book()
    before = dump_book(book, policy)
    with pytest.raises(Refused) as refused:
        step(book, s.support("ZD-16", "billing_question"), policy)
    assert refused.value.field == "data.ticket_id"
    assert dump_book(book, policy) == before
    r.feed(s.resolve("ZD-0"), s.support("ZD-16"))  # room again
    assert len(state_data(book, policy).tickets) == 16


# ---- stored books, state records, notices ------------------------------------------------------


def test_a_book_with_tickets_is_stored_and_loaded_as_it_was() -> None:
    s = Story()
    policy = business_days()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-20"), s.support("ZD-1"),
            s.support("ZD-2", "dispute"), policy=policy)  # fmt: skip
    stored = dump_book(r.book(), policy)
    assert stored["tickets"] == [
        ["ZD-1", "payment_claimed", "2026-11-20", "2026-11-25"],
        ["ZD-2", "dispute", "2026-11-20", None],
    ]
    assert stored["claimed"] is True
    loaded = load_book(stored, policy)
    assert loaded.tickets == r.book().tickets
    assert loaded.claimed
    assert dump_book(loaded, policy) == stored


def test_the_state_record_lists_open_tickets() -> None:
    s = Story()
    policy = business_days()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-20"), s.support("ZD-2", "dispute"),
            s.support("ZD-1"), policy=policy)  # fmt: skip
    record = state_record(r.book(), policy, s.now)
    assert record.data["tickets"] == [
        {"ticket_id": "ZD-1", "topic": "payment_claimed", "opened_on": "2026-11-20",
         "holds_until": "2026-11-25"},
        {"ticket_id": "ZD-2", "topic": "dispute", "opened_on": "2026-11-20", "holds_until": None},
    ]  # fmt: skip
    assert record.model().data.tickets[0].holds_until == d("2026-11-25")
    # Without tickets the record says so with an empty list.
    assert state_record(run(unpaid(Story())).book(), policy, s.now).data["tickets"] == []


def test_customer_notices_carry_the_support_terms_in_their_language() -> None:
    policy = load_policy(ROOT / "policies" / "support.yaml")
    s = Story()
    r = run(s.upsert(subs=["sub-A"], locale="zh-TW"), s.issue("INV-1", "100.00", DUE,
            subs=["sub-A"]), s.days("2026-10-25", "2026-11-30"), policy=policy)  # fmt: skip
    customer = [n for n in r.notices() if n.data.audience == "customer"]
    partner = [n for n in r.notices() if n.data.audience == "partner"]
    assert customer
    assert partner
    for notice in customer:
        assert notice.data.facts["support"] == {
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
            "cost": SUPPORT["cost"]["zh-TW"],
        }
    assert all("support" not in n.data.facts for n in partner)


def test_a_language_without_its_own_cost_line_gets_the_english_one() -> None:
    terms = {**SUPPORT, "cost": {"en": "Included."}, "contact": {"email": "b@p.example"}}
    policy = make_policy(support=terms)
    s = Story()
    r = run(s.upsert(subs=["sub-A"], locale="zh-TW"), s.issue("INV-1", "100.00", DUE,
            subs=["sub-A"]), s.days("2026-10-25", "2026-11-05"), policy=policy)  # fmt: skip
    (notice,) = r.notices("overdue")
    assert notice.data.facts["support"]["cost"] == "Included."
    assert notice.data.facts["support"]["contact"] == {
        "email": "b@p.example", "phone": None, "web": None,
    }  # fmt: skip


def test_without_a_support_section_notices_have_no_support_fact() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-30"))
    assert r.notices()
    assert all("support" not in n.data.facts for n in r.notices())


# ---- word for word ---------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "support.json"
UPDATE = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"


def told() -> str:
    """A zh-TW customer on policies/support.yaml claims a payment on 11-20 with a payment in
    flight until 11-22: the whys, the notices of the suspension and the state before it."""
    policy = load_policy(ROOT / "policies" / "support.yaml")
    s = Story()
    r = run(s.upsert(subs=["sub-A"], locale="zh-TW"), s.issue("INV-1", "100.00", DUE,
            subs=["sub-A"]), s.days("2026-10-25", "2026-11-20"),
            s.pending("PAY-1", "100.00", "2026-11-22"), s.support("ZD-4711"),
            s.support("ZD-4712", "dispute"), s.days("2026-11-21", "2026-11-23"),
            policy=policy)  # fmt: skip
    waiting = state_data(r.book(), policy).model_dump(mode="json")
    r.feed(s.days("2026-11-24", "2026-11-25"))
    listed = {
        "whys": [e.data.why.model_dump(mode="json") for e in r.entered()],
        "suspended_notices": [n.data.model_dump(mode="json") for n in r.notices("suspended")],
        "state_while_held": waiting,
    }
    return json.dumps(listed, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_the_support_story_matches_the_golden_file() -> None:
    text = told()
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing; run with BILLSTATE_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8")
