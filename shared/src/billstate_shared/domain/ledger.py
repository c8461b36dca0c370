"""The customer ledger: invoices, adjustments, voids, payments, reversals; open amounts."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

ZERO = Decimal(0)


class Outcome(Enum):
    """What applying one event did to the ledger."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # same event, or same invoice/payment id again: changes nothing
    PARKED = "parked"  # refers to an invoice or payment not seen yet; completes when it arrives
    IGNORED = "ignored"  # not a ledger event


@dataclass(slots=True)
class Invoice:
    invoice_id: str
    currency: str
    amount: Decimal
    issued_on: date
    due_on: date
    subscription_ids: tuple[str, ...]
    adjustment: Decimal = ZERO
    voided: bool = False
    open: Decimal = ZERO  # derived by allocation; never set from outside

    @property
    def order(self) -> tuple[date, date, str]:
        return (self.due_on, self.issued_on, self.invoice_id)


@dataclass(slots=True)
class Payment:
    payment_id: str
    currency: str
    amount: Decimal
    invoice_id: str | None
    received_at: datetime
    reversed: bool = False

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.received_at, self.payment_id)


@dataclass(slots=True)
class Ledger:
    """One customer's money, per currency; currencies never mix.

    Allocation is recomputed for the touched currency from the set of invoices and payments,
    never accumulated, so the result does not depend on the order events arrived in:
    targeted parts first (in payment order), then what is left oldest-due-first, then credit.
    Credit therefore always pays the oldest open invoice, including one issued later or
    reopened by a reversal; a reversal undoes exactly what its payment paid.
    """

    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    # Ordered keys per currency, kept sorted on insert so a recompute is a linear walk.
    _invoice_order: dict[str, list[tuple[date, date, str]]] = field(default_factory=dict)
    _payment_order: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    _credit: dict[str, Decimal] = field(default_factory=dict)
    _adjustments: dict[str, tuple[str, Decimal]] = field(
        default_factory=dict
    )  # event_id -> (invoice, delta)
    _voided: set[str] = field(default_factory=set)
    _reversed: set[str] = field(default_factory=set)
    # invoice id -> currencies of the payments naming it: a payment parked for an invoice not
    # seen yet may be in another currency, whose allocation changes when the invoice arrives.
    _targeted: dict[str, set[str]] = field(default_factory=dict)
    version: int = 0  # bumped on every change; lets callers cache what they derive
    _open: tuple[int, tuple[Invoice, ...]] = (-1, ())  # open invoices as of a version

    # ---- events -------------------------------------------------------------------------

    def issue(
        self,
        invoice_id: str,
        currency: str,
        amount: Decimal,
        issued_on: date,
        due_on: date,
        subscription_ids: tuple[str, ...],
    ) -> Outcome:
        if invoice_id in self.invoices:
            return Outcome.DUPLICATE
        adjustment = sum(
            (delta for inv, delta in self._adjustments.values() if inv == invoice_id), ZERO
        )
        invoice = Invoice(
            invoice_id,
            currency,
            amount,
            issued_on,
            due_on,
            tuple(subscription_ids),
            adjustment=adjustment,
            voided=invoice_id in self._voided,
        )
        self.invoices[invoice_id] = invoice
        insort(self._invoice_order.setdefault(currency, []), invoice.order)
        for touched in sorted(self._targeted.get(invoice_id, set()) | {currency}):
            self._recompute(touched)
        return Outcome.APPLIED

    def adjust(self, event_id: str, invoice_id: str, delta: Decimal) -> Outcome:
        if event_id in self._adjustments:
            return Outcome.DUPLICATE
        self._adjustments[event_id] = (invoice_id, delta)
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return Outcome.PARKED
        invoice.adjustment += delta
        self._recompute(invoice.currency)
        return Outcome.APPLIED

    def void(self, invoice_id: str) -> Outcome:
        if invoice_id in self._voided:
            return Outcome.DUPLICATE
        self._voided.add(invoice_id)
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return Outcome.PARKED
        invoice.voided = True
        self._recompute(invoice.currency)
        return Outcome.APPLIED

    def receive(
        self,
        payment_id: str,
        currency: str,
        amount: Decimal,
        invoice_id: str | None,
        received_at: datetime,
    ) -> Outcome:
        if payment_id in self.payments:
            return Outcome.DUPLICATE
        payment = Payment(
            payment_id,
            currency,
            amount,
            invoice_id,
            received_at,
            reversed=payment_id in self._reversed,
        )
        self.payments[payment_id] = payment
        insort(self._payment_order.setdefault(currency, []), payment.order)
        if invoice_id is not None:
            self._targeted.setdefault(invoice_id, set()).add(currency)
        self._recompute(currency)
        return Outcome.PARKED if self.is_parked(payment) else Outcome.APPLIED

    def reverse(self, payment_id: str) -> Outcome:
        if payment_id in self._reversed:
            return Outcome.DUPLICATE
        self._reversed.add(payment_id)
        payment = self.payments.get(payment_id)
        if payment is None:
            return Outcome.PARKED
        payment.reversed = True
        self._recompute(payment.currency)
        return Outcome.APPLIED

    # ---- reading ------------------------------------------------------------------------

    def is_parked(self, payment: Payment) -> bool:
        """A payment for an invoice not seen yet waits for it, whole, rather than guess."""
        return payment.invoice_id is not None and payment.invoice_id not in self.invoices

    def credit(self, currency: str) -> Decimal:
        return self._credit.get(currency, ZERO)

    def currencies(self) -> list[str]:
        return sorted(self._invoice_order)

    def ordered(self, currency: str) -> list[Invoice]:
        """Invoices of a currency, oldest due first."""
        return [self.invoices[key[2]] for key in self._invoice_order.get(currency, ())]

    def open_invoices(self) -> tuple[Invoice, ...]:
        """Every invoice with an open amount, oldest due first within each currency."""
        cached = self._open
        if cached[0] == self.version:
            return cached[1]
        found: list[Invoice] = []
        for currency in sorted(self._invoice_order):
            for key in self._invoice_order[currency]:
                invoice = self.invoices[key[2]]
                if invoice.open > ZERO:
                    found.append(invoice)
        self._open = (self.version, tuple(found))
        return self._open[1]

    def parked_payments(self) -> list[Payment]:
        return [p for p in self.payments.values() if not p.reversed and self.is_parked(p)]

    # ---- allocation ---------------------------------------------------------------------

    def _recompute(self, currency: str) -> None:
        self.version += 1
        invoices = [self.invoices[key[2]] for key in self._invoice_order.get(currency, ())]
        pool = ZERO  # credit notes larger than their invoice become credit on account
        for inv in invoices:
            base = ZERO if inv.voided else inv.amount + inv.adjustment
            if base < ZERO:
                pool -= base
                base = ZERO
            inv.open = base
        remainders: list[Decimal] = []
        for key in self._payment_order.get(currency, ()):
            payment = self.payments[key[1]]
            if payment.reversed or self.is_parked(payment):
                continue
            left = payment.amount
            if payment.invoice_id is not None:
                target = self.invoices[payment.invoice_id]
                if target.currency == currency and target.open > ZERO:
                    take = left if left < target.open else target.open
                    target.open -= take
                    left -= take
            remainders.append(left)
        pool += sum(remainders, ZERO)
        if pool > ZERO:
            for inv in invoices:
                if inv.open > ZERO:
                    take = pool if pool < inv.open else inv.open
                    inv.open -= take
                    pool -= take
                    if pool == ZERO:
                        break
        self._credit[currency] = pool


LEDGER_EVENTS = frozenset(
    {"invoice.issued", "invoice.adjusted", "invoice.voided", "payment.received", "payment.reversed"}
)


def apply_event(ledger: Ledger, event: Any) -> Outcome:
    """Apply a contract event (any of LEDGER_EVENTS) to a ledger; other types are IGNORED."""
    kind = event.event_type
    d = event.data
    if kind == "invoice.issued":
        return ledger.issue(
            d.invoice_id, d.currency, d.amount, d.issued_on, d.due_on, tuple(d.subscription_ids)
        )
    if kind == "payment.received":
        return ledger.receive(d.payment_id, d.currency, d.amount, d.invoice_id, event.occurred_at)
    if kind == "invoice.adjusted":
        return ledger.adjust(event.event_id, d.invoice_id, d.amount_delta)
    if kind == "invoice.voided":
        return ledger.void(d.invoice_id)
    if kind == "payment.reversed":
        return ledger.reverse(d.payment_id)
    return Outcome.IGNORED
