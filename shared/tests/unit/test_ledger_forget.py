"""A ledger that forgets what is settled keeps every open amount, now and after what comes."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from ledger_ops import Op

from billstate_shared.domain.ledger import Ledger, Posting
from billstate_shared.domain.ledger_state import dump_ledger, load_ledger
from billstate_shared.errors import Refused

START = date(2026, 1, 1)
HORIZON = START + timedelta(days=120)
CURRENCIES = ("USD", "EUR")


def day(n: int) -> date:
    return START + timedelta(days=n)


def at(n: int) -> datetime:
    return datetime(2026, 1, 1, 9, tzinfo=UTC) + timedelta(days=n)


money = st.integers(min_value=1, max_value=50_000).map(lambda cents: Decimal(cents) / 100)


@st.composite
def history(draw: st.DrawFn, tag: str, days: tuple[int, int]) -> list[Op]:
    """Invoices, payments (named or not), adjustments, voids and reversals in a span of
    days; ids carry `tag`, so a second history adds new records and may name old ones."""
    ops: list[Op] = []
    invoices = [f"{tag}I{n}" for n in range(draw(st.integers(1, 6)))]
    for invoice_id in invoices:
        due = draw(st.integers(*days))
        keywords = (("issued_on", day(due - 30)), ("due_on", day(due)), ("subscription_ids", ()))
        ops.append(Op("issue", (invoice_id, draw(st.sampled_from(CURRENCIES)), draw(money)),
                      keywords))  # fmt: skip
    named = st.sampled_from([*invoices, "I0", "I1", "I2"])  # old ones too, from a 2nd history
    for n in range(draw(st.integers(0, 8))):
        target = draw(st.none() | named)
        received = at(draw(st.integers(*days)))
        ops.append(Op("receive", (f"{tag}P{n}", draw(st.sampled_from(CURRENCIES)), draw(money),
                                  target, received)))  # fmt: skip
    for n in range(draw(st.integers(0, 2))):
        delta = draw(money) * draw(st.sampled_from((-1, 1)))
        ops.append(Op("adjust", (f"{tag}A{n}", draw(named), delta)))
    ops.extend(Op("void", (i,)) for i in draw(st.lists(named, max_size=2, unique=True)))
    paid = st.sampled_from([f"{tag}P{n}" for n in range(8)] + ["P0", "P1", "P2"])
    ops.extend(Op("reverse", (p,)) for p in draw(st.lists(paid, max_size=3, unique=True)))
    return draw(st.permutations(ops))


def opens(ledger: Ledger) -> dict[str, Decimal]:
    return {i.invoice_id: i.open for i in ledger.invoices.values()}


def credit_of(ledger: Ledger) -> dict[str, Decimal]:
    return {c: ledger.credit(c) for c in CURRENCIES}


def same(full: Ledger, pruned: Ledger) -> None:
    """Every invoice the pruned ledger kept is as open as in the full one; every one it
    forgot is settled there; credit is the same."""
    for invoice_id, amount in opens(full).items():
        assert opens(pruned).get(invoice_id, Decimal(0)) == amount
    assert set(opens(pruned)) <= set(opens(full))
    assert credit_of(pruned) == credit_of(full)
    assert [i.invoice_id for i in pruned.open_invoices()] == [
        i.invoice_id for i in full.open_invoices()
    ]


@settings(max_examples=400, deadline=None)
@given(history("", (0, 150)), history("n", (100, 260)))
def test_forgetting_changes_no_open_amount_now_or_after_any_later_event(
    before: list[Op], after: list[Op]
) -> None:
    full, pruned = Ledger(), Ledger()
    for op in before:
        op.apply(full)
        op.apply(pruned)
    pruned.forget(HORIZON)
    same(full, pruned)
    # Stored and loaded, it is the same ledger.
    pruned = load_ledger(json.loads(json.dumps(dump_ledger(pruned))))
    same(full, pruned)
    # What comes later: what the pruned ledger refuses (it is about what it forgot) is
    # not applied to the full one either; all else is applied to both.
    for op in after:
        try:
            op.apply(pruned)
        except Refused:
            continue
        op.apply(full)
    same(full, pruned)
    # Every event of the first history, redelivered, changes nothing.
    kept = dump_ledger(pruned)
    for op in before:
        assert op.apply(pruned) is Posting.DUPLICATE
    assert dump_ledger(pruned) == kept


def settled_long_ago() -> Ledger:
    ledger = Ledger()
    ledger.issue("I1", "USD", Decimal(100), issued_on=day(0), due_on=day(30),
                 subscription_ids=("s1",))  # fmt: skip
    ledger.receive("P1", "USD", Decimal(100), "I1", at(25))
    ledger.issue("I2", "USD", Decimal(50), issued_on=day(150), due_on=day(180),
                 subscription_ids=("s1",))  # fmt: skip
    assert ledger.forget(HORIZON)
    assert set(ledger.invoices) == {"I2"}
    assert not ledger.payments
    return ledger


def test_a_late_reversal_of_a_forgotten_payment_is_refused() -> None:
    ledger = settled_long_ago()
    with pytest.raises(Refused) as refused:
        ledger.reverse("P1")
    assert refused.value.field == "data.payment_id"
    assert refused.value.event_type == "payment.reversed"
    with pytest.raises(Refused):
        ledger.adjust("A1", "I1", Decimal(10))
    with pytest.raises(Refused):
        ledger.void("I1")
    assert opens(ledger) == {"I2": Decimal(50)}


def test_redelivered_events_about_what_was_forgotten_change_nothing() -> None:
    ledger = settled_long_ago()
    stored = dump_ledger(ledger)
    assert ledger.receive("P1", "USD", Decimal(100), "I1", at(25)) is Posting.DUPLICATE
    assert ledger.issue("I1", "USD", Decimal(100), issued_on=day(0), due_on=day(30),
                        subscription_ids=("s1",)) is Posting.DUPLICATE  # fmt: skip
    assert dump_ledger(ledger) == stored


def test_an_invoice_due_before_what_the_pool_paid_and_was_forgotten_is_refused() -> None:
    ledger = Ledger()
    ledger.issue("I1", "USD", Decimal(100), issued_on=day(0), due_on=day(30),
                 subscription_ids=())  # fmt: skip
    ledger.receive("P1", "USD", Decimal(100), None, at(25))  # names none: the pool pays
    ledger.forget(HORIZON)
    assert not ledger.invoices
    with pytest.raises(Refused) as refused:
        ledger.issue("I0", "USD", Decimal(10), issued_on=day(0), due_on=day(20),
                     subscription_ids=())  # fmt: skip
    assert refused.value.field == "data.due_on"
    assert ledger.issue("I3", "USD", Decimal(10), issued_on=day(200), due_on=day(230),
                        subscription_ids=()) is Posting.APPLIED  # fmt: skip


def test_an_invoice_paid_by_money_still_kept_is_not_forgotten() -> None:
    ledger = Ledger()
    ledger.issue("I1", "USD", Decimal(100), issued_on=day(0), due_on=day(30),
                 subscription_ids=())  # fmt: skip
    ledger.receive("P1", "USD", Decimal(100), None, at(130))  # after the horizon
    assert not ledger.forget(HORIZON)
    assert "I1" in ledger.invoices


def test_past_keeps_a_bounded_number_of_ids_and_knows_older_ones_by_date() -> None:
    ledger = Ledger()
    for n in range(100):
        ledger.issue(f"I{n}", "USD", Decimal(1), issued_on=day(n), due_on=day(n + 1),
                     subscription_ids=())  # fmt: skip
        ledger.receive(f"P{n}", "USD", Decimal(1), f"I{n}", at(n + 1))
        ledger.forget(day(n + 5))
    assert not ledger.invoices
    assert not ledger.payments
    assert len(ledger.past.ids) <= 32
    assert ledger.issue("I0", "USD", Decimal(1), issued_on=day(0), due_on=day(1),
                        subscription_ids=()) is Posting.DUPLICATE  # fmt: skip
    assert ledger.receive("P0", "USD", Decimal(1), "I0", at(1)) is Posting.DUPLICATE
    stored = json.loads(json.dumps(dump_ledger(ledger)))
    assert dump_ledger(load_ledger(stored)) == stored
