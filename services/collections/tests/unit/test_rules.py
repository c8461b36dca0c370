"""POLICY.md's twelve rules, one by one, against policies/standard.yaml (unless a test says
otherwise): overdue from day 1, final_notice from day 14 (customer and partner), suspended from
day 21 and at least 7 days after the final notice, reminders 7 and 1 days before due, USD and
EUR minimum 5.00, time zone Asia/Taipei, exempt tag `strategic`, promises of at most 30 days.

The running example: invoice INV-1, USD 100.00, due 2026-11-01, billing sub-A; one tick a day
at 09:00 Taipei. Unpaid, it climbs overdue 11-02, final_notice 11-15, suspended 11-22.
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Story, d, make_policy, run, standard

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import CURRENT
from billstate_collections.domain.snapshot import state_data
from billstate_shared.contracts import AccessRestore, NoticeRequested, StageEntered

DUE = "2026-11-01"
UNPAID = [
    (d("2026-11-02"), "overdue"),
    (d("2026-11-15"), "final_notice"),
    (d("2026-11-22"), "suspended"),
]


def unpaid_story(s: Story) -> list[Any]:
    return [s.upsert(subs=["sub-A", "sub-B"]), s.issue("INV-1", "100.00", DUE, subs=["sub-A"])]


# ---- rule 1: ledger ---------------------------------------------------------------------------


def test_rule_01_ledger_targeted_then_oldest_due_then_credit_for_the_next_invoice() -> None:
    s = Story()
    r = run(
        s.issue("A", "100.00", "2026-10-01"),
        s.issue("B", "100.00", "2026-10-15"),
        s.tick("2026-09-20"),
        s.pay("P1", "250.00", invoice_id="B"),  # B, then A (oldest due), then 50 of credit
        s.pay("P1", "250.00", invoice_id="B"),  # a duplicate: ignored
        s.issue("C", "30.00", "2026-11-01"),  # paid by the credit the moment it is issued
        s.issue("EUR-1", "10.00", "2026-11-01", currency="EUR"),  # USD credit never pays EUR
        s.days("2026-09-21", "2026-11-01"),
    )
    ledger = r.book().ledger
    assert {i.invoice_id: i.open for i in ledger.invoices.values()} == {
        "A": 0,
        "B": 0,
        "C": 0,
        "EUR-1": Decimal("10.00"),
    }
    assert ledger.credit("USD") == Decimal("20.00")
    # Nothing USD was ever overdue; the EUR invoice is not due yet on 11-01.
    assert r.stages() == []
    assert {n.data.facts["invoice"]["invoice_id"] for n in r.notices("reminder")} == {"EUR-1"}


def test_rule_01_ledger_reversal_undoes_exactly_what_the_payment_paid() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "40.00", "2026-11-05", subs=["sub-B"]),
        s.days("2026-10-20", "2026-11-20"),
        s.pay("P1", "120.00"),  # INV-1 in full, 20 of INV-2
    )
    # INV-2 (due 11-05) is still 20.00 open and 15 days past due: no drop from final_notice.
    assert r.stages()[-1] == (d("2026-11-15"), "final_notice")
    opens = {i.invoice_id: i.open for i in r.book().ledger.invoices.values()}
    assert opens == {"INV-1": 0, "INV-2": Decimal("20.00")}

    r.feed(s.reverse("P1"))

    opens = {i.invoice_id: i.open for i in r.book().ledger.invoices.values()}
    assert opens == {"INV-1": Decimal("100.00"), "INV-2": Decimal("40.00")}


# ---- rule 2: overdue ----------------------------------------------------------------------------


def test_rule_02_overdue_due_date_ends_at_midnight_local() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "100.00", "2026-10-31", subs=["sub-B"]),
        s.tick("2026-10-31T15:59:00Z"),  # 23:59 in Taipei, still 10-31
    )
    assert r.stages() == []
    assert r.book().as_of == date(2026, 10, 31)

    r.feed(s.tick("2026-10-31T16:00:00Z"))  # 00:00 in Taipei, 11-01

    assert r.stages() == [(date(2026, 11, 1), "overdue")]
    (entered,) = r.entered()
    assert entered.data.days_past_due == 1
    assert entered.data.why.anchor_invoice_id == "INV-2"


def test_rule_02_disputed_amounts_do_not_count() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.tick("2026-10-30"),
        s.dispute("D-1", "INV-1"),  # the whole invoice
        s.days("2026-10-31", "2026-11-10"),
    )
    assert r.stages() == []
    assessment = assess(r.book(), r.book().as_of or date.min, standard())
    assert assessment.overdue == ()

    r.feed(s.release("D-1"))
    assert r.stages() == []  # releasing is no move up: that waits for the next tick
    r.feed(s.tick("2026-11-11"))
    assert r.stages() == [(date(2026, 11, 11), "overdue")]


# ---- rule 3: delinquent -------------------------------------------------------------------------


def test_rule_03_delinquent_from_the_minimum_of_one_currency() -> None:
    s = Story()
    r = run(
        s.issue("USD-1", "4.99", DUE),
        s.issue("EUR-1", "4.99", DUE, currency="EUR"),
        s.days("2026-10-30", "2026-11-20"),
    )
    # 4.99 + 4.99 is not 5.00: currencies are never added up.
    assert r.stages() == []

    r.feed(s.adjust("EUR-1", "0.01"), s.tick("2026-11-21"))  # EUR reaches its minimum

    assert r.stages() == [(date(2026, 11, 21), "overdue"), (date(2026, 11, 21), "final_notice")]
    assert [(m.currency, m.amount) for m in r.entered()[0].data.overdue] == [
        ("EUR", Decimal("5.00")),
        ("USD", Decimal("4.99")),
    ]


def test_rule_03_a_currency_not_listed_uses_the_default_minimum() -> None:
    s = Story()
    r = run(s.issue("JPY-1", "1", DUE, currency="JPY"), s.days("2026-10-30", "2026-11-02"))
    assert r.stages() == [(date(2026, 11, 2), "overdue")]


# ---- rule 4: anchor and age ---------------------------------------------------------------------


def test_rule_04_anchor_is_the_earliest_overdue_due_date_and_moves_when_it_is_paid() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "100.00", "2026-11-10", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-15"),
    )
    assert r.stages()[-1] == (date(2026, 11, 15), "final_notice")
    assert r.entered()[-1].data.why.anchor_invoice_id == "INV-1"
    assert r.entered()[-1].data.days_past_due == 14

    r.feed(s.pay("P1", "100.00", invoice_id="INV-1"))

    drop = r.entered()[-1]
    assert (drop.data.stage, drop.data.previous) == ("overdue", "final_notice")
    assert drop.data.why.anchor_invoice_id == "INV-2"
    assert drop.data.why.anchor_due_on == date(2026, 11, 10)
    assert drop.data.days_past_due == 5
    r.feed(s.days("2026-11-16", "2026-11-24"))
    assert r.stages()[-1] == (date(2026, 11, 24), "final_notice")  # INV-2 + 14


def test_rule_04_only_delinquent_currencies_give_the_anchor() -> None:
    s = Story()
    r = run(
        s.issue("EUR-OLD", "3.00", "2026-10-01", currency="EUR"),  # below the EUR minimum
        s.issue("USD-1", "100.00", DUE),
        s.days("2026-10-30", "2026-11-02"),
    )
    (entered,) = r.entered()
    assert entered.data.why.anchor_invoice_id == "USD-1"
    assert entered.data.days_past_due == 1


# ---- rule 5: target -----------------------------------------------------------------------------


def test_rule_05_target_is_the_last_stage_reached_none_when_exempt_or_on_manual_hold() -> None:
    exempt, held, plain = Story("exempt"), Story("held"), Story("plain")
    r = run(
        exempt.upsert(tags=["strategic", "enterprise"], subs=["sub-A"]),
        exempt.issue("E-1", "100.00", DUE),
        held.issue("H-1", "100.00", DUE),
        held.hold("M-1", "manual"),
        plain.issue("P-1", "100.00", DUE),
        plain.days("2026-10-30", "2026-11-30"),
    )
    assert r.stages("exempt") == []
    assert r.stages("held") == []
    assert r.stages("plain") == UNPAID
    policy = standard()
    for customer, target in (("exempt", CURRENT), ("held", CURRENT), ("plain", 2)):
        book = r.book(customer)
        assert assess(book, book.as_of or date.min, policy).target == target


def test_rule_05_a_redelivered_old_profile_does_not_undo_an_exemption() -> None:
    """Bug found: customer.upserted had no dedupe, so an older upsert sent again (a producer
    retry, a redelivery) replaced the newer profile, dropped the exemption and restarted the
    climb. A second event with the same id must change nothing."""
    s = Story()
    plain = s.upsert(subs=["sub-A"])
    r = run(plain, s.issue("INV-1", "100.00", DUE), s.days("2026-10-30", "2026-11-05"))
    r.feed(s.upsert(tags=["strategic"], subs=["sub-A"]))
    assert r.stages()[-1] == (date(2026, 11, 5), "current")

    assert r.feed(plain) == []
    r.feed(s.days("2026-11-06", "2026-11-30"))
    assert r.stages()[-1] == (date(2026, 11, 5), "current")


# ---- rule 6: forward, only on time ---------------------------------------------------------------


def test_rule_06_forward_only_on_time_one_stage_at_a_time_with_the_gate() -> None:
    s = Story()
    r = run(
        s.upsert(subs=["sub-A"]),
        s.issue("INV-0", "100.00", "2026-12-31"),  # keeps the customer aged every day
        s.days("2026-12-01", "2026-12-02"),
    )
    # A late invoice, 30 days past due, arrives between ticks: nothing moves until time does.
    late = r.feed(s.issue("LATE", "100.00", "2026-11-02", subs=["sub-A"]))
    assert late == []
    r.feed(s.tick("2026-12-03"))
    # Day 31: the target is `suspended`, but stages are entered one at a time, each with its
    # notices, and the suspend stage waits 7 days in final_notice.
    assert r.stages() == [(date(2026, 12, 3), "overdue"), (date(2026, 12, 3), "final_notice")]
    assert [(n.data.kind, n.data.audience) for n in r.notices() if n.data.kind != "reminder"] == [
        ("overdue", "customer"),
        ("final_notice", "customer"),
        ("final_notice", "partner"),
    ]
    r.feed(s.days("2026-12-04", "2026-12-10"))
    assert r.stages()[-1] == (date(2026, 12, 10), "suspended")
    assert len(r.stages()) == 3


def test_rule_06_a_promise_stops_forward_moves_through_until_then_breaks_once() -> None:
    s = Story()
    r = run(unpaid_story(s), s.days("2026-10-30", "2026-11-10"))
    r.feed(s.promise("PTP-1", "2026-11-15"))
    r.feed(s.days("2026-11-11", "2026-11-30"))

    assert r.stages() == [
        (date(2026, 11, 2), "overdue"),
        (date(2026, 11, 16), "final_notice"),  # not on 11-15, the promised date itself
        (date(2026, 11, 23), "suspended"),  # 7 days after the final notice
    ]
    (broken,) = r.notices("promise_broken")
    assert broken.data.facts["as_of"] == "2026-11-16"
    assert broken.data.facts["promised_until"] == "2026-11-15"
    assert broken.data.facts["suspension_on"] == "2026-11-23"


def test_rule_06_a_promise_is_held_to_max_days() -> None:
    s = Story()
    r = run(unpaid_story(s), s.days("2026-10-30", "2026-11-03"))
    r.feed(s.promise("PTP-1", "2027-06-30"))  # placed on 11-03: at most until 12-03
    r.feed(s.days("2026-11-04", "2026-12-15"))

    assert r.book().as_of == date(2026, 12, 15)
    assert r.stages()[1:] == [
        (date(2026, 12, 4), "final_notice"),
        (date(2026, 12, 11), "suspended"),
    ]
    (broken,) = r.notices("promise_broken")
    assert broken.data.facts["promised_until"] == "2026-12-03"


# ---- rule 7: backward, at once -------------------------------------------------------------------


def test_rule_07_backward_at_once_restores_exactly_what_was_suspended() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "100.00", "2026-11-05", subs=["sub-B", "sub-C"]),
        s.days("2026-10-30", "2026-11-23"),
    )
    assert r.stages()[-1] == (date(2026, 11, 22), "suspended")
    (suspend,) = r.suspends()
    assert suspend.data.subscription_ids == ["sub-A", "sub-B", "sub-C"]

    out = r.feed(s.pay("P1", "200.00"))

    assert [e.event_type for e in out] == [
        "collections.stage_entered",
        "access.restore",
        "notice.requested",
    ]
    drop, restore, notice = out
    assert isinstance(drop, StageEntered)
    assert (drop.data.stage, drop.data.previous, drop.data.as_of) == (
        "current",
        "suspended",
        date(2026, 11, 23),
    )
    assert isinstance(restore, AccessRestore)
    assert isinstance(notice, NoticeRequested)
    assert restore.data.subscription_ids == ["sub-A", "sub-B", "sub-C"]
    assert (notice.data.kind, notice.data.audience) == ("restored", "customer")
    assert notice.data.facts["still_delinquent"] is False
    assert notice.data.facts["suspension_on"] is None
    assert r.book().stage == CURRENT
    assert r.book().suspended == ()


def test_rule_07_the_drop_counts_as_entering_the_stage_for_later_gates() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "100.00", "2026-11-05", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-23"),
    )
    # Paying INV-1 leaves INV-2 18 days past due: down to final_notice, still delinquent.
    out = r.feed(s.pay("P1", "100.00", invoice_id="INV-1"))

    assert r.stages()[-1] == (date(2026, 11, 23), "final_notice")
    (restored,) = [n for n in out if isinstance(n, NoticeRequested)]
    assert restored.data.kind == "restored"
    facts = restored.data.facts
    assert facts["still_delinquent"] is True
    # Day 21 of INV-2 is 11-26, but 7 days in final_notice counts from the drop: 11-30.
    assert facts["suspension_on"] == "2026-11-30"
    r.feed(s.days("2026-11-24", "2026-12-05"))
    assert r.stages()[-1] == (date(2026, 11, 30), "suspended")


def test_rule_07_a_drop_that_stays_in_suspension_restores_what_is_paid_at_once() -> None:
    """Bug found: with a stage after the suspend stage, a drop back to the suspend stage did
    not restore the subscriptions no longer billed by an overdue invoice until the next
    tick; rule 7 is "at once", and rule 8's scope no longer held them."""
    policy = make_policy(
        stages=[
            {"name": "overdue", "days_past_due": 1, "notify": ["customer"]},
            {
                "name": "suspended",
                "days_past_due": 5,
                "action": "suspend",
                "scope": "overdue_subscriptions",
                "notify": ["customer"],
            },
            {"name": "collections_agency", "days_past_due": 10, "notify": ["partner"]},
        ]
    )
    s = Story()
    r = run(
        s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
        s.issue("INV-2", "100.00", "2026-11-03", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-11"),
        policy=policy,
    )
    assert r.stages()[-1] == (date(2026, 11, 11), "collections_agency")
    assert r.book().suspended == ("sub-A", "sub-B")

    out = r.feed(s.pay("P1", "100.00", invoice_id="INV-1"))

    assert [e.event_type for e in out] == ["collections.stage_entered", "access.restore"]
    assert r.stages()[-1] == (date(2026, 11, 11), "suspended")
    assert r.restores()[-1].data.subscription_ids == ["sub-A"]
    assert r.book().suspended == ("sub-B",)


# ---- rule 8: scope -------------------------------------------------------------------------------


def test_rule_08_scope_overdue_subscriptions_spares_a_paid_annual_subscription() -> None:
    s = Story()
    r = run(
        s.upsert(subs=["annual", "monthly"]),
        s.issue("ANNUAL", "1200.00", "2026-10-01", subs=["annual"]),
        s.pay("P-ANNUAL", "1200.00", invoice_id="ANNUAL"),
        s.issue("MONTHLY", "100.00", DUE, subs=["monthly"]),
        s.days("2026-10-30", "2026-11-30"),
    )
    assert r.stages() == UNPAID
    assert [c.data.subscription_ids for c in r.suspends()] == [["monthly"]]


def test_rule_08_scope_all_subscriptions() -> None:
    base = standard().model_dump(by_alias=True)
    stages = [dict(stage) for stage in base["stages"]]
    stages[2]["scope"] = "all_subscriptions"
    policy = make_policy(stages=stages)
    s = Story()
    r = run(
        s.upsert(subs=["annual", "monthly", "unbilled"]),
        s.issue("ANNUAL", "1200.00", "2026-10-01", subs=["annual"]),
        s.pay("P-ANNUAL", "1200.00", invoice_id="ANNUAL"),
        s.issue("MONTHLY", "100.00", DUE, subs=["monthly"]),
        s.days("2026-10-30", "2026-11-30"),
        policy=policy,
    )
    assert [c.data.subscription_ids for c in r.suspends()] == [["annual", "monthly", "unbilled"]]


def test_rule_08_while_suspended_a_promise_does_not_stop_what_is_overdue_being_suspended() -> None:
    """Ambiguity, decided: a promise stops *moves up* (rule 6). Keeping the suspend stage's
    scope to what the overdue invoices bill (rule 8) is no move up, so it goes on under a
    promise. Otherwise the order of a payment and its chargeback on one day decided whether a
    subscription stayed on for the length of the promise (the payment first restores sub-B at
    once; the chargeback then makes it overdue again)."""
    ends = []
    for order in ("payment first", "chargeback first"):
        s = Story()
        r = run(
            s.upsert(subs=["sub-A", "sub-B"]),
            s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
            s.issue("INV-2", "100.00", "2026-11-02", subs=["sub-B"]),
            s.days("2026-10-30", "2026-11-22"),
            s.promise("PTP-1", "2026-11-30"),
        )
        assert r.book().suspended == ("sub-A", "sub-B")
        pay, chargeback = s.pay("P1", "100.00", invoice_id="INV-2"), s.reverse("P1")
        r.feed([pay, chargeback] if order == "payment first" else [chargeback, pay])
        r.feed(s.tick("2026-11-23"))
        ends.append(r.book().suspended)
    assert ends == [("sub-A", "sub-B"), ("sub-A", "sub-B")]


# ---- rule 9: notice facts ------------------------------------------------------------------------


def test_rule_09_every_notice_before_suspension_carries_the_day_it_will_happen() -> None:
    s = Story()
    r = run(unpaid_story(s), s.days("2026-10-20", "2026-11-30"))
    before = [n for n in r.notices() if n.data.kind != "suspended"]
    assert [(n.data.kind, n.data.facts["as_of"]) for n in before] == [
        ("reminder", "2026-10-25"),
        ("reminder", "2026-10-31"),
        ("overdue", "2026-11-02"),
        ("final_notice", "2026-11-15"),
        ("final_notice", "2026-11-15"),
    ]
    assert {n.data.facts["suspension_on"] for n in before} == {"2026-11-22"}
    assert r.stages()[-1] == (date(2026, 11, 22), "suspended")
    # Notices of the suspend stage itself have nothing left to announce.
    assert {n.data.facts["suspension_on"] for n in r.notices("suspended")} == {None}


def test_rule_09_a_notice_between_ticks_counts_from_the_next_business_date() -> None:
    """Bug found: a notice sent between ticks (payment_failed) projected forward moves from
    today, but rule 6 moves up only on the next aged event, which comes with the next
    business date. Here the exemption ends after the 11-20 tick: the climb starts 11-21
    (overdue and final_notice), so suspension is 11-28, not 11-27 as the notice said."""
    s = Story()
    r = run(
        s.upsert(tags=["strategic"], subs=["sub-A"]),
        s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
        s.days("2026-10-30", "2026-11-20"),
        s.upsert(tags=[], subs=["sub-A"]),
        s.fail("INV-1"),
    )
    (failed,) = r.notices("payment_failed")
    assert failed.data.facts["as_of"] == "2026-11-20"
    assert failed.data.facts["suspension_on"] == "2026-11-28"

    r.feed(s.days("2026-11-21", "2026-11-30"))
    assert r.stages() == [
        (date(2026, 11, 21), "overdue"),
        (date(2026, 11, 21), "final_notice"),
        (date(2026, 11, 28), "suspended"),
    ]


def test_rule_09_a_restored_notice_carries_the_next_suspension_also_when_current() -> None:
    """Bug found: the `restored` notice carried `suspension_on` only when the customer was
    still delinquent after the drop. Rule 9 asks it of every notice before the suspend stage:
    here INV-2 is open and falls due 11-25, so if nothing more is paid the customer is
    suspended again on 12-16, and the notice must say so."""
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("INV-2", "100.00", "2026-11-25", subs=["sub-B"]),
        s.days("2026-10-30", "2026-11-23"),
        s.pay("P1", "100.00", invoice_id="INV-1"),
    )
    (restored,) = r.notices("restored")
    assert restored.data.facts["still_delinquent"] is False
    assert restored.data.facts["suspension_on"] == "2026-12-16"

    r.feed(s.days("2026-11-24", "2026-12-20"))
    assert r.stages()[-1] == (date(2026, 12, 16), "suspended")


