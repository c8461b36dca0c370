"""A ledger as JSON-ready data and back, for state stores and their changelogs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billstate_shared.domain.ledger import Ledger


def dump_ledger(ledger: Ledger) -> dict[str, Any]:
    """What the ledger was told, not what it derived: allocation is rebuilt on load.

    The ledger's serializer, so it reads the ledger's private records of what it was told."""
    return {
        "invoices": [
            [i.invoice_id, i.currency, str(i.amount), i.issued_on.isoformat(),
             i.due_on.isoformat(), list(i.subscription_ids)]
            # Only when given: every other invoice's bytes stay as they were.
            + ([i.period[0].isoformat(), i.period[1].isoformat()] if i.period else [])
            for i in ledger.invoices.values()
        ],
        "payments": [
            [p.payment_id, p.currency, str(p.amount), p.invoice_id, p.received_at.isoformat()]
            for p in ledger.payments.values()
        ],
        "adjustments": [
            [eid, inv, str(delta)]
            for eid, (inv, delta) in ledger._adjustments.items()  # noqa: SLF001
        ],
        "voided": sorted(ledger._voided),  # noqa: SLF001
        "reversed": sorted(ledger._reversed),  # noqa: SLF001
        "version": ledger.version,
    }  # fmt: skip


def load_ledger(data: dict[str, Any]) -> Ledger:
    """Rebuild through the ledger's own operations; allocation is order independent, so the
    result equals the ledger that was dumped."""
    ledger = Ledger()
    for event_id, invoice_id, delta in data["adjustments"]:
        ledger.adjust(event_id, invoice_id, Decimal(delta))
    for invoice_id in data["voided"]:
        ledger.void(invoice_id)
    for payment_id in data["reversed"]:
        ledger.reverse(payment_id)
    for invoice_id, currency, amount, issued_on, due_on, subs, *period in data["invoices"]:
        ledger.issue(
            invoice_id,
            currency,
            Decimal(amount),
            issued_on=date.fromisoformat(issued_on),
            due_on=date.fromisoformat(due_on),
            subscription_ids=tuple(subs),
            period=(date.fromisoformat(period[0]), date.fromisoformat(period[1]))
            if period
            else None,
        )
    for payment_id, currency, amount, invoice_id, received_at in data["payments"]:
        ledger.receive(
            payment_id, currency, Decimal(amount), invoice_id, datetime.fromisoformat(received_at)
        )
    ledger.version = data["version"]
    return ledger
