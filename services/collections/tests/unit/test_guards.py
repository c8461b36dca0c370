"""The two guards in the engine (issue 11): a business calendar for suspensions, and payments
in flight. The running example is test_rules.py's: INV-1, USD 100.00, due 2026-11-01, billing
sub-A; unpaid, final_notice on 11-15 and the suspend stage due on 11-22, a Sunday.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Story, d, make_policy, run, standard

from billstate_collections.domain.book import CURRENT
from billstate_collections.domain.snapshot import state_data
from billstate_shared.contracts import StageEntered
from billstate_shared.domain.policy import Calendar, Policy

DUE = "2026-11-01"
WEEKEND = ["saturday", "sunday"]


def business_days(**calendar: Any) -> Policy:
    return make_policy(calendar={"suspend_on": "business_days", **calendar})


def unpaid(s: Story) -> list[Any]:
    return [s.upsert(subs=["sub-A"]), s.issue("INV-1", "100.00", DUE, subs=["sub-A"])]


def entered(r: Any, stage: str) -> StageEntered:
    (found,) = [e for e in r.entered() if e.data.stage == stage]
    return found


def suspension_promised(r: Any, kind: str) -> str:
    (notice,) = [n for n in r.notices(kind) if n.data.audience == "customer"]
    return str(notice.data.facts["suspension_on"])


# ---- the business calendar -------------------------------------------------------------------


def test_any_day_is_the_default_and_suspends_on_a_sunday() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-30"))
    assert entered(r, "suspended").data.as_of == d("2026-11-22")
    assert "Postponed" not in entered(r, "suspended").data.why.text


def test_business_days_move_the_suspension_to_monday_and_the_why_says_why() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-30"), policy=business_days())
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d("2026-11-23")
    assert suspended.data.why.text.endswith("Postponed until today: 2026-11-22 is a Sunday.")
    # The notices promised the date the engine kept.
    assert suspension_promised(r, "final_notice") == "2026-11-23"
    assert r.suspends()[0].data.subscription_ids == ["sub-A"]
    # Stages without action: suspend are entered on any day (11-15 is a Sunday too).
    assert entered(r, "final_notice").data.as_of == d("2026-11-15")


def test_a_public_holiday_and_a_partner_holiday_are_skipped_too() -> None:
    # Taiwan: 2026-10-10 is National Day. Due 09-19: suspend stage due 10-10 (a Saturday),
    # then Sunday 10-11, then the partner's own holiday on Monday 10-12.
    s = Story()
    r = run(
        s.upsert(subs=["sub-A"]),
        s.issue("INV-1", "100.00", "2026-09-19", subs=["sub-A"]),
        s.days("2026-09-15", "2026-10-20"),
        policy=business_days(holidays="TW", extra_holidays=["2026-10-12"]),
    )
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d("2026-10-13")
    why = suspended.data.why.text
    assert "2026-10-10 is a Saturday" in why
    assert "2026-10-11 is a Sunday" in why
    assert "2026-10-12 is a partner holiday" in why
    assert suspension_promised(r, "final_notice") == "2026-10-13"


def test_a_public_holiday_on_a_weekday_is_named() -> None:
    calendar = Calendar(suspend_on="business_days", holidays="TW")
    assert calendar.closed(date(2026, 2, 17)) == (
        "2026-02-17 is a public holiday in TW (Chinese New Year)"
    )
    assert calendar.closed(date(2026, 2, 24)) is None
    assert calendar.next_open(date(2026, 2, 14)) == date(2026, 2, 23)


def test_a_suspension_widened_while_suspended_waits_for_a_business_date_too() -> None:
    # Suspended on Monday 11-23 for INV-1; INV-2 (sub-B) falls overdue on Saturday 11-28:
    # sub-B is suspended on Monday 11-30, not on the weekend.
    s = Story()
    r = run(
        s.upsert(subs=["sub-A", "sub-B"]),
        s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
        s.issue("INV-2", "100.00", "2026-11-27", subs=["sub-B"]),
        s.days("2026-10-25", "2026-11-29"),
        policy=business_days(),
    )
    assert [c.data.subscription_ids for c in r.suspends()] == [["sub-A"]]
    r.feed(s.days("2026-11-30", "2026-11-30"))
    assert [c.data.subscription_ids for c in r.suspends()] == [["sub-A"], ["sub-B"]]


def test_the_state_says_what_the_suspension_waits_for() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-25", "2026-11-22"), policy=business_days())
    data = state_data(r.book(), business_days())
    assert data.stage == "final_notice"
    assert data.waiting == "2026-11-22 is a Sunday"
    assert data.next is not None
    assert (data.next.stage, data.next.earliest_on) == ("suspended", d("2026-11-23"))


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ({"holidays": "XX"}, "no public holidays known for 'XX'"),
        ({"holidays": "US-ZZ"}, "'ZZ' is not a subdivision of US"),
        ({"weekend": ["saturday", "saturday"]}, "'saturday' is listed twice"),
        (
            {
                "weekend": [
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                ]
            },
            "every day of the week is a weekend day",
        ),
        ({"suspend_on": "weekdays"}, "any_day"),
    ],
)
def test_a_broken_calendar_is_refused(calendar: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        business_days(**calendar)


# ---- payments in flight -----------------------------------------------------------------------


def test_a_covering_payment_in_flight_holds_the_suspension_until_it_arrives() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "100.00", "2026-11-25"),
        s.days("2026-11-21", "2026-11-24"),
    )
    assert r.suspends() == []
    data = state_data(r.book(), standard())
    assert data.waiting == "payment PAY-1 of USD 100.00 expected by 2026-11-25"
    assert [p.payment_id for p in data.pending_payments] == ["PAY-1"]
    # Other stages and notices go on: final_notice was entered on 11-15 as always.
    assert entered(r, "final_notice").data.as_of == d("2026-11-15")
    r.feed(s.pay("PAY-1", "100.00"), s.days("2026-11-25", "2026-12-10"))
    assert r.suspends() == []
    assert r.book().stage == CURRENT
    assert r.book().pending == {}


def test_the_wait_ends_after_expected_by_and_the_climb_resumes_that_day() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "100.00", "2026-11-25"),
        s.days("2026-11-21", "2026-11-30"),
    )
    suspended = entered(r, "suspended")
    assert suspended.data.as_of == d("2026-11-26")  # in force through the 25th
    assert (
        "Postponed until today: payment PAY-1 of USD 100.00 expected by 2026-11-25."
        in suspended.data.why.text
    )


def test_a_failed_payment_in_flight_resumes_the_climb_on_that_event() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "100.00", "2026-11-28"),
        s.days("2026-11-21", "2026-11-23"),
    )
    assert r.suspends() == []
    outputs = r.feed(s.fail("INV-1", payment_id="PAY-1", will_retry=False))
    kinds = [o.event_type for o in outputs]
    assert kinds[:2] == ["collections.stage_entered", "access.suspend"]
    assert entered(r, "suspended").data.as_of == d("2026-11-23")
    # The failure notice, built after the climb, promises no later suspension.
    (failed,) = r.notices("payment_failed")
    assert failed.data.facts["stage"] == "suspended"


def test_a_partial_payment_ends_the_wait_and_the_climb_resumes_at_once() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "100.00", "2026-11-28"),
        s.days("2026-11-21", "2026-11-23"),
    )
    outputs = r.feed(s.pay("PAY-1", "40.00"))
    assert [o.event_type for o in outputs][:2] == ["collections.stage_entered", "access.suspend"]


def test_a_payment_in_flight_too_small_to_cover_holds_nothing_back() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "90.00", "2026-11-28"),  # leaves 10.00, above the minimum 5.00
        s.days("2026-11-21", "2026-11-23"),
    )
    assert entered(r, "suspended").data.as_of == d("2026-11-22")
    # Another currency's payment in flight never covers USD.
    s2 = Story(customer="c2")
    r2 = run(
        unpaid(s2),
        s2.days("2026-10-25", "2026-11-20"),
        s2.pending("PAY-2", "500.00", "2026-11-28", currency="EUR"),
        s2.days("2026-11-21", "2026-11-23"),
    )
    assert entered(r2, "suspended").data.as_of == d("2026-11-22")


def test_a_far_future_expected_by_is_held_to_the_policys_maximum() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        s.pending("PAY-1", "100.00", "2199-12-31"),  # max_days 14 by default: until 12-04
        s.days("2026-11-21", "2026-12-10"),
    )
    assert entered(r, "suspended").data.as_of == d("2026-12-05")


def test_replayed_and_late_payments_in_flight_change_nothing() -> None:
    s = Story()
    pending = s.pending("PAY-1", "100.00", "2026-11-28")
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-20"),
        pending,
        s.days("2026-11-21", "2026-11-22"),
        s.fail("INV-1", payment_id="PAY-1"),
        pending,  # redelivered after its failure: the wait does not start again
        s.pending("PAY-2", "100.00", "2026-11-20"),  # expected before today: not in force
        s.days("2026-11-23", "2026-11-24"),
    )
    assert entered(r, "suspended").data.as_of == d("2026-11-22")
    assert r.book().pending == {}
    # A payment in flight announced after the payment itself arrived is no wait either.
    s2 = Story(customer="c2")
    r2 = run(
        unpaid(s2),
        s2.pay("PAY-9", "10.00"),
        s2.days("2026-10-25", "2026-11-20"),
        s2.pending("PAY-9", "100.00", "2026-11-28"),
        s2.days("2026-11-21", "2026-11-23"),
    )
    assert entered(r2, "suspended").data.as_of == d("2026-11-22")


def test_plan_and_notices_promise_the_date_after_the_wait() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.days("2026-10-25", "2026-11-10"),
        s.pending("PAY-1", "100.00", "2026-11-24"),
        s.days("2026-11-11", "2026-12-01"),
    )
    assert suspension_promised(r, "final_notice") == "2026-11-25"
    assert entered(r, "suspended").data.as_of == d("2026-11-25")