def test_rule_09_the_published_state_names_the_day_the_next_stage_comes() -> None:
    """Bug found (collections.state `next`): the state after a change between ticks said the
    next stage could come today, while the engine moves up only with the next business
    date. Here the manual hold is released after the 11-20 tick: overdue comes 11-21."""
    s = Story()
    r = run(
        s.issue("INV-1", "100.00", DUE, subs=["sub-A"]),
        s.hold("M-1", "manual"),
        s.days("2026-10-30", "2026-11-20"),
        s.release("M-1"),
    )
    upcoming = state_data(r.book(), standard()).next
    assert upcoming is not None
    assert (upcoming.stage, upcoming.earliest_on) == ("overdue", date(2026, 11, 21))
    r.feed(s.tick("2026-11-21"))
    assert r.stages()[0] == (date(2026, 11, 21), "overdue")
    upcoming = state_data(r.book(), standard()).next
    assert upcoming is not None
    assert (upcoming.stage, upcoming.earliest_on) == ("suspended", date(2026, 11, 28))


# ---- rule 10: reminders --------------------------------------------------------------------------


def test_rule_10_reminders_7_and_1_days_before_due_none_for_a_paid_invoice() -> None:
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("PAID", "50.00", "2026-11-03", subs=["sub-B"]),
        s.tick("2026-10-20"),
        s.pay("P1", "50.00", invoice_id="PAID"),
        s.days("2026-10-21", "2026-11-05"),
    )
    reminders = [
        (
            n.data.facts["invoice"]["invoice_id"],
            n.data.facts["as_of"],
            n.data.facts["days_before_due"],
        )
        for n in r.notices("reminder")
    ]
    assert reminders == [("INV-1", "2026-10-25", 7), ("INV-1", "2026-10-31", 1)]


