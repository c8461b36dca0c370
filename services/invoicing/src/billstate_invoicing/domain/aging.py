"""Aging: from the invoice register and a clock tick, the day's `invoice.aged` events."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from billstate_shared.contracts import CustomerUpserted, Event
from billstate_shared.contracts.outbound import Aged
from billstate_shared.domain.ids import MAX_READABLE_ID, readable_id
from billstate_shared.domain.ledger import ZERO, Invoice, Ledger, Posting, apply_event
from billstate_shared.domain.policy import Policy

ONE_DAY = timedelta(days=1)


@dataclass(slots=True)
class Register:
    """One customer's invoices as invoicing keeps them: the ledger and what has been aged."""

    customer_id: str
    ledger: Ledger = field(default_factory=Ledger)
    aged_on: dict[str, date] = field(default_factory=dict)  # invoice_id -> last business date
    zone: ZoneInfo | None = None  # the customer's own time zone; None: the policy's


@dataclass(slots=True)
class Aging:
    """Which open invoices are inside their aging window, so a tick touches only those.

    One per worker (or per replay): invoices wait in a heap until their window opens
    (`due_on - reminder window`), then stay active while open. A tick costs what it emits.
    """

    policy: Policy
    window: timedelta = timedelta(0)
    today: date | None = None
    latest: datetime | None = None  # the latest tick acted on; time only moves forward
    _waiting: list[tuple[date, str, str]] = field(default_factory=list)  # (opens, customer, inv)
    _active: dict[str, dict[str, None]] = field(default_factory=dict)  # customer -> invoice ids
    _tracked: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        days = self.policy.reminders.days_before_due
        self.window = timedelta(days=max(days, default=0))

    def business_date(self, occurred_at: datetime) -> date:
        """Rule 2's calendar: the date in the policy's time zone."""
        return occurred_at.astimezone(self.policy.zone).date()

    def watch(self, register: Register) -> None:
        """Track every open invoice of a customer; call after any change to its ledger."""
        customer = register.customer_id
        # A customer with a zone of its own may reach a date a day before the policy's zone
        # does: its invoices wait one day less, and the tick checks the window in its zone.
        early = ONE_DAY if register.zone is not None else timedelta(0)
        for invoice in register.ledger.invoices.values():
            if invoice.open > ZERO and (customer, invoice.invoice_id) not in self._tracked:
                self._tracked.add((customer, invoice.invoice_id))
                opens = invoice.due_on - self.window - early
                heapq.heappush(self._waiting, (opens, customer, invoice.invoice_id))

    def rewatch(self, register: Register) -> None:
        """After a customer's zone changed: its open invoices wait again by the new zone (an
        invoice in the heap twice is activated twice, which changes nothing)."""
        customer = register.customer_id
        for invoice in register.ledger.invoices.values():
            self._tracked.discard((customer, invoice.invoice_id))
        self.watch(register)

    def tick(  # noqa: C901, PLR0912  (the hot loop stays in one frame; see below)
        self,
        occurred_at: datetime,
        registers: Callable[[str], Register | None],
    ) -> list[Aged]:
        """The aged events for the tick's business date: one per open invoice in its window,
        at most one per invoice and date. A tick not later than the latest one (an older
        tick, or the same tick again) changes nothing."""
        if self.latest is not None and occurred_at <= self.latest:
            return []
        self.latest = occurred_at
        as_of = self.business_date(occurred_at)
        self.today = as_of
        waiting, active = self._waiting, self._active
        while waiting and waiting[0][0] <= as_of:
            _opens, customer, invoice_id = heapq.heappop(waiting)
            invoices = active.get(customer)
            if invoices is None:
                invoices = active[customer] = {}
            invoices[invoice_id] = None
        # This loop runs once per open invoice and day, so it is written for speed: the
        # per-tick parts of every event (its id's date, the date itself) are made once.
        out: list[Aged] = []
        append = out.append
        suffix = f":{as_of.isoformat()}"
        day = as_of.toordinal()
        for customer in list(active):
            register = registers(customer)
            invoices = active[customer]
            if register is None:
                continue
            ledger_invoices = register.ledger.invoices
            open_now: list[Invoice] = []
            closed = False
            for invoice_id in invoices:
                invoice = ledger_invoices[invoice_id]
                if invoice.open > ZERO:
                    open_now.append(invoice)
                else:
                    closed = True
            if closed:
                for invoice_id in [i for i in invoices if not ledger_invoices[i].open > ZERO]:
                    del invoices[invoice_id]  # closed; watch() picks it up again if reopened
                    self._tracked.discard((customer, invoice_id))
                if not invoices:
                    del active[customer]
            if len(open_now) > 1:
                open_now.sort(key=_order)
            aged_on = register.aged_on
            local, local_suffix, local_day = as_of, suffix, day
            if register.zone is not None:
                local = occurred_at.astimezone(register.zone).date()
                local_suffix, local_day = f":{local.isoformat()}", local.toordinal()
                opens = local + self.window
                open_now = [i for i in open_now if i.due_on <= opens]
            for invoice in open_now:
                invoice_id = invoice.invoice_id
                if aged_on.get(invoice_id, date.min) < local:
                    aged_on[invoice_id] = local
                    event_id = f"aged:{customer}:{invoice_id}{local_suffix}"
                    if len(event_id) > MAX_READABLE_ID:
                        event_id = readable_id("aged", customer, invoice_id, local)
                    append(
                        Aged.build(
                            event_id,
                            occurred_at,
                            customer,
                            invoice_id,
                            invoice.due_on,
                            local,
                            local_day - invoice.due_on.toordinal(),
                            invoice.open,
                            invoice.currency,
                            invoice.subscription_ids,
                        )
                    )
        return out


# `Invoice.order`'s tuple, made in C: the tick sorts each customer's open invoices daily.
_order = attrgetter("due_on", "issued_on", "invoice_id")


def record(aging: Aging, register: Register, event: Event) -> Posting:
    """Invoicing's handling of a ledger event or a customer's master data: update the
    register, track what may age."""
    if isinstance(event, CustomerUpserted):
        zone = event.data.timezone
        new = None if zone is None else ZoneInfo(zone)
        if new == register.zone:
            return Posting.DUPLICATE
        register.zone = new
        aging.rewatch(register)
        return Posting.APPLIED
    posting = apply_event(register.ledger, event)
    if posting is not Posting.IGNORED:
        aging.watch(register)
    return posting
