"""The fold of a customer's ledger events: disputed parts, days past due, units."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from billstate_console.domain.account import disputes, fold, ledger_event


def issued(inv: str, amount: str, due: str) -> str:
    data = {
        "invoice_id": inv,
        "currency": "USD",
        "amount": amount,
        "issued_on": "2026-01-01",
        "due_on": due,
        "subscription_ids": ["sub-1"],
    }
    return json.dumps(
        {
            "event_id": f"e-{inv}",
            "event_type": "invoice.issued",
            "occurred_at": "2026-01-01T00:00:00Z",
            "customer_id": "c",
            "data": data,
        }
    )


def dispute(inv: str, amount: str | None) -> dict[str, object]:
    return {"kind": "dispute", "invoice_id": inv, "amount": amount}


def test_disputes_add_up_and_one_without_an_amount_takes_the_whole_invoice() -> None:
    holds = [dispute("A", "10.00"), dispute("A", "5.50"), dispute("B", "1"), dispute("B", None)]
    holds.append({"kind": "promise_to_pay", "invoice_id": None, "until": "2026-02-01"})
    assert disputes(holds) == {"A": Decimal("15.50"), "B": None}


def test_a_partial_dispute_counts_the_rest_overdue_and_never_more_than_open() -> None:
    events = [
        ledger_event(issued("A", "100.00", "2026-01-31")),
        ledger_event(issued("B", "40.00", "2026-03-01")),
    ]
    holds = [dispute("A", "30.00"), dispute("B", "99.00")]
    (usd,) = fold(events, date(2026, 2, 10), holds)
    assert (usd.open, usd.overdue, usd.credit) == (
        Decimal("140.00"),
        Decimal("70.00"),
        Decimal("0.00"),
    )
    a, b = usd.invoices
    assert (a.disputed, a.days_past_due) == (Decimal("30.00"), 10)
    assert (b.disputed, b.days_past_due) == (Decimal("40.00"), 0)  # capped at the open amount
    (unknown_day,) = fold(events, None, [])
    assert unknown_day.overdue == Decimal("0.00")
    assert [i.days_past_due for i in unknown_day.invoices] == [None, None]