def test_rule_10_a_reminder_missed_during_downtime_goes_out_once_late() -> None:
    """Ambiguity, decided as the engine had it: rule 10 says one reminder per listed day. When
    no tick came on that day (downtime, or an invoice issued 3 days before it is due), the
    reminder goes out at the first aged event after it, once, and says how many days are
    really left; several missed reminders become one. Never sending it would leave the
    customer without the warning the policy promises."""
    s = Story()
    r = run(
        unpaid_story(s),
        s.issue("SHORT", "50.00", "2026-11-08", issued_on="2026-11-05", subs=["sub-B"]),
        s.days("2026-10-20", "2026-10-22"),
        s.days("2026-10-28", "2026-10-29"),  # no tick on 10-25, 7 days before INV-1 is due
        s.days("2026-11-07", "2026-11-08"),  # none either 7 days before SHORT (issued 11-05)
    )
    facts = [n.data.facts for n in r.notices("reminder")]
    assert [(f["as_of"], f["days_before_due"]) for f in facts] == [
        ("2026-10-28", 4),  # INV-1: the 7-day reminder, late
        ("2026-11-07", 1),  # SHORT: 7- and 1-day reminders, as one
    ]


# ---- rule 11: determinism ------------------------------------------------------------------------


def test_rule_11_the_same_inputs_give_the_same_outputs_with_the_same_ids() -> None:
    def story() -> list[Any]:
        s = Story()
        return [
            unpaid_story(s),
            s.days("2026-10-20", "2026-11-23"),
            s.pay("P1", "40.00"),
            s.fail("INV-1"),
            s.days("2026-11-24", "2026-11-26"),
            s.pay("P2", "60.00"),
        ]

    first, second = run(*story()), run(*story())
    assert first.encoded() == second.encoded()
    ids = [e.event_id for e in first.outputs]
    assert len(ids) == len(set(ids))


