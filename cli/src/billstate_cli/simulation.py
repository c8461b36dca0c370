"""A realistic, deterministic billing history (the replay benchmark runs on it: bench/).

`history()` yields the inbound envelopes a CSP reseller's billing bus would carry for N
customers over D days, clock ticks included, in time order, as plain JSON-ready dicts:
customers, monthly (and some annual) invoices, payments on time, late, in parts or never,
write-offs, chargebacks, failed collection attempts, credit notes, disputes and promises, and
payments in flight: some customers who would be suspended announce a `payment.pending` a few
days before that date, which then arrives, fails or lets its `expected_by` pass. Every invoice
names its service period, and each of its subscriptions gets a `cost.recorded` for that period:
what Microsoft bills the partner, 80 to 90 % of the customer's price, in USD for most customers
and in the customer's own currency for some (COST_OWN_CURRENCY).

Determinism: every random draw comes from `random.Random(seed)`, which hands each customer
its own `random.Random` (seeded from the master in customer order). Cost lines draw from a
stream of their own (seeded from the seed and the customer id), so adding them left every
other draw, and so every other event, as it was (invoices gained their period). A customer's
draws happen day by day whether or not the resulting events fall inside the horizon, so a customer's
history does not depend on how many other customers there are, and a shorter history is a
prefix of a longer one. Ids are readable and deterministic: `INV-cust-00042-3`,
`PAY-cust-00042-7`, `HOLD-cust-00042-1`; a payment in flight carries the id its
`payment.received` or `payment.failed` then names.

The clock: one `clock.tick` per business date (every calendar day in `timezone`; partners
bill and collect on weekends too) at 09:00 local time. Other events happen at varied times
of day, so some of a day's events come before its tick and some after.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from billstate_shared.errors import Refused

__all__ = [
    "PROFILES",
    "CustomerPlan",
    "Subscription",
    "history",
    "write_jsonl",
]

Envelope = dict[str, Any]

DEFAULT_START = date(2026, 1, 1)
DEFAULT_TIMEZONE = "Asia/Taipei"
TICK_SECOND = 9 * 3600  # 09:00 local

# Payment behaviour, relative weights (about 75/15/5/3 percent of customers).
PROFILES: dict[str, float] = {"on_time": 75, "late": 15, "partial": 5, "never": 3}

EUR_SHARE = 0.10  # customers billed in EUR rather than USD
BOTH_CURRENCIES_SHARE = 0.03  # of customers with 2+ subscriptions: one in the other currency
ANNUAL_SHARE = 0.15  # customers with one annual subscription, invoiced once a year in full
STRATEGIC_SHARE = 0.05
ZH_TW_SHARE = 0.30
MIN_CENTS, MAX_CENTS = 20_00, 5_000_00  # a monthly invoice's range

# The sprinkling, per invoice (dispute, credit note) or per payment (chargeback).
DISPUTE_RATE = 0.012
CREDIT_NOTE_RATE = 0.02
CHARGEBACK_RATE = 0.008
SLIP_RATE = 0.04  # an on-time customer paying a few days late once in a while
FAILED_BEFORE_ON_TIME_RATE = 0.01
LATE_ON_TIME_RATE = 0.20  # a late customer paying on time once in a while
FAILED_BEFORE_LATE_RATE = 0.25
PROMISE_RATE = 0.25  # of late payments, preceded by a promise to pay
PROMISE_KEPT_RATE = 0.65

# What Microsoft bills the partner: a fraction of the customer's price, in USD unless the
# customer is one of those (picked from its id) whose costs are in its own currency.
COST_SHARE = (0.80, 0.90)
COST_OWN_CURRENCY = 4  # one customer in 4 (by id) is billed in its own currency
USD_PER = {"USD": 1.0, "EUR": 1.08}  # a fixed rate: the simulation needs no market

# Payments in flight. The standard policies suspend at 21 days past due; a late customer who
# would still owe by then announces, with this rate, a payment.pending 1 to 3 days before,
# expected 2 to 6 days after it, so that it is in force on that date. It then arrives after
# the date and by expected_by (the invoice is paid), fails (payment.failed with its payment_id;
# the invoice is paid later), or lets expected_by pass without a word (paid later too). A
# never-paying customer sometimes announces one that fails or lapses.
SUSPEND_DAY = 21
PENDING_RATE = 0.6
PENDING_OUTCOMES: dict[str, float] = {"paid": 40, "failed": 30, "lapsed": 30}
NEVER_PENDING_RATE = 0.3

_EN_NAMES = (
    [
        "Contoso",
        "Fabrikam",
        "Northwind",
        "Tailspin",
        "Wingtip",
        "Litware",
        "Proseware",
        "Woodgrove",
        "Coho",
        "Lucerne",
        "Trey",
        "Relecloud",
        "VanArsdel",
        "Southridge",
        "Adventure Works",
        "Alpine Ski",
        "Wide World",
        "Fourth Coffee",
        "Blue Yonder",
    ],
    ["Trading", "Logistics", "Labs", "Systems", "Foods", "Studio", "Partners", "Health", "Media"],
    ["Ltd.", "Inc.", "LLC", "Co.", "GmbH", "Pte. Ltd."],
)
_ZH_NAMES = (
    (
        "台灣",
        "新竹",
        "高雄",
        "台中",
        "宏遠",
        "永豐",
        "大同",
        "光華",
        "長青",
        "東方",
        "信達",
        "嘉南",
    ),
    ("科技", "貿易", "物流", "資訊", "餐飲", "設計", "醫療", "工程", "顧問", "電子"),
    ("股份有限公司", "有限公司"),
)
_SIZE_TAGS = ("smb", "smb", "smb", "mid-market", "enterprise")
_FAILURES = ("card declined", "insufficient funds", "expired card", "bank transfer returned")
_CHARGEBACKS = ("chargeback", "returned transfer", "card dispute")
_CREDIT_NOTES = ("credit note: service outage", "credit note: seat reduction", "price correction")
_DISPUTES = ("customer disputes seat count", "customer disputes usage charges", "duplicate charge")


# ---- the customers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    currency: str
    annual: bool
    price_cents: int  # a month's price, or a whole year's for an annual subscription


@dataclass(frozen=True, slots=True)
class CustomerPlan:
    """Who a customer is and how it pays; drawn once, at the start."""

    customer_id: str
    profile: str  # a key of PROFILES
    name: str
    locale: str
    tags: tuple[str, ...]
    partner_contact_email: str
    billing_day: int  # 1..28: monthly invoices are issued on this day
    annual_month: int  # the month the annual subscription is invoiced; 0 when none
    subscriptions: tuple[Subscription, ...]

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(s.currency for s in self.subscriptions)

    @property
    def billing_email(self) -> str:
        return f"ap@{self.customer_id}.example"


def _customers(customers: int, seed: int) -> Iterator[tuple[CustomerPlan, random.Random]]:
    master = random.Random(seed)
    for index in range(1, customers + 1):
        rng = random.Random(master.getrandbits(64))
        yield _draw_plan(index, rng), rng


def _draw_plan(index: int, rng: random.Random) -> CustomerPlan:
    customer_id = f"cust-{index:05d}"
    profile = rng.choices(tuple(PROFILES), weights=tuple(PROFILES.values()))[0]
    locale = "zh-TW" if rng.random() < ZH_TW_SHARE else "en"
    if locale == "zh-TW":
        name = "".join(rng.choice(part) for part in _ZH_NAMES)
    else:
        name = " ".join(rng.choice(part) for part in _EN_NAMES)
    tags = [rng.choice(_SIZE_TAGS)]
    if rng.random() < STRATEGIC_SHARE:
        tags.append("strategic")
    currency = "EUR" if rng.random() < EUR_SHARE else "USD"
    count = rng.randint(1, 4)
    currencies = [currency] * count
    if count >= 2 and rng.random() < BOTH_CURRENCIES_SHARE:
        currencies[-1] = "USD" if currency == "EUR" else "EUR"
    annual = rng.random() < ANNUAL_SHARE
    # The customer's monthly spend, log-uniform over the invoice range, split by weights.
    total = MIN_CENTS * (MAX_CENTS / MIN_CENTS) ** rng.random()
    weights = [rng.uniform(0.2, 1.0) for _ in range(count)]
    subscriptions = []
    for n, (cur, weight) in enumerate(zip(currencies, weights, strict=True), start=1):
        monthly = max(MIN_CENTS // count, round(total * weight / sum(weights)))
        is_annual = annual and n == 1
        price = round(monthly * 12 * 0.9) if is_annual else monthly  # a year up front, 10% off
        subscriptions.append(Subscription(f"SUB-{customer_id}-{n}", cur, is_annual, price))
    return CustomerPlan(
        customer_id=customer_id,
        profile=profile,
        name=name,
        locale=locale,
        tags=tuple(tags),
        partner_contact_email=f"am{rng.randint(1, 12):02d}@partner.example",
        billing_day=rng.randint(1, 28),
        annual_month=rng.randint(1, 12) if annual else 0,
        subscriptions=tuple(subscriptions),
    )


# ---- the history --------------------------------------------------------------------------


def money(cents: int) -> str:
    """Integer cents as a contract amount: 123456 -> "1234.56"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


