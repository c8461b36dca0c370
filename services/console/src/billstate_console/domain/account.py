"""A customer's money as replay sees it: the ledger events folded through the shared kernel."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billstate_shared.domain.ledger import LEDGER_EVENTS, ZERO, Ledger, apply_event

__all__ = [
    "LEDGER_EVENTS",
    "Balance",
    "LedgerEvent",
    "OpenInvoice",
    "disputes",
    "fold",
    "ledger_event",
    "unless",
]


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    issued_on: str
    due_on: str
    amount: Decimal  # what the invoice bills now: issued amount plus its adjustments
    open: Decimal
    disputed: Decimal
    days_past_due: int | None  # None: no business date known yet; 0: not overdue


@dataclass(frozen=True)
class Balance:
    currency: str
    overdue: Decimal  # open and past due, less what is disputed (the engine's rule 2)
    open: Decimal
    credit: Decimal
    invoices: tuple[OpenInvoice, ...]


@dataclass(frozen=True, slots=True)
class _Data:
    invoice_id: str | None = None
    payment_id: str | None = None
    currency: str = ""
    amount: Decimal = ZERO
    amount_delta: Decimal = ZERO
    issued_on: date | None = None
    due_on: date | None = None
    subscription_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """The fields of a ledger event `apply_event` reads, from its JSON without validating it
    again (it was validated when it came in): a page folds dozens of them."""

    event_id: str
    event_type: str
    occurred_at: datetime
    data: _Data


def ledger_event(raw: str) -> LedgerEvent:
    body = json.loads(raw)
    d = body["data"]
    data = _Data(
        invoice_id=d.get("invoice_id"),
        payment_id=d.get("payment_id"),
        currency=d.get("currency", ""),
        amount=Decimal(d["amount"]) if "amount" in d else ZERO,
        amount_delta=Decimal(d["amount_delta"]) if "amount_delta" in d else ZERO,
        issued_on=date.fromisoformat(d["issued_on"]) if "issued_on" in d else None,
        due_on=date.fromisoformat(d["due_on"]) if "due_on" in d else None,
        subscription_ids=tuple(d.get("subscription_ids", ())),
    )
    at = datetime.fromisoformat(body["occurred_at"])
    return LedgerEvent(body["event_id"], body["event_type"], at, data)


def disputes(holds: Iterable[dict[str, Any]]) -> dict[str, Decimal | None]:
    """Disputed amount per invoice from a state record's holds; None: the whole open amount."""
    found: dict[str, Decimal | None] = {}
    for hold in holds:
        invoice = hold.get("invoice_id")
        if hold.get("kind") != "dispute" or invoice is None:
            continue
        amount = hold.get("amount")
        if amount is None or (invoice in found and found[invoice] is None):
            found[invoice] = None
        else:
            found[invoice] = (found.get(invoice) or ZERO) + Decimal(amount)
    return found


def fold(
    events: Iterable[Any], as_of: date | None, holds: Iterable[dict[str, Any]]
) -> list[Balance]:
    """Balances per currency after the ledger events (any order: the ledger is order
    independent, and a repeated id changes nothing), on the business date `as_of`."""
    ledger = Ledger()
    for event in events:
        apply_event(ledger, event)
    held = disputes(holds)
    currencies = set(ledger.currencies()) | {p.currency for p in ledger.payments.values()}
    balances: list[Balance] = []
    for currency in sorted(currencies):
        cents = _unit(ledger, currency)
        rows: list[OpenInvoice] = []
        overdue = total = ZERO
        for inv in ledger.ordered(currency):
            if inv.open <= ZERO:
                continue
            part = held.get(inv.invoice_id, ZERO)
            disputed = inv.open if part is None else min(part, inv.open)
            late = as_of is not None and inv.due_on < as_of
            if late:
                overdue += inv.open - disputed
            total += inv.open
            rows.append(
                OpenInvoice(
                    invoice_id=inv.invoice_id,
                    issued_on=inv.issued_on.isoformat(),
                    due_on=inv.due_on.isoformat(),
                    amount=(ZERO if inv.voided else inv.amount + inv.adjustment).quantize(cents),
                    open=inv.open.quantize(cents),
                    disputed=disputed.quantize(cents),
                    days_past_due=None
                    if as_of is None
                    else ((as_of - inv.due_on).days if late else 0),
                )
            )
        balances.append(
            Balance(
                currency,
                overdue.quantize(cents),
                total.quantize(cents),
                ledger.credit(currency).quantize(cents),
                tuple(rows),
            )
        )
    return [b for b in balances if b.open or b.credit]


def _unit(ledger: Ledger, currency: str) -> Decimal:
    """The smallest unit the currency's amounts are written in (0.01 for 1450.00): every
    amount is shown to it, so a zero reads 0.00 like the rest."""
    exponents = [i.amount.as_tuple().exponent for i in ledger.ordered(currency)]
    exponents += [
        p.amount.as_tuple().exponent for p in ledger.payments.values() if p.currency == currency
    ]
    places = min((e for e in exponents if isinstance(e, int)), default=0)
    return Decimal(1).scaleb(places)


def unless(balances: Iterable[Balance]) -> list[tuple[str, Decimal]]:
    """What paying would stop the next step: the overdue amount per currency."""
    return [(b.currency, b.overdue) for b in balances if b.overdue > ZERO]