def test_rule_11_a_repeated_or_older_tick_changes_nothing() -> None:
    """Bug found: aging compared only business dates, so the same tick sent again (or an
    older tick of the same date) aged an invoice issued since, and collections climbed on it
    before the next tick would have. Time only moves forward; a duplicate changes nothing."""
    s = Story()
    morning, noon = s.tick("2026-11-20T01:00:00Z"), s.tick("2026-11-20T04:00:00Z")
    r = run(
        s.issue("OLD", "100.00", "2026-12-31"),
        s.tick("2026-11-19"),
        noon,
        s.issue("LATE", "100.00", "2026-10-01"),  # a late invoice, 50 days past due
    )
    before = len(r.outputs)
    assert r.feed(noon) == []  # the same tick again
    assert r.feed(morning) == []  # an older tick of the same date
    assert len(r.outputs) == before
    r.feed(s.tick("2026-11-20T04:15:00Z"))  # a later tick that day ages the late invoice
    assert r.stages() == [(date(2026, 11, 20), "overdue"), (date(2026, 11, 20), "final_notice")]


def test_rule_11_a_failed_payment_sent_twice_is_noticed_once() -> None:
    s = Story()
    failed = s.fail("INV-1")
    r = run(s.issue("INV-1", "100.00", DUE), s.tick("2026-11-05"), failed, failed)
    assert len(r.notices("payment_failed")) == 1