@dataclass(slots=True)
class _Invoice:
    invoice_id: str
    currency: str
    cents: int
    issued_on: date
    due_on: date


@dataclass(slots=True)
class _Customer:
    plan: CustomerPlan
    rng: random.Random
    costs: random.Random  # cost lines' own stream: the history's other draws stay as they were
    invoices: int = 0
    payments: int = 0
    holds: int = 0
    notes: int = 0  # adjustments and failures: numbered for their event ids
    write_off_on: date | None = None  # never-paying customers: when the debt is written off
    promised: bool = False


class _Timeline:
    """Events scheduled ahead, released day by day in time order; beyond the horizon dropped."""

    def __init__(self, start: date, days: int, zone: ZoneInfo) -> None:
        self.start = start
        self.end = start + timedelta(days=days)
        self.zone = zone
        self.today = start
        self._heap: list[tuple[float, int, Envelope]] = []
        self._seq = 0

    def at(self, day: date, second: int) -> datetime:
        hour, rest = divmod(second, 3600)
        minute, sec = divmod(rest, 60)
        return datetime(day.year, day.month, day.day, hour, minute, sec, tzinfo=self.zone)

    def emit(
        self,
        c: _Customer | None,
        day: date,
        event_type: str,
        event_id: str,
        data: Envelope,
        *,
        hours: tuple[int, int] = (0, 24),
        rng: random.Random | None = None,
    ) -> None:
        # The time of day is drawn first, so the draws do not depend on the horizon.
        draw = rng or (c.rng if c is not None else None)
        second = TICK_SECOND if draw is None else draw.randrange(hours[0] * 3600, hours[1] * 3600)
        if day >= self.end:
            return
        if day < self.today:
            raise AssertionError(f"{event_id} scheduled on {day}, in the past of {self.today}")
        at = self.at(day, second)
        envelope: Envelope = {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": at.isoformat(),
            "customer_id": "*" if c is None else c.plan.customer_id,
            "data": data,
        }
        self._seq += 1
        heapq.heappush(self._heap, (at.timestamp(), self._seq, envelope))

    def release(self, before: float) -> Iterator[Envelope]:
        while self._heap and self._heap[0][0] < before:
            yield heapq.heappop(self._heap)[2]


