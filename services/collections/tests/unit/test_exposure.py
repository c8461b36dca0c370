"""Exposure to Microsoft per customer and the `exposure_high` notice (docs/policy.md "Exposure")."""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Story, make_policy, run

from billstate_collections.domain.book import MAX_COSTS, Book, CostLine
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.exposure import add_cost, exposure
from billstate_collections.domain.snapshot import state_data
from billstate_shared.contracts import Event, decode
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import Refused

LIMITED: Policy = make_policy(exposure={"escalate_above": {"USD": "500.00"}})


def cost(
    s: Story,
    cost_id: str,
    amount: str,
    start: str,
    end: str,
    *,
    sub: str = "sub-1",
    currency: str = "USD",
) -> Event:
    envelope = {
        "event_id": f"{s.customer}:cost:{cost_id}:{amount}",
        "event_type": "cost.recorded",
        "schema_version": 1,
        "occurred_at": s.now.isoformat(),
        "customer_id": s.customer,
        "data": {
            "cost_id": cost_id,
            "subscription_id": sub,
            "charge_start": start,
            "charge_end": end,
            "amount": amount,
            "currency": currency,
            "invoice_ref": "G012345678",
        },
    }
    return decode(json.dumps(envelope))


def amounts(book: Book) -> dict[str, Decimal]:
    return {c: amount for c, amount, _ in exposure(book)}


def test_cost_in_an_unpaid_invoices_period_is_exposure() -> None:
    s = Story()
    # Issued 2026-10-02: without a period it bills September.
    out = run(
        s.upsert(subs=["sub-1", "sub-2"]),
        s.issue("INV-1", "120.00", "2026-11-01", issued_on="2026-10-02", subs=["sub-1"]),
        cost(s, "c1", "80.00", "2026-09-01", "2026-09-30"),
        cost(s, "c2", "30.00", "2026-09-01", "2026-09-30", sub="sub-2"),  # not billed by it
        cost(s, "c3", "50.00", "2026-08-01", "2026-08-31"),  # before its period
        cost(s, "c4", "7.00", "2026-09-30", "2026-10-29", currency="EUR"),  # overlaps a day
        s.tick("2026-10-03"),
    )

    assert exposure(out.book()) == [
        ("EUR", Decimal("7.00"), ("sub-1",)),
        ("USD", Decimal("80.00"), ("sub-1",)),
    ]
    state = state_data(out.book(), out.policy)
    assert [(m.currency, m.amount) for m in state.exposure] == [
        ("EUR", Decimal("7.00")),
        ("USD", Decimal("80.00")),
    ]


def test_the_invoice_period_given_is_used_and_no_subscriptions_means_all() -> None:
    s = Story()
    issue = s.issue("INV-1", "120.00", "2026-11-01", issued_on="2026-10-02", subs=[])
    data = issue.data.model_copy(
        update={"period_start": date(2026, 10, 1), "period_end": date(2026, 10, 31)}
    )
    out = run(
        issue.model_copy(update={"data": data}),
        cost(s, "c1", "80.00", "2026-09-01", "2026-09-30"),  # the default month: not this one
        cost(s, "c2", "30.00", "2026-10-01", "2026-10-31", sub="sub-9"),
        s.tick("2026-10-03"),
    )

    assert amounts(out.book()) == {"USD": Decimal("30.00")}
    again = load_book(dump_book(out.book(), out.policy), out.policy)
    assert amounts(again) == {"USD": Decimal("30.00")}


def test_credits_bring_a_currency_to_zero_not_below() -> None:
    s = Story()
    out = run(
        s.issue("INV-1", "120.00", "2026-11-01", issued_on="2026-10-02", subs=["sub-1"]),
        cost(s, "c1", "20.00", "2026-09-01", "2026-09-30"),
        cost(s, "c2", "-50.00", "2026-09-01", "2026-09-30"),
    )

    assert exposure(out.book()) == []


def test_paying_the_invoice_ends_the_exposure() -> None:
    s = Story()
    out = run(
        s.issue("INV-1", "120.00", "2026-11-01", issued_on="2026-10-02", subs=["sub-1"]),
        cost(s, "c1", "80.00", "2026-09-01", "2026-09-30"),
        s.pay("PAY-1", "120.00"),
    )

    assert exposure(out.book()) == []
    assert state_data(out.book(), out.policy).exposure == []


def test_the_same_cost_id_counts_once_and_another_amount_is_refused() -> None:
    book = Book("contoso")
    line = CostLine("c1", "sub-1", date(2026, 9, 1), date(2026, 9, 30), Decimal(80), "USD", "G1")

    assert add_cost(book, line) is True
    assert add_cost(book, line) is False
    with pytest.raises(Refused, match="recorded before with USD 80"):
        add_cost(book, CostLine("c1", "sub-1", line.start, line.end, Decimal(81), "USD", "G1"))
    assert book.costs == {"c1": line}


def test_a_book_keeps_the_newest_cost_lines_whatever_the_order() -> None:
    def line(n: int) -> CostLine:
        day = date.fromordinal(date(2020, 1, 1).toordinal() + n)
        return CostLine(f"c{n}", "sub-1", day, day, Decimal(1), "USD", "G1")

    lines = [line(n) for n in range(MAX_COSTS + 10)]
    forward, backward = Book("a"), Book("b")
    for one in lines:
        add_cost(forward, one)
    for one in reversed(lines):
        add_cost(backward, one)

    assert len(forward.costs) == MAX_COSTS
    assert set(forward.costs) == set(backward.costs) == {c.cost_id for c in lines[10:]}


