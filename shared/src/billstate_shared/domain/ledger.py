"""The customer ledger: invoices, adjustments, voids, payments, reversals; open amounts."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

ZERO = Decimal(0)


class Posting(Enum):
    """What posting one event did to the ledger."""

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
    # The service period billed (both days included), as invoice.issued said; None: not
    # given, the calendar month before issued_on (see `billed`).
    period: tuple[date, date] | None = None

    @property
    def billed(self) -> tuple[date, date]:
        """The billing period: the one given, else the calendar month before issued_on."""
        if self.period is not None:
            return self.period
        end = self.issued_on.replace(day=1) - timedelta(days=1)
        return (end.replace(day=1), end)

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
        *,
        issued_on: date,
        due_on: date,
        subscription_ids: tuple[str, ...],
        period: tuple[date, date] | None = None,
    ) -> Posting:
        if invoice_id in self.invoices:
            return Posting.DUPLICATE
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
            period=period,
        )
        self.invoices[invoice_id] = invoice
        order = self._invoice_order.setdefault(currency, [])
        insort(order, invoice.order)
        if (
            invoice_id not in self._targeted
            and order[-1][2] == invoice_id
            and self._credit.get(currency) == ZERO
        ):
            # The usual new invoice: due after every other, named by no payment, and no
            # credit left over. A recompute would allocate everything else exactly as the
            # last one did (the pool ran out before the end of the list) and leave this one
            # at its base, so that is all that is done. A negative base (a credit note larger
            # than the invoice) feeds the pool and takes the full recompute below.
            base = ZERO if invoice.voided else invoice.amount + invoice.adjustment
            if base >= ZERO:
                self.version += 1
                invoice.open = base
                return Posting.APPLIED
        for touched in sorted(self._targeted.get(invoice_id, set()) | {currency}):
            self._recompute(touched)
        return Posting.APPLIED

    def adjust(self, event_id: str, invoice_id: str, delta: Decimal) -> Posting:
        if event_id in self._adjustments:
            return Posting.DUPLICATE
        self._adjustments[event_id] = (invoice_id, delta)
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return Posting.PARKED
        invoice.adjustment += delta
        self._recompute(invoice.currency)
        return Posting.APPLIED

    def void(self, invoice_id: str) -> Posting:
        if invoice_id in self._voided:
            return Posting.DUPLICATE
        self._voided.add(invoice_id)
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return Posting.PARKED
        invoice.voided = True
        self._recompute(invoice.currency)
        return Posting.APPLIED

    def receive(
        self,
        payment_id: str,
        currency: str,
        amount: Decimal,
        invoice_id: str | None,
        received_at: datetime,
    ) -> Posting:
        if payment_id in self.payments:
            return Posting.DUPLICATE
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
        return Posting.PARKED if self.is_parked(payment) else Posting.APPLIED

    def reverse(self, payment_id: str) -> Posting:
        if payment_id in self._reversed:
            return Posting.DUPLICATE
        self._reversed.add(payment_id)
        payment = self.payments.get(payment_id)
        if payment is None:
            return Posting.PARKED
        payment.reversed = True
        self._recompute(payment.currency)
        return Posting.APPLIED

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

    # ---- allocation ---------------------------------------------------------------------

    def _recompute(self, currency: str) -> None:  # noqa: C901  (one frame for speed)
        # Runs on every invoice and payment, over the currency's whole history: the same
        # arithmetic, in the same order, as the rules say, with the lookups made local.
        self.version += 1
        all_invoices = self.invoices
        invoices = [all_invoices[key[2]] for key in self._invoice_order.get(currency, ())]
        pool = ZERO  # credit notes larger than their invoice become credit on account
        for inv in invoices:
            base = ZERO if inv.voided else inv.amount + inv.adjustment
            if base < ZERO:
                pool -= base
                base = ZERO
            inv.open = base
        remainders: list[Decimal] = []
        payments = self.payments
        for key in self._payment_order.get(currency, ()):
            payment = payments[key[1]]
            invoice_id = payment.invoice_id
            if payment.reversed:
                continue
            left = payment.amount
            if invoice_id is not None:
                target = all_invoices.get(invoice_id)
                if target is None:
                    continue  # parked: waits, whole, for its invoice (is_parked)
                if target.currency == currency and target.open > ZERO:
                    # Not min(): a call costs five times the comparison in this loop.
                    take = left if left < target.open else target.open  # noqa: FURB136
                    target.open -= take
                    left -= take
            remainders.append(left)
        pool += sum(remainders, ZERO)
        if pool > ZERO:
            for inv in invoices:
                if inv.open > ZERO:
                    take = pool if pool < inv.open else inv.open  # noqa: FURB136  (as above)
                    inv.open -= take
                    pool -= take
                    if pool == ZERO:
                        break
        self._credit[currency] = pool


LEDGER_EVENTS = frozenset(
    {"invoice.issued", "invoice.adjusted", "invoice.voided", "payment.received", "payment.reversed"}
)


def _period(d: Any) -> tuple[date, date] | None:
    start, end = getattr(d, "period_start", None), getattr(d, "period_end", None)
    # Both or neither; one alone is completed from the default month's other end.
    if start is None and end is None:
        return None
    month = Invoice("", "", ZERO, d.issued_on, d.due_on, ()).billed
    return (start or month[0], end or month[1])


def apply_event(ledger: Ledger, event: Any) -> Posting:
    """Apply a contract event (any of LEDGER_EVENTS) to a ledger; other types are IGNORED."""
    kind = event.event_type
    d = event.data
    if kind == "invoice.issued":
        return ledger.issue(
            d.invoice_id,
            d.currency,
            d.amount,
            issued_on=d.issued_on,
            due_on=d.due_on,
            subscription_ids=tuple(d.subscription_ids),
            period=_period(d),
        )
    if kind == "payment.received":
        return ledger.receive(d.payment_id, d.currency, d.amount, d.invoice_id, event.occurred_at)
    if kind == "invoice.adjusted":
        return ledger.adjust(event.event_id, d.invoice_id, d.amount_delta)
    if kind == "invoice.voided":
        return ledger.void(d.invoice_id)
    if kind == "payment.reversed":
        return ledger.reverse(d.payment_id)
    return Posting.IGNORED