def history(
    customers: int,
    days: int,
    seed: int,
    start: date = DEFAULT_START,
    timezone: str = DEFAULT_TIMEZONE,
) -> Iterator[Envelope]:
    """Inbound envelopes for `customers` customers over `days` days, in occurred_at order.

    Arguments are checked at the call (an unknown zone raises ZoneInfoNotFoundError, a
    negative count Refused, a ValueError); the events are generated lazily, one day at a time.
    """
    if customers < 0 or days < 0:
        raise Refused("customers" if customers < 0 else "days", "must not be negative")
    return _generate(customers, days, seed, start, ZoneInfo(timezone))


def _generate(
    customers: int, days: int, seed: int, start: date, zone: ZoneInfo
) -> Iterator[Envelope]:
    timeline = _Timeline(start, days, zone)
    sims = [
        _Customer(plan, rng, random.Random(f"{seed}/{plan.customer_id}/costs"))
        for plan, rng in _customers(customers, seed)
    ]
    by_billing_day: dict[int, list[_Customer]] = {}
    for c in sims:
        by_billing_day.setdefault(c.plan.billing_day, []).append(c)
    for offset in range(days):
        day = start + timedelta(days=offset)
        timeline.today = day
        if offset == 0:
            for c in sims:
                _upsert(timeline, c)
        for c in by_billing_day.get(day.day, ()):
            _bill(timeline, c, day)
        timeline.emit(None, day, "clock.tick", f"tick-{day.isoformat()}", {})
        yield from timeline.release(timeline.at(day + timedelta(days=1), 0).timestamp())


