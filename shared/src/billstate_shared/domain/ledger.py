"""The customer ledger: invoices, adjustments, voids, payments, reversals; open amounts."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from bisect import insort
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from hashlib import blake2b
from typing import Any

from billstate_shared.errors import Refused

ZERO = Decimal(0)
PAST_SIZE = 32  # forgotten records a ledger still knows by id (docs/policy.md "What a book keeps")


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


def past_key(space: str, record_id: str) -> str:
    """The compact form `Past` keeps of an id: 8 bytes of its hash, 11 url-safe characters."""
    raw = blake2b(f"{space}{record_id}".encode(), digest_size=8).digest()
    return urlsafe_b64encode(raw).decode()[:11]


@dataclass(slots=True)
class Past:
    """What a ledger forgot, so that an event about it is told apart from a new one.

    `ids`: the newest `PAST_SIZE` forgotten records, oldest first, as a key (`past_key` of
    "i"/"p"/"a" and the invoice, payment or adjustment event id) -> (what it was: "i" an
    invoice, "v" a voided invoice, "p" a payment, "r" a reversed payment, "a" an adjustment;
    the horizon that forgot it). `floor`: the latest horizon among the records dropped from
    `ids`: an invoice issued, or a payment received, before it is one the ledger knew.
    """

    ids: dict[str, tuple[str, date]] = field(default_factory=dict)
    floor: date | None = None

    def kind(self, space: str, record_id: str) -> str | None:
        if not self.ids:
            return None
        found = self.ids.get(past_key(space, record_id))
        return None if found is None else found[0]

    def before(self, day: date) -> bool:
        return self.floor is not None and day < self.floor

    def trim(self, before: date) -> None:
        """Drop the ids forgotten at a horizon before a date; they stay known by date."""
        for key in [k for k, (_, h) in self.ids.items() if h < before]:
            when = self.ids.pop(key)[1]
            if self.floor is None or when > self.floor:
                self.floor = when

    def add(self, space: str, record_id: str, kind: str, horizon: date) -> None:
        ids = self.ids
        ids[past_key(space, record_id)] = (kind, horizon)
        while len(ids) > PAST_SIZE:
            when = ids.pop(next(iter(ids)))[1]
            if self.floor is None or when > self.floor:
                self.floor = when


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
    # What `forget` left behind: per currency, the money of the forgotten records (payments
    # less what the invoices billed, never below zero: it is part of the allocation's pool),
    # and the order of the latest forgotten invoice the pool paid (an invoice due before it
    # is refused: it would take that money first); the ids forgotten; the last horizon.
    _carry: dict[str, Decimal] = field(default_factory=dict)
    _frontier: dict[str, tuple[date, date, str]] = field(default_factory=dict)
    past: Past = field(default_factory=Past)
    horizon: date | None = None

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
        if self.horizon is not None and self._forgotten_invoice(
            invoice_id, currency, issued_on, due_on
        ):
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
        if self.past.ids:
            if self.past.kind("a", event_id) is not None:
                return Posting.DUPLICATE
            if self.past.kind("i", invoice_id) is not None:
                raise _late("invoice.adjusted", "an adjustment")
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
        if self.past.ids:
            kind = self.past.kind("i", invoice_id)
            if kind == "v":
                return Posting.DUPLICATE
            if kind is not None:
                raise _late("invoice.voided", "a void")
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
        if self.horizon is not None:
            past = self.past
            if past.before(received_at.date()) or past.kind("p", payment_id) is not None:
                return Posting.DUPLICATE  # forgotten: seen, applied, settled long ago
            if invoice_id is not None and past.kind("i", invoice_id) is not None:
                # It names an invoice settled and forgotten, which takes nothing more: all of
                # it goes to the pool, as for a payment that names no invoice.
                invoice_id = None
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
        if self.past.ids:
            kind = self.past.kind("p", payment_id)
            if kind == "r":
                return Posting.DUPLICATE
            if kind is not None:
                raise _late("payment.reversed", "a reversal", "data.payment_id", "payment")
        self._reversed.add(payment_id)
        payment = self.payments.get(payment_id)
        if payment is None:
            return Posting.PARKED
        payment.reversed = True
        self._recompute(payment.currency)
        return Posting.APPLIED

    # ---- forgetting (docs/policy.md "What a book keeps") ---------------------------------

    def _forgotten_invoice(
        self, invoice_id: str, currency: str, issued_on: date, due_on: date
    ) -> bool:
        """True for an invoice forgotten; Refused for one the pool would pay before them."""
        past = self.past
        if past.before(issued_on) or past.kind("i", invoice_id) is not None:
            return True
        frontier = self._frontier.get(currency)
        if frontier is not None and (due_on, issued_on, invoice_id) < frontier:
            raise Refused(
                "data.due_on",
                f"the invoice falls due before invoices settled more than the ledger keeps"
                f" ago ({frontier[0].isoformat()}): credit that paid those would pay it first;"
                " issue it with a current due date",
                "invoice.issued",
            )
        return False

    def forget(self, horizon: date, keep: Collection[str] = ()) -> bool:  # noqa: C901, PLR0912, PLR0915
        """Forget what can no longer change an open amount: invoices settled (open 0) issued
        and due before `horizon`, with every payment naming them; payments received before
        it that name no invoice, or were reversed. Each forgotten payment's money less each
        forgotten invoice's base goes to the currency's carry, so every open amount and
        credit stay as they were, and stay so whatever comes next (events about what was
        forgotten are refused). An invoice the pool paid goes only with every invoice due
        before it and only while the carry stays at or above zero, so it cannot reopen.
        `keep`: invoice ids not to forget. True when anything was forgotten."""
        self.horizon = horizon
        invoices, payments = self.invoices, self.payments
        naming: dict[str, list[Payment]] = {}
        for p in payments.values():
            if p.invoice_id is not None:
                naming.setdefault(p.invoice_id, []).append(p)
        gone: dict[str, Invoice] = {}
        carry = dict(self._carry)
        for p in payments.values():  # old money that names no invoice goes first
            if p.invoice_id is None and not p.reversed and p.received_at.date() < horizon:
                carry[p.currency] = carry.get(p.currency, ZERO) + p.amount
        for currency, order in self._invoice_order.items():
            prefix = True  # every invoice before this one is forgotten
            for key in order:
                inv = invoices[key[2]]
                named = naming.get(inv.invoice_id, ())
                if (
                    inv.open != ZERO
                    or inv.due_on >= horizon
                    or inv.issued_on >= horizon
                    or inv.invoice_id in keep
                    or any(p.received_at.date() >= horizon for p in named)
                ):
                    prefix = False
                    continue
                base = ZERO if inv.voided else inv.amount + inv.adjustment
                pooled = base  # what the pool paid: the base less what payments naming it took
                for p in sorted(named, key=_payment_order):
                    if pooled <= ZERO:
                        break
                    if not p.reversed and p.currency == currency:
                        pooled -= min(pooled, p.amount)
                if pooled > ZERO:
                    if not prefix:
                        continue
                    change = sum(
                        (p.amount for p in named if not p.reversed and p.currency == currency),
                        ZERO,
                    )
                    if carry.get(currency, ZERO) + change - base < ZERO:
                        prefix = False  # paid by money the ledger still keeps: not yet
                        continue
                    self._frontier[currency] = inv.order
                gone[inv.invoice_id] = inv
                carry[currency] = carry.get(currency, ZERO) - base
                for p in named:
                    if not p.reversed:
                        carry[p.currency] = carry.get(p.currency, ZERO) + p.amount
        lost = [
            p
            for p in payments.values()
            if p.received_at.date() < horizon
            and (p.invoice_id in gone or p.reversed or p.invoice_id is None)
        ]
        if not gone and not lost:
            return False
        past = self.past
        for inv in gone.values():
            del invoices[inv.invoice_id]
            self._invoice_order[inv.currency].remove(inv.order)
            self._targeted.pop(inv.invoice_id, None)
            self._voided.discard(inv.invoice_id)
            past.add("i", inv.invoice_id, "v" if inv.voided else "i", horizon)
        for event_id in [e for e, (i, _) in self._adjustments.items() if i in gone]:
            del self._adjustments[event_id]
            past.add("a", event_id, "a", horizon)
        for p in lost:
            del payments[p.payment_id]
            self._payment_order[p.currency].remove(p.order)
            self._reversed.discard(p.payment_id)
            past.add("p", p.payment_id, "r" if p.reversed else "p", horizon)
        self._targeted = {}
        for p in payments.values():
            if p.invoice_id is not None:
                self._targeted.setdefault(p.invoice_id, set()).add(p.currency)
        self._carry = {c: amount for c, amount in sorted(carry.items()) if amount != ZERO}
        return True

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
        # Credit notes larger than their invoice become credit on account; what forgotten
        # records left is in the pool from the start.
        pool = self._carry.get(currency, ZERO)
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


def _payment_order(payment: Payment) -> tuple[datetime, str]:
    return payment.order


def _late(
    event_type: str,
    what: str,
    where: str = "data.invoice_id",
    of: str = "invoice",
) -> Refused:
    return Refused(
        where,
        f'{what} of an {of} settled and forgotten (docs/policy.md "What a book keeps"):'
        " it would change what was settled long ago; book the difference as a new invoice"
        " or payment",
        event_type,
    )


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