def _climb(s: Story, *extra: Event, policy: Policy = LIMITED) -> list[Event]:
    return [
        s.upsert(subs=["sub-1", "sub-2"]),
        s.issue("INV-1", "900.00", "2026-10-01", issued_on="2026-09-01", subs=["sub-1", "sub-2"]),
        cost(s, "c1", "300.00", "2026-08-01", "2026-08-31"),
        cost(s, "c2", "250.00", "2026-08-01", "2026-08-31", sub="sub-2"),
        *extra,
        *s.days("2026-09-28", "2026-10-20"),
    ]


def test_exposure_high_once_per_episode_with_amounts_and_subscriptions() -> None:
    s = Story()
    out = run(*_climb(s), policy=LIMITED)

    [notice] = out.notices("exposure_high")
    assert notice.data.audience == "partner"
    assert notice.data.facts["as_of"] == "2026-10-02"  # the first day delinquent
    assert notice.data.facts["above"] == [
        {
            "currency": "USD",
            "amount": "550.00",
            "threshold": "500.00",
            "subscription_ids": ["sub-1", "sub-2"],
        }
    ]
    assert notice.data.facts["exposure"] == [{"amount": "550.00", "currency": "USD"}]
    # Every partner notice carries it too.
    [final] = out.notices("final_notice")[1:] or [
        n for n in out.notices("final_notice") if n.data.audience == "partner"
    ]
    assert final.data.facts["exposure"] == [{"amount": "550.00", "currency": "USD"}]

    # Paid: the episode ends; a second episode sends again, with another id.
    out.feed(s.pay("PAY-1", "900.00"), s.tick("2026-10-21"))
    out.feed(
        s.issue("INV-2", "900.00", "2026-11-01", issued_on="2026-10-02", subs=["sub-1"]),
        cost(s, "c3", "600.00", "2026-09-01", "2026-09-30"),
        s.days("2026-10-22", "2026-11-05"),
    )
    first, second = out.notices("exposure_high")
    assert second.data.notice_id != first.data.notice_id
    assert second.data.facts["above"][0]["amount"] == "600.00"


def test_no_notice_below_the_threshold_or_without_one() -> None:
    s = Story()
    assert not run(*_climb(s), policy=make_policy()).notices("exposure_high")
    s = Story()
    below = make_policy(exposure={"escalate_above": {"USD": "550.00"}})  # above, not at
    assert not run(*_climb(s), policy=below).notices("exposure_high")


def test_costs_before_invoices_give_the_same_outputs() -> None:
    s1, s2 = Story(), Story()
    events = _climb(s1)
    late = _climb(s2)
    costs = [e for e in late if e.event_type == "cost.recorded"]
    rest = [e for e in late if e.event_type != "cost.recorded"]
    first = run(*events, policy=LIMITED)
    second = run(*costs, *rest, policy=LIMITED)

    assert first.encoded() == second.encoded()


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    invoices = [
        {
            "id": f"INV-{n}",
            "currency": draw(st.sampled_from(["USD", "EUR"])),
            "month": draw(st.integers(1, 6)),
            "subs": draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), max_size=2, unique=True)),
            "amount": draw(st.integers(1, 500)),
        }
        for n in range(draw(st.integers(0, 4)))
    ]
    costs = [
        {
            "id": f"c{n}",
            "currency": draw(st.sampled_from(["USD", "EUR", "JPY"])),
            "month": draw(st.integers(1, 6)),
            "sub": draw(st.sampled_from(["s1", "s2", "s3"])),
            "amount": draw(st.integers(-300, 500).filter(bool)),
        }
        for n in range(draw(st.integers(0, 8)))
    ]
    return invoices, costs


def _events(
    s: Story, invoices: list[dict[str, object]], costs: list[dict[str, object]]
) -> tuple[list[Event], list[Event]]:
    issued = [
        s.issue(
            str(i["id"]),
            f"{i['amount']}.00",
            date(2026, int(str(i["month"])) + 1, 15),
            issued_on=date(2026, int(str(i["month"])) + 1, 1),
            currency=str(i["currency"]),
            subs=list(i["subs"]),  # type: ignore[call-overload]
        )
        for i in invoices
    ]
    lines = [
        cost(
            s,
            str(c["id"]),
            f"{c['amount']}.00",
            date(2026, int(str(c["month"])), 3).isoformat(),
            date(2026, int(str(c["month"])), 20).isoformat(),
            sub=str(c["sub"]),
            currency=str(c["currency"]),
        )
        for c in costs
    ]
    return issued, lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False))
def test_exposure_properties(
    history: tuple[list[dict[str, object]], list[dict[str, object]]], rnd: object
) -> None:
    invoices, costs = history
    issued, lines = _events(Story(), invoices, costs)
    book = run(*issued, *lines).book() if issued or lines else Book("contoso")
    shuffled = [*issued, *lines]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    other = run(*shuffled).book() if shuffled else Book("contoso")
    found = exposure(book)

    assert found == exposure(other)  # the order of arrival does not matter
    assert all(amount > 0 for _, amount, _ in found)  # never negative, zero left out
    currencies = {str(c["currency"]) for c in costs}
    for currency, amount, _ in found:  # never mixed: each total is of its own lines only
        assert currency in currencies
        mine = sum(Decimal(str(c["amount"])) for c in costs if c["currency"] == currency)
        positive = sum(
            Decimal(str(c["amount"]))
            for c in costs
            if c["currency"] == currency and int(str(c["amount"])) > 0
        )
        assert amount <= positive
        assert mine <= positive
    # Paying every unpaid invoice brings it to zero.
    s = Story()
    paid = run(*issued, *lines)
    for n, inv in enumerate(paid.book().ledger.open_invoices() if issued else ()):
        paid.feed(s.pay(f"PAY-{n}", inv.open, currency=inv.currency, invoice_id=inv.invoice_id))
    if issued or lines:
        assert exposure(paid.book()) == []