# About one customer in ten lives in a zone of its own, chosen from its id (not from the
# random stream, so every other draw of a seeded history stays as it was).
OWN_ZONES = ("America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Sydney")


def own_zone(customer_id: str) -> str | None:
    """The customer's own time zone in the simulation, or None for the policy's."""
    hashed = zlib.crc32(customer_id.encode())
    return OWN_ZONES[hashed // 10 % len(OWN_ZONES)] if hashed % 10 == 0 else None


def _upsert(t: _Timeline, c: _Customer) -> None:
    p = c.plan
    data = {
        "name": p.name,
        "locale": p.locale,
        "billing_email": p.billing_email,
        "partner_contact_email": p.partner_contact_email,
        "tags": list(p.tags),
        "subscription_ids": [s.subscription_id for s in p.subscriptions],
    }
    zone = own_zone(p.customer_id)
    if zone is not None:
        data["timezone"] = zone
    # In the first hour of the first day: the customer exists before its first invoice.
    t.emit(c, t.start, "customer.upserted", f"{p.customer_id}-upserted-1", data, hours=(0, 1))


def _bill(t: _Timeline, c: _Customer, day: date) -> None:
    if c.write_off_on is not None and day >= c.write_off_on:
        return  # written off: the account is closed
    rng = c.rng
    monthly: dict[str, list[Subscription]] = {}
    for s in c.plan.subscriptions:
        if not s.annual:
            monthly.setdefault(s.currency, []).append(s)
        elif day.month == c.plan.annual_month:
            # A year up front, from the day it is invoiced.
            period = (day, _add_year(day) - timedelta(days=1))
            _invoice(t, c, day, currency=s.currency, cents=s.price_cents, subs=[s], period=period)
    # A monthly invoice bills the calendar month before it.
    last = day.replace(day=1) - timedelta(days=1)
    for currency, subs in monthly.items():
        # Seats and usage move a little from month to month.
        parts = [round(s.price_cents * rng.uniform(0.9, 1.1)) for s in subs]
        cents = min(max(sum(parts), MIN_CENTS), MAX_CENTS)
        _invoice(
            t, c, day, currency=currency, cents=cents, subs=subs, period=(last.replace(day=1), last)
        )


def _add_year(day: date) -> date:
    return day.replace(year=day.year + 1, day=min(day.day, 28) if day.month == 2 else day.day)


def _costs(
    t: _Timeline, c: _Customer, inv: _Invoice, subs: list[Subscription], period: tuple[date, date]
) -> None:
    """What Microsoft bills the partner for `subs` over `period`: one line per subscription,
    its share of the invoice at 80 to 90 %, arriving on the invoice's day."""
    rng = c.costs
    own = zlib.crc32(c.plan.customer_id.encode()) % COST_OWN_CURRENCY == 0
    total = sum(s.price_cents for s in subs)
    for s in subs:
        share = inv.cents * s.price_cents / total * rng.uniform(*COST_SHARE)
        currency = s.currency if own else "USD"
        cents = max(1, round(share * USD_PER[s.currency] / USD_PER[currency]))
        start, end = period
        data = {
            "cost_id": f"COST-{s.subscription_id}-{start.isoformat()}",
            "subscription_id": s.subscription_id,
            "charge_start": start.isoformat(),
            "charge_end": end.isoformat(),
            "amount": money(cents),
            "currency": currency,
            "invoice_ref": f"G{inv.issued_on:%Y%m}{zlib.crc32(s.subscription_id.encode()):010d}",
        }
        event_id = f"{data['cost_id']}-recorded"
        t.emit(c, inv.issued_on, "cost.recorded", event_id, data, hours=(1, 24), rng=rng)


def _invoice(
    t: _Timeline,
    c: _Customer,
    day: date,
    *,
    currency: str,
    cents: int,
    subs: list[Subscription],
    period: tuple[date, date],
) -> None:
    rng = c.rng
    c.invoices += 1
    inv = _Invoice(
        f"INV-{c.plan.customer_id}-{c.invoices}", currency, cents, day, day + timedelta(days=30)
    )
    data = {
        "invoice_id": inv.invoice_id,
        "currency": currency,
        "amount": money(cents),
        "issued_on": day.isoformat(),
        "due_on": inv.due_on.isoformat(),
        "subscription_ids": [s.subscription_id for s in subs],
        "period_start": period[0].isoformat(),
        "period_end": period[1].isoformat(),
    }
    t.emit(c, day, "invoice.issued", f"{inv.invoice_id}-issued", data, hours=(1, 24))
    _costs(t, c, inv, subs, period)
    if c.plan.profile == "never":
        _never_pays(t, c, inv)
        return
    roll = rng.random()
    if roll < DISPUTE_RATE:
        _dispute(t, c, inv)
        return
    payable, credited_on = cents, None
    if roll < DISPUTE_RATE + CREDIT_NOTE_RATE:
        credited_on = day + timedelta(days=rng.randint(2, 25))
        credit = min(cents - 1, max(1, round(cents * rng.uniform(0.05, 0.3))))
        _adjust(t, c, inv, on=credited_on, delta=-credit, reason=rng.choice(_CREDIT_NOTES))
        payable = cents - credit
    _pay_by_profile(t, c, inv, payable=payable, full=cents, credited_on=credited_on)


def _pay_by_profile(
    t: _Timeline, c: _Customer, inv: _Invoice, *, payable: int, full: int, credited_on: date | None
) -> None:
    """Pay `payable` as the customer's profile does; `full` if paid before a credit note."""
    rng = c.rng
    due = inv.due_on

    def amount(on: date) -> int:
        return payable if credited_on is not None and credited_on < on else full

    profile = c.plan.profile
    if profile == "partial":
        parts = rng.randint(2, 3)
        on = due + timedelta(days=rng.randint(-5, 3))
        for part in _split(rng, amount(on), parts):
            _pay(t, c, inv, on, part, targeted=True)
            on += timedelta(days=rng.randint(7, 20))
        return
    if profile == "on_time" or rng.random() < LATE_ON_TIME_RATE:
        if profile == "on_time" and rng.random() < SLIP_RATE:
            on = due + timedelta(days=rng.randint(1, 10))
        else:
            on = due - timedelta(days=rng.randint(0, 6))  # a few days before the due date
        if rng.random() < FAILED_BEFORE_ON_TIME_RATE:
            _fail(t, c, inv, on - timedelta(days=1), will_retry=True)
        _pay(t, c, inv, on, amount(on), targeted=rng.random() < 0.6)
        return
    _pay_late(t, c, inv, amount)


def _pay_late(t: _Timeline, c: _Customer, inv: _Invoice, amount: Callable[[date], int]) -> None:
    """Late: 5 to 40 days after the due date, perhaps after a failed attempt or a promise."""
    rng = c.rng
    due = inv.due_on
    on = due + timedelta(days=rng.randint(5, 40))
    in_flight = rng.random() < PENDING_RATE
    if rng.random() < FAILED_BEFORE_LATE_RATE:
        _fail(t, c, inv, due + timedelta(days=rng.randint(-1, 1)), will_retry=rng.random() < 0.5)
    if rng.random() < PROMISE_RATE:
        placed = due + timedelta(days=rng.randint(2, 8))
        until = placed + timedelta(days=rng.randint(10, 20))
        hold_id = _promise(t, c, placed, until)
        if rng.random() < PROMISE_KEPT_RATE:
            on = placed + timedelta(days=rng.randint(1, (until - placed).days))
            if rng.random() < 0.5:  # the collector closes the kept promise
                _release(t, c, hold_id, on + timedelta(days=1), "promise kept")
        else:
            on = until + timedelta(days=rng.randint(3, 25))
    targeted = rng.random() < 0.5
    if in_flight and on > due + timedelta(days=SUSPEND_DAY):
        pending = _in_flight(t, c, inv, amount, PENDING_OUTCOMES)
        if pending.outcome == "paid":
            _pay(
                t,
                c,
                inv,
                pending.settles,
                pending.cents,
                targeted=targeted,
                payment_id=pending.payment_id,
            )
            return
        # The money comes later, in another payment.
        on = max(on, pending.expected_by + timedelta(days=1 + pending.later))
    _pay(t, c, inv, on, amount(on), targeted=targeted)


@dataclass(frozen=True, slots=True)
class _InFlight:
    payment_id: str
    cents: int
    expected_by: date
    outcome: str  # a key of PENDING_OUTCOMES
    settles: date  # when it arrives or fails (not used when it lapses)
    later: int  # days after expected_by that a payment after a failure or a lapse may take


def _in_flight(
    t: _Timeline,
    c: _Customer,
    inv: _Invoice,
    amount: Callable[[date], int],
    outcomes: dict[str, float],
) -> _InFlight:
    """Announce a payment in flight for `inv` a few days before its suspension date; emit its
    failure if that is how it ends. The caller pays it (`paid`) or pays later."""
    rng = c.rng
    suspension = inv.due_on + timedelta(days=SUSPEND_DAY)
    announced = suspension - timedelta(days=rng.randint(1, 3))
    expected_by = suspension + timedelta(days=rng.randint(2, 6))
    outcome = rng.choices(tuple(outcomes), weights=tuple(outcomes.values()))[0]
    settles = suspension + timedelta(days=rng.randint(1, (expected_by - suspension).days))
    later = rng.randint(0, 6)
    c.payments += 1
    payment_id = f"PAY-{c.plan.customer_id}-{c.payments}"
    cents = amount(announced)
    data = {
        "payment_id": payment_id,
        "amount": money(cents),
        "currency": inv.currency,
        "expected_by": expected_by.isoformat(),
    }
    t.emit(c, announced, "payment.pending", f"{payment_id}-pending", data)
    if outcome == "failed":
        _fail(t, c, inv, settles, will_retry=False, payment_id=payment_id)
    return _InFlight(payment_id, cents, expected_by, outcome, settles, later)


def _never_pays(t: _Timeline, c: _Customer, inv: _Invoice) -> None:
    rng = c.rng
    if c.write_off_on is None:
        c.write_off_on = inv.due_on + timedelta(days=rng.randint(90, 150))  # 3 to 5 months
    if rng.random() < 0.3:
        _fail(t, c, inv, inv.due_on + timedelta(days=rng.randint(0, 10)), will_retry=False)
    if not c.promised and rng.random() < 0.4:  # one promise, broken
        c.promised = True
        placed = inv.due_on + timedelta(days=rng.randint(5, 20))
        _promise(t, c, placed, placed + timedelta(days=rng.randint(10, 20)))
    if rng.random() < NEVER_PENDING_RATE:  # a transfer announced that never comes
        _in_flight(t, c, inv, lambda _on: inv.cents, {"failed": 50, "lapsed": 50})
    data = {"invoice_id": inv.invoice_id, "reason": "written off"}
    t.emit(c, c.write_off_on, "invoice.voided", f"{inv.invoice_id}-voided", data)


def _dispute(t: _Timeline, c: _Customer, inv: _Invoice) -> None:
    """A dispute on an invoice (whole or part), released later; the rest paid as usual."""
    rng = c.rng
    placed = inv.due_on + timedelta(days=rng.randint(-7, 7))
    whole = rng.random() < 0.5
    disputed = inv.cents if whole else max(1, round(inv.cents * rng.uniform(0.1, 0.6)))
    c.holds += 1
    hold_id = f"HOLD-{c.plan.customer_id}-{c.holds}"
    data: Envelope = {"hold_id": hold_id, "kind": "dispute", "invoice_id": inv.invoice_id}
    if not whole:
        data["amount"] = money(disputed)
    data["reason"] = rng.choice(_DISPUTES)
    data["by"] = _collector(rng)
    t.emit(c, placed, "hold.placed", f"{hold_id}-placed", data)
    released = placed + timedelta(days=rng.randint(10, 40))
    upheld = rng.random() < 0.45
    _release(t, c, hold_id, released, "dispute upheld" if upheld else "dispute rejected")
    if upheld and whole:
        data = {"invoice_id": inv.invoice_id, "reason": "dispute upheld"}
        t.emit(c, released, "invoice.voided", f"{inv.invoice_id}-voided", data)
    elif upheld:
        _adjust(t, c, inv, on=released, delta=-disputed, reason="credit note: dispute upheld")
    else:
        _pay(t, c, inv, released + timedelta(days=rng.randint(2, 15)), disputed, targeted=True)
    if not whole:
        rest = inv.cents - disputed
        _pay_by_profile(t, c, inv, payable=rest, full=rest, credited_on=None)


def _pay(
    t: _Timeline,
    c: _Customer,
    inv: _Invoice,
    on: date,
    cents: int,
    *,
    targeted: bool,
    reversible: bool = True,
    payment_id: str | None = None,
) -> None:
    """A payment received; `payment_id`: the id of the payment in flight it settles."""
    rng = c.rng
    if payment_id is None:
        c.payments += 1
        payment_id = f"PAY-{c.plan.customer_id}-{c.payments}"
    data: Envelope = {"payment_id": payment_id, "currency": inv.currency, "amount": money(cents)}
    if targeted:
        data["invoice_id"] = inv.invoice_id
    t.emit(c, on, "payment.received", f"{payment_id}-received", data)
    if reversible and rng.random() < CHARGEBACK_RATE:
        reversed_on = on + timedelta(days=rng.randint(14, 35))
        data = {"payment_id": payment_id, "reason": rng.choice(_CHARGEBACKS)}
        t.emit(c, reversed_on, "payment.reversed", f"{payment_id}-reversed", data)
        if rng.random() < 0.7:  # paid again, some weeks later
            again = reversed_on + timedelta(days=rng.randint(5, 30))
            _pay(t, c, inv, again, cents, targeted=targeted, reversible=False)


def _fail(
    t: _Timeline,
    c: _Customer,
    inv: _Invoice,
    on: date,
    *,
    will_retry: bool,
    payment_id: str | None = None,
) -> None:
    c.notes += 1
    data: Envelope = {"invoice_id": inv.invoice_id}
    if payment_id is not None:  # a payment in flight that failed
        data["payment_id"] = payment_id
    data["reason"] = c.rng.choice(_FAILURES)
    data["will_retry"] = will_retry
    t.emit(c, on, "payment.failed", f"{inv.invoice_id}-failed-{c.notes}", data)


def _adjust(
    t: _Timeline, c: _Customer, inv: _Invoice, *, on: date, delta: int, reason: str
) -> None:
    c.notes += 1
    data = {"invoice_id": inv.invoice_id, "amount_delta": money(delta), "reason": reason}
    t.emit(c, on, "invoice.adjusted", f"{inv.invoice_id}-adjusted-{c.notes}", data)


def _promise(t: _Timeline, c: _Customer, placed: date, until: date) -> str:
    c.holds += 1
    hold_id = f"HOLD-{c.plan.customer_id}-{c.holds}"
    data = {
        "hold_id": hold_id,
        "kind": "promise_to_pay",
        "until": until.isoformat(),
        "reason": "customer promised to pay",
        "by": _collector(c.rng),
    }
    t.emit(c, placed, "hold.placed", f"{hold_id}-placed", data)
    return hold_id


def _release(t: _Timeline, c: _Customer, hold_id: str, on: date, reason: str) -> None:
    data = {"hold_id": hold_id, "reason": reason, "by": _collector(c.rng)}
    t.emit(c, on, "hold.released", f"{hold_id}-released", data)


def _collector(rng: random.Random) -> str:
    return f"collector-{rng.randint(1, 6)}"


def _split(rng: random.Random, cents: int, parts: int) -> list[int]:
    """`cents` in `parts` positive parts (fewer when there are too few cents)."""
    parts = max(1, min(parts, cents))
    cuts = sorted(rng.sample(range(1, cents), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, cents], strict=True)]


def write_jsonl(path: str | os.PathLike[str], events: Iterable[Envelope]) -> int:
    """Write one compact JSON object per line (UTF-8, keys in order); return the count."""
    count = 0
    with Path(path).open("wb") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())
            out.write(b"\n")
            count += 1
    return count
