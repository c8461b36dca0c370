"""Rule 1 (the ledger) in detail, and its properties over random event sets.

POLICY.md rule 1: invoices, adjustments, voids, payments and reversals give each invoice an
open amount. A payment with `invoice_id` pays that invoice, the rest goes oldest-due-first in
the same currency, the rest after that is credit that pays the next invoice of that currency
when it is issued. A reversal undoes exactly what that payment paid. Currencies never mix.
Duplicates are ignored.

Design (decided): allocation is recomputed per currency from the set of invoices and
payments in canonical order (payments by (occurred_at, payment_id); targeted parts first,
then oldest-due-first, then credit), so the arrival order never matters and credit on account
also pays an invoice reopened by a reversal. A payment naming an unknown invoice is parked
whole until that invoice arrives.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from billstate_shared.contracts import decode

sys.path.insert(0, str(Path(__file__).parent))

from ledger_ops import Op

from billstate_shared.domain.ledger import ZERO, Ledger, Payment, Posting, apply_event

D = Decimal
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def issue(
    ledger: Ledger,
    invoice_id: str,
    amount: str,
    due_on: str,
    currency: str = "USD",
) -> Posting:
    due = date.fromisoformat(due_on)
    return ledger.issue(
        invoice_id,
        currency,
        D(amount),
        issued_on=due - timedelta(days=30),
        due_on=due,
        subscription_ids=(),
    )


def opens(ledger: Ledger) -> dict[str, Decimal]:
    return {i.invoice_id: i.open for i in ledger.invoices.values()}


def parked_payments(ledger: Ledger) -> list[Payment]:
    """The payments waiting, whole, for the invoice they name."""
    return [p for p in ledger.payments.values() if not p.reversed and ledger.is_parked(p)]


# ---- rule 1, case by case -----------------------------------------------------------------


def test_targeted_payment_pays_its_invoice_first_then_oldest_due_then_credit() -> None:
    ledger = Ledger()
    issue(ledger, "OLD", "100", "2026-10-01")
    issue(ledger, "MID", "100", "2026-10-15")
    issue(ledger, "NEW", "100", "2026-11-01")

    assert ledger.receive("P1", "USD", D("350"), "NEW", at(0)) is Posting.APPLIED

    # NEW first (targeted), then OLD and MID oldest-due-first, then 50 of credit.
    assert opens(ledger) == {"OLD": 0, "MID": 0, "NEW": 0}
    assert ledger.credit("USD") == D("50")


def test_untargeted_payment_goes_oldest_due_first_not_oldest_issued() -> None:
    ledger = Ledger()
    issue(ledger, "LATE-DUE", "100", "2026-12-01")
    issue(ledger, "EARLY-DUE", "100", "2026-10-01")

    ledger.receive("P1", "USD", D("150"), None, at(0))

    assert opens(ledger) == {"EARLY-DUE": 0, "LATE-DUE": D("50")}
    assert ledger.credit("USD") == 0


def test_credit_pays_the_next_invoice_of_that_currency_when_it_is_issued() -> None:
    ledger = Ledger()
    issue(ledger, "A", "100", "2026-10-01")
    ledger.receive("P1", "USD", D("160"), None, at(0))
    assert ledger.credit("USD") == D("60")

    issue(ledger, "B", "100", "2026-11-01")

    assert opens(ledger) == {"A": 0, "B": D("40")}
    assert ledger.credit("USD") == 0


def test_currencies_never_mix() -> None:
    ledger = Ledger()
    issue(ledger, "EUR-1", "100", "2026-10-01", currency="EUR")
    issue(ledger, "USD-1", "100", "2026-10-15")

    ledger.receive("P1", "USD", D("250"), None, at(0))
    # A USD payment naming a EUR invoice does not pay it: it is USD money.
    ledger.receive("P2", "USD", D("10"), "EUR-1", at(1))

    assert opens(ledger) == {"EUR-1": D("100"), "USD-1": 0}
    assert ledger.credit("USD") == D("160")
    assert ledger.credit("EUR") == 0


def test_reversal_undoes_exactly_what_the_payment_paid() -> None:
    ledger = Ledger()
    issue(ledger, "A", "100", "2026-10-01")
    issue(ledger, "B", "100", "2026-10-15")
    ledger.receive("P1", "USD", D("30"), "B", at(0))
    before = opens(ledger)
    ledger.receive("P2", "USD", D("120"), None, at(1))
    assert opens(ledger) == {"A": 0, "B": D("50")}

    assert ledger.reverse("P2") is Posting.APPLIED

    assert opens(ledger) == before == {"A": D("100"), "B": D("70")}
    assert ledger.credit("USD") == 0


def test_credit_on_account_pays_an_invoice_reopened_by_a_reversal() -> None:
    ledger = Ledger()
    issue(ledger, "A", "100", "2026-10-01")
    ledger.receive("P1", "USD", D("100"), "A", at(0))
    ledger.receive("P2", "USD", D("40"), None, at(1))  # nothing open: all credit
    assert ledger.credit("USD") == D("40")

    ledger.reverse("P1")

    assert opens(ledger) == {"A": D("60")}
    assert ledger.credit("USD") == 0


def test_duplicates_are_ignored() -> None:
    ledger = Ledger()
    assert issue(ledger, "A", "100", "2026-10-01") is Posting.APPLIED
    assert issue(ledger, "A", "999", "2026-09-01") is Posting.DUPLICATE
    assert ledger.receive("P1", "USD", D("10"), None, at(0)) is Posting.APPLIED
    assert ledger.receive("P1", "USD", D("10"), None, at(0)) is Posting.DUPLICATE
    assert ledger.adjust("adj-1", "A", D("-5")) is Posting.APPLIED
    assert ledger.adjust("adj-1", "A", D("-5")) is Posting.DUPLICATE
    assert ledger.reverse("P1") is Posting.APPLIED
    assert ledger.reverse("P1") is Posting.DUPLICATE
    assert ledger.void("A") is Posting.APPLIED
    assert ledger.void("A") is Posting.DUPLICATE

    assert opens(ledger) == {"A": 0}
    assert ledger.credit("USD") == 0


def test_a_payment_for_an_unknown_invoice_is_parked_whole_until_it_arrives() -> None:
    ledger = Ledger()
    issue(ledger, "OTHER", "100", "2026-10-01")

    assert ledger.receive("P1", "USD", D("150"), "LATER", at(0)) is Posting.PARKED
    assert opens(ledger) == {"OTHER": D("100")}  # parked money pays nothing yet
    assert [p.payment_id for p in parked_payments(ledger)] == ["P1"]

    issue(ledger, "LATER", "100", "2026-11-01")

    assert opens(ledger) == {"OTHER": D("50"), "LATER": 0}
    assert parked_payments(ledger) == []


def test_a_parked_payment_in_another_currency_is_released_when_its_invoice_arrives() -> None:
    """Bug found: issuing the named invoice recomputed only the invoice's currency, so a USD
    payment parked for a EUR invoice stayed out of the USD allocation until some other USD
    event came along; the same events in another order gave other open amounts."""
    first, second = Ledger(), Ledger()
    for ledger, order in ((first, "payment first"), (second, "invoice first")):
        issue(ledger, "USD-1", "100", "2026-10-01")
        if order == "payment first":
            ledger.receive("P1", "USD", D("50"), "EUR-1", at(0))
            issue(ledger, "EUR-1", "100", "2026-10-01", currency="EUR")
        else:
            issue(ledger, "EUR-1", "100", "2026-10-01", currency="EUR")
            ledger.receive("P1", "USD", D("50"), "EUR-1", at(0))

    assert opens(first) == opens(second) == {"USD-1": D("50"), "EUR-1": D("100")}


def test_adjustments_voids_and_reversals_may_arrive_before_what_they_change() -> None:
    ledger = Ledger()
    assert ledger.adjust("adj-1", "A", D("-40")) is Posting.PARKED
    assert ledger.void("B") is Posting.PARKED
    assert ledger.reverse("P1") is Posting.PARKED

    issue(ledger, "A", "100", "2026-10-01")
    issue(ledger, "B", "100", "2026-10-02")
    ledger.receive("P1", "USD", D("500"), None, at(0))

    assert opens(ledger) == {"A": D("60"), "B": 0}
    assert ledger.credit("USD") == 0  # P1 arrived already reversed


def test_a_credit_note_larger_than_its_invoice_becomes_credit() -> None:
    ledger = Ledger()
    issue(ledger, "A", "100", "2026-10-01")
    issue(ledger, "B", "100", "2026-10-02")

    ledger.adjust("cn-1", "A", D("-130"))

    assert opens(ledger) == {"A": 0, "B": D("70")}


def test_voiding_an_invoice_frees_what_paid_it() -> None:
    ledger = Ledger()
    issue(ledger, "A", "100", "2026-10-01")
    issue(ledger, "B", "100", "2026-10-02")
    ledger.receive("P1", "USD", D("100"), "A", at(0))

    ledger.void("A")

    assert opens(ledger) == {"A": 0, "B": 0}
    assert ledger.credit("USD") == 0


def test_apply_event_reads_contract_events() -> None:
    def event(event_type: str, event_id: str, data: dict[str, object]) -> object:
        return decode(
            json.dumps(
                {
                    "event_id": event_id,
                    "event_type": event_type,
                    "occurred_at": "2026-11-01T09:00:00+00:00",
                    "customer_id": "contoso",
                    "data": data,
                }
            )
        )

    ledger = Ledger()
    issued = event(
        "invoice.issued",
        "i",
        {
            "invoice_id": "A",
            "currency": "USD",
            "amount": "100.00",
            "issued_on": "2026-10-01",
            "due_on": "2026-10-31",
            "subscription_ids": ["sub-1"],
        },
    )
    paid = event("payment.received", "p", {"payment_id": "P1", "currency": "USD", "amount": "25"})
    adjusted = event(
        "invoice.adjusted", "a", {"invoice_id": "A", "amount_delta": "-5", "reason": "x"}
    )
    tick = decode(
        json.dumps(
            {
                "event_id": "t",
                "event_type": "clock.tick",
                "occurred_at": "2026-11-01T09:00:00+00:00",
                "customer_id": "*",
                "data": {},
            }
        )
    )

    assert apply_event(ledger, issued) is Posting.APPLIED
    assert apply_event(ledger, paid) is Posting.APPLIED
    assert apply_event(ledger, adjusted) is Posting.APPLIED
    assert apply_event(ledger, adjusted) is Posting.DUPLICATE
    assert apply_event(ledger, tick) is Posting.IGNORED
    assert opens(ledger) == {"A": D("70.00")}
    assert ledger.invoices["A"].subscription_ids == ("sub-1",)


# ---- properties ---------------------------------------------------------------------------

CURRENCIES = ("USD", "EUR")
INVOICE_IDS = tuple(f"I{n}" for n in range(6))
PAYMENT_IDS = tuple(f"P{n}" for n in range(6))


money = st.integers(min_value=1, max_value=40_000).map(lambda cents: D(cents) / 100)
due_dates = st.integers(min_value=0, max_value=60).map(
    lambda n: date(2026, 10, 1) + timedelta(days=n)
)


@st.composite
def ledger_ops(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    invoice_ids = draw(st.lists(st.sampled_from(INVOICE_IDS), min_size=1, max_size=5, unique=True))
    currency_of: dict[str, str] = {}
    for invoice_id in invoice_ids:
        currency = draw(st.sampled_from(CURRENCIES))
        currency_of[invoice_id] = currency
        due = draw(due_dates)
        issued = due - timedelta(days=draw(st.integers(0, 30)))
        dates = (("issued_on", issued), ("due_on", due), ("subscription_ids", ()))
        ops.append(Op("issue", (invoice_id, currency, draw(money)), dates))
    for n in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(INVOICE_IDS))  # may be an invoice never issued
        delta = draw(money) * draw(st.sampled_from((-1, 1)))
        ops.append(Op("adjust", (f"adj-{n}", target, delta)))
    voided = draw(st.lists(st.sampled_from(INVOICE_IDS), max_size=2, unique=True))
    ops.extend(Op("void", (invoice_id,)) for invoice_id in voided)
    payment_ids = draw(st.lists(st.sampled_from(PAYMENT_IDS), max_size=5, unique=True))
    for payment_id in payment_ids:
        target = draw(st.none() | st.sampled_from(INVOICE_IDS))
        # Mostly the currency of the invoice it names; sometimes another (it must not mix).
        currency = draw(st.sampled_from(CURRENCIES))
        if target in currency_of and draw(st.booleans()):
            currency = currency_of[target]
        received = at(draw(st.integers(0, 5)))  # ties are broken by payment_id
        ops.append(Op("receive", (payment_id, currency, draw(money), target, received)))
    reversed_ = draw(st.lists(st.sampled_from(PAYMENT_IDS), max_size=3, unique=True))
    ops.extend(Op("reverse", (payment_id,)) for payment_id in reversed_)
    return ops


def build(ops: list[Op]) -> Ledger:
    ledger = Ledger()
    for op in ops:
        op.apply(ledger)
    return ledger


def snapshot(ledger: Ledger) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    credit = {c: ledger.credit(c) for c in CURRENCIES if ledger.credit(c) != 0}
    return opens(ledger), credit


def billed(ledger: Ledger, currency: str) -> Decimal:
    """Invoice amounts plus adjustments of the invoices that are not voided."""
    return sum(
        (
            i.amount + i.adjustment
            for i in ledger.invoices.values()
            if i.currency == currency and not i.voided
        ),
        ZERO,
    )


def paid(ledger: Ledger, currency: str) -> Decimal:
    """Payments that count: not reversed, not parked for an invoice not seen yet."""
    return sum(
        (
            p.amount
            for p in ledger.payments.values()
            if p.currency == currency and not p.reversed and not ledger.is_parked(p)
        ),
        ZERO,
    )


@settings(max_examples=300, deadline=None)
@given(ledger_ops())
def test_conservation_per_currency(ops: list[Op]) -> None:
    ledger = build(ops)
    for currency in CURRENCIES:
        invoices = [i for i in ledger.invoices.values() if i.currency == currency]
        open_sum = sum((i.open for i in invoices), ZERO)
        credit = ledger.credit(currency)
        assert credit >= 0
        for invoice in invoices:
            base = ZERO if invoice.voided else invoice.amount + invoice.adjustment
            assert ZERO <= invoice.open <= max(base, ZERO)
        # Credit only waits when nothing of that currency is left to pay.
        if credit > 0:
            assert open_sum == 0
        # Open minus credit is what was billed minus what was paid, to the cent.
        assert open_sum - credit == billed(ledger, currency) - paid(ledger, currency)
        # Without over-credit (no credit left, no credit note above its invoice), the open
        # amounts plus credit are the floored invoice amounts minus the payments.
        if credit == 0 and all(i.voided or i.amount + i.adjustment >= 0 for i in invoices):
            floored = sum(
                (max(i.amount + i.adjustment, ZERO) for i in invoices if not i.voided), ZERO
            )
            assert open_sum + credit == floored - paid(ledger, currency)


@settings(max_examples=300, deadline=None)
@given(ledger_ops(), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_open_amounts_and_credit(
    ops: list[Op], rnd: random.Random
) -> None:
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    assert snapshot(build(shuffled)) == snapshot(build(ops))


@settings(max_examples=200, deadline=None)
@given(ledger_ops(), st.data())
def test_duplicates_change_nothing(ops: list[Op], data: st.DataObject) -> None:
    expected = snapshot(build(ops))
    ledger = Ledger()
    seen: set[tuple[str, object]] = set()
    for op in ops:
        op.apply(ledger)
        seen.add(op.key)
        if data.draw(st.booleans()):
            again = data.draw(st.sampled_from([o for o in ops if o.key in seen]))
            assert again.apply(ledger) is Posting.DUPLICATE
    assert snapshot(ledger) == expected


@settings(max_examples=200, deadline=None)
@given(ledger_ops(), money, st.none() | st.sampled_from(INVOICE_IDS), st.sampled_from(CURRENCIES))
def test_reversal_restores_exactly_the_open_amounts_before_the_payment(
    ops: list[Op], amount: Decimal, target: str | None, currency: str
) -> None:
    without_payments = [op for op in ops if op.kind not in ("receive", "reverse")]
    ledger = build(without_payments)
    before = snapshot(ledger)

    ledger.receive("PX", currency, amount, target, at(3))
    ledger.reverse("PX")

    assert snapshot(ledger) == before


@settings(max_examples=200, deadline=None)
@given(ledger_ops(), money, st.none() | st.sampled_from(INVOICE_IDS), st.sampled_from(CURRENCIES))
def test_a_reversed_payment_is_as_if_it_never_was(
    ops: list[Op], amount: Decimal, target: str | None, currency: str
) -> None:
    """Also with other payments around: undoing exactly what it paid means the others pay
    what they would have paid without it."""
    payment = Op("receive", ("PX", currency, amount, target, at(2)))
    assert snapshot(build([*ops, payment, Op("reverse", ("PX",))])) == snapshot(build(ops))
