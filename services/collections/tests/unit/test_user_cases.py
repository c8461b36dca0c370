"""What users of dunning systems keep asking for, as stories against policies/standard.yaml.

Unless a test says otherwise: one tick a day at 09:00 Taipei; invoice INV-1, USD 100.00, due
2026-11-01, billing sub-A, which unpaid climbs overdue 11-02, final_notice 11-15 and
suspended 11-22 (day 21, and 7 days after the final notice).
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Run, Story, d, make_policy, run, standard

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import CURRENT
from billstate_shared.contracts import InvoiceAged, NoticeRequested

DUE = "2026-11-01"


def unpaid(s: Story, *subs: str) -> list[Any]:
    return [
        s.upsert(subs=["sub-A", "sub-B", *subs]),
        s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
    ]


def facts_list(notice: NoticeRequested, key: str) -> list[dict[str, Any]]:
    value = notice.data.facts[key]
    assert isinstance(value, list)
    return [item for item in value if isinstance(item, dict)]


def stage_notices(r: Run) -> list[tuple[str, str, str]]:
    """(as_of, kind, audience) of every notice but reminders."""
    return [
        (str(n.data.facts["as_of"]), n.data.kind, n.data.audience)
        for n in r.notices()
        if n.data.kind != "reminder"
    ]


# ---- partial payments ---------------------------------------------------------------------------


def test_a_partial_payment_that_moves_the_anchor_does_not_skip_a_stage() -> None:
    """ "Partial" as users mean it: part of what is owed, here the whole oldest invoice and
    half of the next, untargeted (oldest first). The anchor moves to INV-2 (due 11-10), whose
    age puts the target back to `overdue`: the customer drops there at once and climbs again
    one stage at a time, each with its notices, the final notice included."""
    s = Story()
    r = run(
        unpaid(s),
        s.issue("INV-2", "100.00", "2026-11-10", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-16"),
        s.pay("P1", "150.00"),
        s.days("2026-11-17", "2026-12-05"),
    )
    assert r.stages() == [
        (d("2026-11-02"), "overdue"),
        (d("2026-11-15"), "final_notice"),
        (d("2026-11-16"), "overdue"),  # the drop: anchor INV-2, 6 days past due
        (d("2026-11-24"), "final_notice"),  # INV-2 + 14: the final notice is sent again
        (d("2026-12-01"), "suspended"),  # INV-2 + 21, and 7 days after that final notice
    ]
    assert [e.data.why.anchor_invoice_id for e in r.entered()] == [
        "INV-1",
        "INV-1",
        "INV-2",
        "INV-2",
        "INV-2",
    ]
    assert stage_notices(r) == [
        ("2026-11-02", "overdue", "customer"),
        ("2026-11-15", "final_notice", "customer"),
        ("2026-11-15", "final_notice", "partner"),
        ("2026-11-24", "final_notice", "customer"),
        ("2026-11-24", "final_notice", "partner"),
        ("2026-12-01", "suspended", "customer"),
        ("2026-12-01", "suspended", "partner"),
    ]
    # Only what is still overdue is suspended: INV-1 is paid, so sub-A stays on.
    assert [c.data.subscription_ids for c in r.suspends()] == [["sub-B"]]


def test_a_partial_payment_that_keeps_the_stage_delays_the_next_one() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.issue("INV-2", "100.00", "2026-11-03", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-10"),
        s.pay("P1", "100.00", invoice_id="INV-1"),
        s.days("2026-11-11", "2026-11-30"),
    )
    assert r.stages() == [
        (d("2026-11-02"), "overdue"),
        (d("2026-11-17"), "final_notice"),  # INV-2 + 14, not INV-1 + 14
        (d("2026-11-24"), "suspended"),
    ]
    finals = r.notices("final_notice")
    assert {n.data.facts["suspension_on"] for n in finals} == {"2026-11-24"}


# ---- a payment in flight ------------------------------------------------------------------------


def test_a_payment_between_two_ticks_takes_effect_at_once() -> None:
    """The day's aged events have gone out; a payment arrives before the next tick. The
    state is right immediately (not at the next tick), the restore goes out with it, and the
    next tick changes nothing."""
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-22"))
    assert r.book().suspended == ("sub-A",)

    out = r.feed(s.pay("P1", "100.00"))

    assert [e.event_type for e in out] == [
        "collections.stage_entered",
        "access.restore",
        "notice.requested",
    ]
    book = r.book()
    assert (book.stage, book.suspended, book.entered_on) == (CURRENT, (), date(2026, 11, 22))
    assert not assess(book, date(2026, 11, 22), standard()).delinquent
    assert [c.data.subscription_ids for c in r.restores()] == [["sub-A"]]
    assert r.feed(s.days("2026-11-23", "2026-11-30")) == []


def test_a_payment_after_the_last_tick_before_suspension_prevents_it() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-21"), s.pay("P1", "100.00"))
    r.feed(s.days("2026-11-22", "2026-11-30"))
    assert r.suspends() == []
    assert r.stages()[-1] == (d("2026-11-21"), "current")


# ---- time zones ---------------------------------------------------------------------------------


def test_asia_taipei_a_due_date_ends_at_local_midnight() -> None:
    s = Story()
    r = run(
        s.issue("INV-1", "100.00", "2026-10-31", subs=["sub-A"]),
        s.tick("2026-10-31T15:59:00Z"),  # 23:59 on 10-31 in Taipei
    )
    (aged,) = r.of("invoice.aged")
    assert isinstance(aged, InvoiceAged)
    assert (aged.data.as_of, aged.data.days_past_due) == (date(2026, 10, 31), 0)
    assert r.stages() == []

    r.feed(s.tick("2026-10-31T16:00:00Z"))  # 00:00 on 11-01 in Taipei

    aged = r.of("invoice.aged")[-1]
    assert isinstance(aged, InvoiceAged)
    assert (aged.data.as_of, aged.data.days_past_due) == (date(2026, 11, 1), 1)
    assert r.stages() == [(date(2026, 11, 1), "overdue")]


# ---- scope --------------------------------------------------------------------------------------


def test_an_annual_subscription_paid_in_full_is_never_suspended_for_another_invoice() -> None:
    s = Story()
    r = run(
        s.upsert(subs=["annual", "monthly"]),
        s.issue("ANNUAL-2026", "1200.00", "2026-10-01", subs=["annual"]),
        s.pay("P-ANNUAL", "1200.00", invoice_id="ANNUAL-2026"),
        s.issue("OCT", "100.00", "2026-10-15", subs=["monthly"]),
        s.issue("NOV", "100.00", DUE, subs=["monthly"]),
        s.issue("DEC", "100.00", "2026-12-01", subs=["monthly"]),
        s.days("2026-10-10", "2026-12-31"),
    )
    assert r.stages()[-1] == (d("2026-11-05"), "suspended")  # OCT + 21
    suspended = {sub for c in r.suspends() for sub in c.data.subscription_ids}
    assert suspended == {"monthly"}
    assert r.book().suspended == ("monthly",)


def test_two_currencies_only_the_overdue_one_counts() -> None:
    s = Story()
    r = run(
        s.upsert(subs=["usd-sub", "eur-sub"]),
        s.issue("USD-1", "100.00", DUE, subs=["usd-sub"]),
        s.issue("EUR-1", "80.00", DUE, currency="EUR", subs=["eur-sub"]),
        s.tick("2026-10-30"),
        s.pay("P-USD", "100.00", currency="USD"),
        s.pay("P-EUR", "20.00", currency="EUR"),  # EUR 60.00 stays open
        s.days("2026-10-31", "2026-11-30"),
    )
    assert [stage for _, stage in r.stages()] == ["overdue", "final_notice", "suspended"]
    for entered in r.entered():
        assert [(m.currency, m.amount) for m in entered.data.overdue] == [("EUR", Decimal("60.00"))]
        assert entered.data.why.anchor_invoice_id == "EUR-1"
    assert [c.data.subscription_ids for c in r.suspends()] == [["eur-sub"]]
    for notice in r.notices("final_notice"):
        listed = [(i["invoice_id"], i["currency"]) for i in facts_list(notice, "invoices")]
        assert listed == [("EUR-1", "EUR")]


# ---- chargebacks --------------------------------------------------------------------------------


def test_a_chargeback_after_a_restore_climbs_again_without_skipping() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-22"), s.pay("P1", "100.00"))
    r.feed(s.days("2026-11-23", "2026-11-25"))
    assert r.stages()[-1] == (d("2026-11-22"), "current")
    assert r.restores()[-1].data.subscription_ids == ["sub-A"]

    # Between ticks the chargeback reopens the debt; moving up waits for time to pass.
    assert r.feed(s.reverse("P1")) == []
    assert r.book().stage == CURRENT

    r.feed(s.days("2026-11-26", "2026-12-10"))
    assert r.stages()[4:] == [
        (d("2026-11-26"), "overdue"),  # day 25: one stage at a time, each with its notices
        (d("2026-11-26"), "final_notice"),
        (d("2026-12-03"), "suspended"),  # only once 7 days in final_notice have passed
    ]
    assert stage_notices(r)[-5:] == [
        ("2026-11-26", "overdue", "customer"),
        ("2026-11-26", "final_notice", "customer"),
        ("2026-11-26", "final_notice", "partner"),
        ("2026-12-03", "suspended", "customer"),
        ("2026-12-03", "suspended", "partner"),
    ]
    assert {
        n.data.facts["suspension_on"] for n in r.notices() if n.data.facts["as_of"] == "2026-11-26"
    } == {"2026-12-03"}
    assert [c.data.subscription_ids for c in r.suspends()] == [["sub-A"], ["sub-A"]]


# ---- holds --------------------------------------------------------------------------------------


def test_a_promise_to_pay_pauses_through_until_then_one_promise_broken_and_resume() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-12"), s.promise("PTP-1", "2026-11-20"))
    r.feed(s.days("2026-11-13", "2026-12-10"))

    assert r.stages() == [
        (d("2026-11-02"), "overdue"),
        (d("2026-11-21"), "final_notice"),  # 11-15 would have been the day; 11-20 is promised
        (d("2026-11-28"), "suspended"),
    ]
    (broken,) = r.notices("promise_broken")
    assert broken.data.facts["as_of"] == "2026-11-21"
    assert broken.data.facts["suspension_on"] == "2026-11-28"
    assert r.book().holds == {}


def test_a_promise_kept_sends_no_promise_broken() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-12"), s.promise("PTP-1", "2026-11-20"))
    r.feed(s.days("2026-11-13", "2026-11-19"), s.pay("P1", "100.00"))
    r.feed(s.days("2026-11-20", "2026-12-10"))
    assert r.notices("promise_broken") == []
    assert [stage for _, stage in r.stages()] == ["overdue", "current"]


def test_a_dispute_of_part_of_an_invoice_leaves_the_rest_counting() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-16"))
    assert r.stages()[-1] == (d("2026-11-15"), "final_notice")

    assert r.feed(s.dispute("D-1", "INV-1", "30.00")) == []  # 70.00 still counts: no drop
    r.feed(s.days("2026-11-17", "2026-11-22"))
    (entered,) = [e for e in r.entered() if e.data.stage == "suspended"]
    assert [(m.currency, m.amount) for m in entered.data.overdue] == [("USD", Decimal("70.00"))]

    # A second dispute leaves 4.00, below the USD minimum: down to current at once.
    out = r.feed(s.dispute("D-2", "INV-1", "66.00"))
    assert [e.event_type for e in out] == [
        "collections.stage_entered",
        "access.restore",
        "notice.requested",
    ]
    assert r.stages()[-1] == (d("2026-11-22"), "current")


def test_an_exempt_tag_stops_collections_at_once() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-16"))
    out = r.feed(s.upsert(tags=["strategic"], subs=["sub-A"]))
    assert [e.event_type for e in out] == ["collections.stage_entered"]
    assert r.stages()[-1] == (d("2026-11-16"), "current")
    r.feed(s.days("2026-11-17", "2026-11-30"))
    assert r.stages()[-1] == (d("2026-11-16"), "current")

    r.feed(s.upsert(tags=[], subs=["sub-A"]), s.days("2026-12-01", "2026-12-10"))
    assert r.stages()[-3:] == [
        (d("2026-12-01"), "overdue"),
        (d("2026-12-01"), "final_notice"),
        (d("2026-12-08"), "suspended"),
    ]


def test_a_manual_hold_drops_at_once_and_restores() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-23"))
    out = r.feed(s.hold("M-1", "manual"))

    assert [e.event_type for e in out] == [
        "collections.stage_entered",
        "access.restore",
        "notice.requested",
    ]
    notice = r.notices("restored")[-1]
    assert notice.data.facts["still_delinquent"] is True
    assert notice.data.facts["suspension_on"] is None  # held: no date can be promised
    r.feed(s.days("2026-11-24", "2026-11-30"))
    assert r.stages()[-1] == (d("2026-11-23"), "current")

    r.feed(s.release("M-1"), s.days("2026-12-01", "2026-12-08"))
    assert r.stages()[-3:] == [
        (d("2026-12-01"), "overdue"),
        (d("2026-12-01"), "final_notice"),
        (d("2026-12-08"), "suspended"),
    ]


# ---- downtime -----------------------------------------------------------------------------------


def test_after_downtime_the_gate_holds_and_no_stage_is_skipped() -> None:
    s = Story()
    r = run(unpaid(s), s.days("2026-10-30", "2026-11-03"), s.days("2026-12-01", "2026-12-10"))
    assert r.stages() == [
        (d("2026-11-02"), "overdue"),
        (d("2026-12-01"), "final_notice"),  # day 30: the target is suspended, one step first
        (d("2026-12-08"), "suspended"),  # 7 days in final_notice
    ]
    assert [(kind, audience) for _, kind, audience in stage_notices(r)] == [
        ("overdue", "customer"),
        ("final_notice", "customer"),
        ("final_notice", "partner"),
        ("suspended", "customer"),
        ("suspended", "partner"),
    ]


def test_after_downtime_several_stages_in_one_day_when_the_gates_allow() -> None:
    stages = [dict(stage) for stage in standard().model_dump(by_alias=True)["stages"]]
    stages[2]["min_days_in_previous"] = 0
    s = Story()
    r = run(
        unpaid(s), s.tick("2026-10-30"), s.tick("2026-12-01"), policy=make_policy(stages=stages)
    )
    assert r.stages() == [
        (d("2026-12-01"), "overdue"),
        (d("2026-12-01"), "final_notice"),
        (d("2026-12-01"), "suspended"),
    ]
    decided = [e for e in r.outputs if e.event_type != "invoice.aged"]
    assert [
        e.data.kind if isinstance(e, NoticeRequested) else e.event_type
        for e in decided
        if not (isinstance(e, NoticeRequested) and e.data.kind == "reminder")
    ] == [
        "collections.stage_entered",
        "overdue",
        "collections.stage_entered",
        "final_notice",
        "final_notice",
        "collections.stage_entered",
        "access.suspend",
        "suspended",
        "suspended",
    ]


# ---- reminders and the promised date ------------------------------------------------------------


def test_reminders_7_and_1_days_before_due_none_for_a_paid_invoice() -> None:
    s = Story()
    r = run(
        unpaid(s),
        s.issue("INV-PAID", "100.00", DUE, subs=["sub-B"]),
        s.tick("2026-10-20"),
        s.pay("P1", "100.00", invoice_id="INV-PAID"),
        s.days("2026-10-21", "2026-11-01"),
    )
    reminded = list(r.notices("reminder"))
    assert [(n.data.facts["invoice"], n.data.facts["as_of"]) for n in reminded] == [
        ({"invoice_id": "INV-1", "due_on": DUE, "open": "100.00", "currency": "USD"}, "2026-10-25"),
        ({"invoice_id": "INV-1", "due_on": DUE, "open": "100.00", "currency": "USD"}, "2026-10-31"),
    ]


def test_suspension_on_in_every_notice_is_the_day_of_suspension_if_nothing_is_paid() -> None:
    """A small old invoice (below the minimum alone) and a later large one: the customer is
    delinquent from the day after the large one falls due, aged from the small one."""
    s = Story()
    r = run(
        s.upsert(subs=["sub-A", "sub-B"]),
        s.issue("SMALL", "3.00", "2026-10-25", subs=["sub-A"]),
        s.issue("LARGE", "100.00", "2026-11-05", subs=["sub-B"]),
        s.days("2026-10-10", "2026-11-30"),
    )
    assert r.stages() == [
        (d("2026-11-06"), "overdue"),  # day 12 of SMALL
        (d("2026-11-08"), "final_notice"),  # day 14
        (d("2026-11-15"), "suspended"),  # day 21, and 7 days after the final notice
    ]
    before = [n for n in r.notices() if n.data.kind != "suspended"]
    assert [n.data.kind for n in before] == [
        "reminder",
        "reminder",
        "reminder",
        "reminder",
        "overdue",
        "final_notice",
        "final_notice",
    ]
    assert {n.data.facts["suspension_on"] for n in before} == {"2026-11-15"}