def test_rule_11_today_is_the_latest_aged_date_never_an_event_timestamp() -> None:
    s = Story()
    r = run(unpaid_story(s), s.days("2026-10-30", "2026-11-05"))
    # An event stamped a month later is recorded; it does not make time pass.
    far = s.pay("P1", "1.00", at=s.now.replace(month=12))
    r.feed(far)
    assert r.book().as_of == date(2026, 11, 5)
    assert r.stages() == [(date(2026, 11, 2), "overdue")]


# ---- rule 12: explain ----------------------------------------------------------------------------


def test_rule_12_explain_every_decision_says_why() -> None:
    s = Story()
    r = run(unpaid_story(s), s.days("2026-10-20", "2026-11-23"), s.pay("P1", "100.00"))
    for entered in r.entered():
        why = entered.data.why
        assert why.rule.startswith(("rule 6", "rule 7"))
        assert why.text
        assert why.trigger_event_id
        assert (why.policy.name, why.policy.version) == ("standard", 3)
        assert why.days_past_due == entered.data.days_past_due
        if entered.data.stage != "current":
            assert why.anchor_invoice_id == "INV-1"
            assert why.anchor_due_on == date(2026, 11, 1)
            assert [(m.currency, m.amount) for m in why.overdue] == [("USD", Decimal("100.00"))]
            assert "INV-1" in why.text
            assert "USD 100.00" in why.text
        else:
            assert "P1" in why.text
    for command in (*r.suspends(), *r.restores()):
        assert (command.data.policy.name, command.data.policy.version) == ("standard", 3)
        assert command.data.reason
    for notice in r.notices():
        assert notice.data.facts["policy"] == {"name": "standard", "version": 3}
