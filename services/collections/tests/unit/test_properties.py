"""Properties of the whole engine (aging + collections, as the `Driver` composes them) over random
histories: customers, invoices in one or two currencies, payments (targeted or not, partial),
reversals, adjustments, voids, holds, profile changes, failed payments and daily ticks with
some downtime.

The policies are small so that a few weeks of history climb the whole ladder: SMALL is the
standard policy shrunk; WIDE has a gate on the first stage, suspends all subscriptions, has a
stage after the suspend stage and one reminder.
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as observe
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Run, Story, make_policy, run, stage_index, tick

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import CURRENT, Book
from billstate_shared.contracts import (
    AccessRestore,
    AccessSuspend,
    ClockTick,
    Event,
    InvoiceAged,
    NoticeRequested,
    PaymentFailed,
    PaymentPending,
    PaymentReceived,
    StageEntered,
)
from billstate_shared.domain.policy import Policy

SMALL: Policy = make_policy(
    policy="small",
    version=7,
    minimum_overdue={"USD": "5.00", "EUR": "5.00", "default": "0.01"},
    reminders={"days_before_due": [3, 1]},
    stages=[
        {"name": "overdue", "days_past_due": 1, "notify": ["customer"]},
        {"name": "final_notice", "days_past_due": 5, "notify": ["customer", "partner"]},
        {
            "name": "suspended",
            "days_past_due": 9,
            "min_days_in_previous": 3,
            "action": "suspend",
            "scope": "overdue_subscriptions",
            "notify": ["customer", "partner"],
        },
    ],
    exempt_tags=["strategic"],
    promise_to_pay={"max_days": 5},
)
WIDE: Policy = make_policy(
    policy="wide",
    version=2,
    minimum_overdue={"USD": "5.00", "EUR": "50.00"},
    reminders={"days_before_due": [2]},
    stages=[
        {"name": "late", "days_past_due": 2, "min_days_in_previous": 1, "notify": ["customer"]},
        {
            "name": "suspended",
            "days_past_due": 5,
            "min_days_in_previous": 2,
            "action": "suspend",
            "scope": "all_subscriptions",
            "notify": ["customer", "partner"],
        },
        {"name": "agency", "days_past_due": 9, "notify": ["partner"]},
    ],
    exempt_tags=["strategic"],
    promise_to_pay={"max_days": 4},
)
# SMALL on business days: weekends, Taiwan's public holidays and two of the partner's own.
CALENDAR: Policy = make_policy(
    **{
        **SMALL.model_dump(by_alias=True, exclude={"calendar"}),
        "policy": "calendar",
        "calendar": {
            "suspend_on": "business_days",
            "holidays": "TW",
            "extra_holidays": ["2026-10-14", "2026-10-22"],
        },
        "payments_in_flight": {"max_days": 6},
    }
)
POLICIES = st.sampled_from((SMALL, WIDE, CALENDAR))
START = date(2026, 10, 1)
INVOICE_AMOUNTS = ("3.00", "20.00", "50.00", "120.00")
PAYMENT_AMOUNTS = ("2.50", "20.00", "50.00", "100.00", "250.00")
LEDGER_TYPES = frozenset(
    {"invoice.issued", "invoice.adjusted", "invoice.voided", "payment.received", "payment.reversed"}
)
# BILLSTATE_PROPERTY_EXAMPLES=2000 for a long hunt; the default keeps the file well under 60 s.
SETTINGS = settings(
    max_examples=int(os.environ.get("BILLSTATE_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- histories ------------------------------------------------------------------------------


@dataclass
class Customer:
    story: Story
    currencies: tuple[str, ...]
    invoices: list[tuple[str, str]]  # (invoice id, currency)
    payments: list[str]
    holds: list[str]
    subs: tuple[str, ...]
    pending: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)


def _issue(draw: st.DrawFn, c: Customer, day: date) -> Event:
    s = c.story
    invoice_id = f"{s.customer}-I{len(c.invoices)}"
    currency = draw(st.sampled_from(c.currencies))
    due = day + timedelta(days=draw(st.integers(-12, 12)))
    subs = draw(st.lists(st.sampled_from(c.subs), max_size=2, unique=True))
    c.invoices.append((invoice_id, currency))
    return s.issue(
        invoice_id,
        draw(st.sampled_from(INVOICE_AMOUNTS)),
        due,
        currency=currency,
        issued_on=min(day, due),
        subs=subs,
    )


def _pay(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    s = c.story
    payment_id = f"{s.customer}-P{len(c.payments)}"
    c.payments.append(payment_id)
    target: str | None = None
    currency = draw(st.sampled_from(c.currencies))
    choice = draw(st.sampled_from(("none", "none", "known", "future")))
    if choice == "known" and c.invoices:
        target, currency = draw(st.sampled_from(c.invoices))
    elif choice == "future":
        target = f"{s.customer}-I{len(c.invoices) + draw(st.integers(0, 2))}"
    amount = draw(st.sampled_from(PAYMENT_AMOUNTS))
    return s.pay(payment_id, amount, currency=currency, invoice_id=target)


def _reverse(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    return c.story.reverse(draw(st.sampled_from(c.payments)))


def _adjust(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    invoice_id, _ = draw(st.sampled_from(c.invoices))
    return c.story.adjust(invoice_id, draw(st.sampled_from(("-10.00", "-60.00", "15.00"))))


def _void(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    invoice_id, _ = draw(st.sampled_from(c.invoices))
    return c.story.void(invoice_id)


def _dispute(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    s = c.story
    invoice_id, _ = draw(st.sampled_from(c.invoices))
    hold_id = f"{s.customer}-H{len(c.holds)}"
    c.holds.append(hold_id)
    return s.dispute(hold_id, invoice_id, draw(st.sampled_from((None, "10.00"))))


def _hold(draw: st.DrawFn, c: Customer, day: date) -> Event:
    s = c.story
    hold_id = f"{s.customer}-H{len(c.holds)}"
    c.holds.append(hold_id)
    if draw(st.booleans()):
        return s.promise(hold_id, day + timedelta(days=draw(st.integers(0, 8))))
    return s.hold(hold_id, "manual")


def _release(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    return c.story.release(draw(st.sampled_from(c.holds)))


def _fail(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    named = [invoice_id for invoice_id, _ in c.invoices]
    # Sometimes the failure of a payment in flight (announced or not).
    payment_id = draw(st.sampled_from([None, None, *c.pending, f"{c.story.customer}-P99"]))
    return c.story.fail(draw(st.sampled_from([None, *named])), payment_id=payment_id)


def _pending(draw: st.DrawFn, c: Customer, day: date) -> Event:
    """A payment in flight; about half of them arrive later as a payment with the same id."""
    s = c.story
    payment_id = f"{s.customer}-P{len(c.payments)}"
    c.payments.append(payment_id)
    c.pending.append(payment_id)
    return s.pending(
        payment_id,
        draw(st.sampled_from(PAYMENT_AMOUNTS)),
        day + timedelta(days=draw(st.integers(-1, 9))),
        currency=draw(st.sampled_from(c.currencies)),
    )


def _settle(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    """The payment in flight arrives (perhaps with another amount), once: a payment id is
    one payment."""
    payment_id = draw(st.sampled_from(c.pending))
    c.pending.remove(payment_id)
    amount = draw(st.sampled_from(PAYMENT_AMOUNTS))
    return c.story.pay(payment_id, amount, currency=draw(st.sampled_from(c.currencies)))


def _upsert(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    tags = ["strategic"] if draw(st.integers(0, 5)) == 0 else ["smb"]
    subs = draw(st.lists(st.sampled_from(c.subs), unique=True))
    return c.story.upsert(tags=tags, subs=subs, locale=draw(st.sampled_from(("en", "zh-TW"))))


def _claim(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    """A support ticket, most often a payment claim."""
    ticket_id = f"{c.story.customer}-T{len(c.tickets)}"
    c.tickets.append(ticket_id)
    topics = ("payment_claimed", "payment_claimed", "dispute", "billing_question")
    return c.story.support(ticket_id, draw(st.sampled_from(topics)))


def _resolve(draw: st.DrawFn, c: Customer, _day: date) -> Event:
    """A ticket resolved (perhaps again, perhaps one never opened)."""
    return c.story.resolve(draw(st.sampled_from([*c.tickets, f"{c.story.customer}-T99"])))


INBOUND: dict[str, Callable[[st.DrawFn, Customer, date], Event]] = {
    "claim": _claim,
    "resolve": _resolve,
    "issue": _issue,
    "pay": _pay,
    "reverse": _reverse,
    "adjust": _adjust,
    "void": _void,
    "dispute": _dispute,
    "hold": _hold,
    "release": _release,
    "fail": _fail,
    "upsert": _upsert,
    "pending": _pending,
    "settle": _settle,
}


def _inbound(draw: st.DrawFn, c: Customer, day: date) -> Event:
    kinds = ["issue", "issue", "issue", "pay", "pay", "pay", "upsert", "hold", "fail", "pending"]
    kinds += ["claim"]
    if c.tickets:
        kinds += ["resolve"]
    if c.pending:
        kinds += ["settle"]
    if c.invoices:
        kinds += ["adjust", "void", "dispute"]
    if c.payments:
        kinds += ["reverse"]
    if c.holds:
        kinds += ["release"]
    return INBOUND[draw(st.sampled_from(kinds))](draw, c, day)


@st.composite
def histories(draw: st.DrawFn, *, gaps: bool = True, quiet_tail: int = 0) -> list[Event]:
    """Inbound events in order: a tick a day (sometimes days apart), events in between, and
    optionally `quiet_tail` days of ticks alone at the end."""
    names = draw(st.sampled_from((("c1",), ("c1", "c2"))))
    customers = {
        name: Customer(
            Story(customer=name),
            draw(st.sampled_from((("USD",), ("USD", "EUR")))),
            [],
            [],
            [],
            tuple(f"{name}-s{n}" for n in range(3)),
        )
        for name in names
    }
    events: list[Event] = []
    day = START
    for _ in range(draw(st.integers(3, 30))):
        clock = tick(day)
        for c in customers.values():
            c.story.now = clock.occurred_at
        for n in range(draw(st.integers(0, 3))):
            c = customers[draw(st.sampled_from(names))]
            c.story.now = clock.occurred_at + timedelta(hours=1, minutes=n)
            events.append(_inbound(draw, c, day))
        step = draw(st.sampled_from((1, 1, 1, 1, 2, 5))) if gaps else 1
        day += timedelta(days=step)
        events.append(tick(day))
    events.extend(tick(day + timedelta(days=n)) for n in range(1, quiet_tail + 1))
    return events


# ---- helpers ---------------------------------------------------------------------------------


def segments(events: list[Event]) -> list[list[Event]]:
    """The history cut after every tick: each segment ends with its tick."""
    cut: list[list[Event]] = [[]]
    for event in events:
        cut[-1].append(event)
        if isinstance(event, ClockTick):
            cut.append([])
    return [seg for seg in cut if seg]


def by_customer(r: Run) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for e in r.outputs:
        if e.event_type != "invoice.aged":
            found.setdefault(e.customer_id, []).append(e)
    return found


def state(book: Book, policy: Policy) -> tuple[Any, ...]:
    """What the next climb starts from and what it looks at."""
    assert book.as_of is not None
    a = assess(book, book.as_of, policy)
    ledger = book.ledger
    return (
        sorted((i.invoice_id, i.open) for i in ledger.invoices.values()),
        sorted((c, ledger.credit(c)) for c in ("USD", "EUR")),
        a.overdue,
        a.delinquent_currencies,
        a.anchor.invoice_id if a.anchor else None,
        a.days_past_due,
        a.target,
        a.scope,
    )


def stage_state(book: Book) -> tuple[Any, ...]:
    return (book.stage, book.entered_on, book.suspended, sorted(book.holds))


def suspend_index(policy: Policy) -> int:
    index = policy.suspend_stage_index
    assert index is not None
    return index


# ---- (a) no skipped stages, each with its notices ---------------------------------------------


@SETTINGS
@given(POLICIES, histories())
def test_a_no_stage_is_entered_before_every_stage_below_it(
    policy: Policy, events: list[Event]
) -> None:
    r = run(events, policy=policy)
    for customer, outputs in by_customer(r).items():
        stage = CURRENT
        for i, e in enumerate(outputs):
            if not isinstance(e, StageEntered):
                continue
            index = stage_index(policy, e.data.stage)
            assert stage_index(policy, e.data.previous) == stage, (customer, e.data)
            # Everything up to the next stage change belongs to this one.
            rest = []
            for later in outputs[i + 1 :]:
                if isinstance(later, StageEntered):
                    break
                rest.append(later)
            own = [
                n for n in rest if isinstance(n, NoticeRequested) and n.data.kind == e.data.stage
            ]
            if index > stage:
                assert index == stage + 1, f"{customer} skipped to {e.data.stage}: {e.data.why}"
                assert e.data.why.rule.startswith("rule 6")
                notified = sorted(n.data.audience for n in own)
                assert notified == sorted(policy.stages[index].notify), (customer, e.data.stage)
            else:
                assert index < stage, "a stage change that is no change"
                assert e.data.why.rule.startswith("rule 7")
                assert own == [], "a drop sends no stage notices"
            stage = index


# ---- (b) nobody stays suspended (or in any stage) while not delinquent -------------------------


@SETTINGS
@given(POLICIES, histories())
def test_b_nobody_stays_in_a_stage_while_not_delinquent(
    policy: Policy, events: list[Event]
) -> None:
    """Checked after every input, ticks included; stronger than "at a tick"."""
    r = run(policy=policy)
    for inbound in events:
        r.feed(inbound)
        for book in r.driver.books.values():
            if book.as_of is None:
                assert book.stage == CURRENT
                continue
            a = assess(book, book.as_of, policy)
            # Rule 7: whatever lowers the target, the customer is there at once.
            assert book.stage <= a.target, (book.customer_id, book.stage, a)
            if not a.delinquent:
                assert book.stage == CURRENT
            if book.suspended:
                assert book.stage >= suspend_index(policy)
                assert a.delinquent
                assert a.blocked_by is None
                # Rule 8, at once: only what the scope covers stays suspended.
                assert set(book.suspended) <= set(a.scope)


# ---- (c) restores name exactly the suspended subscriptions -------------------------------------


@SETTINGS
@given(POLICIES, histories())
def test_c_restores_name_exactly_what_was_suspended(policy: Policy, events: list[Event]) -> None:
    r = run(events, policy=policy)
    for customer, outputs in by_customer(r).items():
        held: Counter[str] = Counter()
        for e in outputs:
            if isinstance(e, AccessSuspend):
                for sub in e.data.subscription_ids:
                    assert held[sub] == 0, f"{sub} suspended twice"
                    held[sub] += 1
            elif isinstance(e, AccessRestore):
                for sub in e.data.subscription_ids:
                    assert held[sub] == 1, f"{sub} restored but not suspended"
                    held[sub] -= 1
        still = sorted(s for s, n in held.items() if n)
        assert still == sorted(r.book(customer).suspended)


# ---- (d) duplicates change nothing ---------------------------------------------------------------


@SETTINGS
@given(POLICIES, histories(), st.randoms(use_true_random=False))
def test_d_duplicated_events_change_nothing(
    policy: Policy, events: list[Event], rnd: random.Random
) -> None:
    """Each duplicate is sent again somewhere later (a producer retry, a redelivery), ticks
    included."""
    expected = run(events, policy=policy).encoded()
    noisy = list(events)
    for _ in range(rnd.randint(1, 6)):
        original = rnd.randrange(len(events))
        position = noisy.index(events[original]) + 1
        noisy.insert(rnd.randint(position, len(noisy)), events[original])
    assert run(noisy, policy=policy).encoded() == expected


# ---- (e) reordering within a day ---------------------------------------------------------------


@SETTINGS
@given(POLICIES, histories(), st.randoms(use_true_random=False))
def test_e_reordering_a_days_ledger_events_gives_the_same_state_at_the_next_tick(
    policy: Policy, events: list[Event], rnd: random.Random
) -> None:
    """Invoice and payment events between two ticks are shuffled among their places.

    The ledger and the assessment (overdue amounts, delinquency, anchor, age, target, scope)
    at the next tick never depend on that order (rule 1). The stage does, through rule 7:
    a payment seen before an older invoice drops the customer at once (with a restore),
    which the other order never does, and the climb then starts again from below; and
    through the end of a payment in flight, which resumes the climb on its own event.
    So the stage, its date, the suspended subscriptions and the holds must agree as long as
    no drop happened in either order.
    """
    original = segments(events)
    shuffled: list[list[Event]] = []
    for seg in original:
        places = [i for i, e in enumerate(seg) if e.event_type in LEDGER_TYPES]
        moved = [seg[i] for i in places]
        rnd.shuffle(moved)
        new = list(seg)
        for i, e in zip(places, moved, strict=True):
            new[i] = e
        shuffled.append(new)
    a, b = run(policy=policy), run(policy=policy)
    dropped = False
    in_flight = {e.data.payment_id for e in events if isinstance(e, PaymentPending)}
    for seg_a, seg_b in zip(original, shuffled, strict=True):
        out_a = a.feed(seg_a)
        out_b = b.feed(seg_b)
        dropped = dropped or any(
            isinstance(e, StageEntered) and e.data.why.rule.startswith("rule 7")
            for e in (*out_a, *out_b)
        )
        # The end of a payment in flight resumes the climb on that event, between ticks:
        # what it finds depends on what came before it that day, as a drop does.
        dropped = dropped or any(
            isinstance(e, PaymentReceived | PaymentFailed) and e.data.payment_id in in_flight
            for e in seg_a
        )
        assert sorted(a.driver.books) == sorted(b.driver.books)
        for customer, book_a in a.driver.books.items():
            book_b = b.driver.books[customer]
            if book_a.as_of is None:
                assert book_b.as_of is None
                continue
            assert state(book_a, policy) == state(book_b, policy)
            if not dropped:
                assert stage_state(book_a) == stage_state(book_b)
    observe(f"no drop in either order: {not dropped}")


# ---- (f) determinism ---------------------------------------------------------------------------


@SETTINGS
@given(POLICIES, histories())
def test_f_the_same_input_twice_gives_byte_identical_output(
    policy: Policy, events: list[Event]
) -> None:
    first = run(events, policy=policy).encoded()
    second = run(events, policy=policy).encoded()
    assert first == second


# ---- (g) suspension_on is a promise the engine keeps --------------------------------------------


@SETTINGS
@given(POLICIES, histories(gaps=False, quiet_tail=45))
def test_g_suspension_on_is_the_day_the_suspend_stage_is_entered(
    policy: Policy, events: list[Event]
) -> None:
    """Every notice sent before the suspend stage carries `suspension_on`. For the notices
    sent after a customer's last inbound event (nothing paid, nothing changed, daily ticks
    from there on), the suspend stage is entered on exactly that date, or never if it is
    null.

    Limits of rule 11 ("today" is the as_of of the latest invoice.aged event), where the
    engine cannot know the date: a customer with nothing open gets no aged events, so a
    notice sent between ticks after such a quiet spell (a chargeback reopens an invoice, then
    a payment fails) counts from the last date that customer was aged, and the date it
    promises is early by the days of the spell. A customer never aged at all has no "today";
    its notice counts from the event's own date, as if a tick could still come that day (in
    production ticks come every 15 minutes; here, daily), so it may be a day early, never
    late. Those notices are not checked here; every notice whose `as_of` is the current date
    for a customer aged before is.
    """
    suspend = suspend_index(policy)
    r = run(policy=policy)
    outputs: list[tuple[int, date, Any]] = []
    last_input: dict[str, int] = {}
    today = START
    for position, inbound in enumerate(events):
        if isinstance(inbound, ClockTick):
            today = inbound.occurred_at.astimezone(policy.zone).date()
        else:
            last_input[inbound.customer_id] = position
        outputs.extend((position, today, e) for e in r.feed(inbound))
    for customer, quiet_from in last_input.items():
        _check_suspension_on(
            policy, outputs, suspend=suspend, customer=customer, quiet_from=quiet_from, end=today
        )


def _check_suspension_on(
    policy: Policy,
    outputs: list[tuple[int, date, Any]],
    *,
    suspend: int,
    customer: str,
    quiet_from: int,
    end: date,
) -> None:
    """Test (g) for one customer: `outputs` are (input position, business date, output)."""
    entered = [
        e.data.as_of
        for p, _, e in outputs
        if isinstance(e, StageEntered)
        and e.customer_id == customer
        and p >= quiet_from
        and e.data.stage == policy.stages[suspend].name
    ]
    stage = CURRENT
    aged = False
    for p, day, e in outputs:
        if e.customer_id != customer:
            continue
        if isinstance(e, InvoiceAged):
            aged = True
            continue
        if isinstance(e, StageEntered):
            stage = stage_index(policy, e.data.stage)
            continue
        if not isinstance(e, NoticeRequested) or stage >= suspend:
            continue
        assert "suspension_on" in e.data.facts, e.data
        if p < quiet_from or not aged or e.data.facts["as_of"] != day.isoformat():
            continue
        promised = e.data.facts["suspension_on"]
        if promised is None:
            assert entered == [], (e.data.kind, e.data.facts)
        elif date.fromisoformat(str(promised)) < end:
            observe(f"suspension_on kept ({policy.name}, {e.data.kind})")
            assert entered[:1] == [date.fromisoformat(str(promised))], (
                e.data.kind,
                e.data.facts,
            )


def test_histories_reach_the_whole_ladder() -> None:
    """The generator is not vacuous: an unpaid invoice climbs to suspension in it."""
    s = Story(customer="c1")
    r = run(
        s.issue("c1-I0", Decimal("50.00"), START, subs=["c1-s0"]),
        [tick(START + timedelta(days=n)) for n in range(20)],
        policy=SMALL,
    )
    assert [stage for _, stage in r.stages()] == ["overdue", "final_notice", "suspended"]


# ---- (h) a suspension happens on a business date only --------------------------------------


@SETTINGS
@given(POLICIES, histories())
def test_h_nothing_is_suspended_on_a_date_that_is_not_a_business_date(
    policy: Policy, events: list[Event]
) -> None:
    r = run(policy=policy)
    for inbound in events:
        for e in r.feed(inbound):
            if (
                isinstance(e, StageEntered)
                and stage_index(policy, e.data.stage) == policy.suspend_stage_index
            ):
                assert policy.calendar.closed(e.data.as_of) is None, e.data.why.text
            if isinstance(e, AccessSuspend):
                as_of = r.book(e.customer_id).as_of
                assert as_of is not None
                assert policy.calendar.closed(as_of) is None, (as_of, e.data.reason)
    if policy is CALENDAR:
        observe("calendar policy")


# ---- (i) a payment in flight that covers the debt holds the suspension back -----------------


def _covered_in_force(book: Book, policy: Policy) -> bool:
    """Written apart from the engine: the payments in flight on the book's date, per
    currency, against what is overdue in every delinquent currency."""
    assert book.as_of is not None
    a = assess(book, book.as_of, policy)
    in_force: dict[str, Decimal] = {}
    for p in book.pending.values():
        if p.expected_by >= book.as_of:
            in_force[p.currency] = in_force.get(p.currency, Decimal(0)) + p.amount
    overdue = dict(a.overdue)
    return bool(in_force) and all(
        overdue[c] - in_force.get(c, Decimal(0)) < policy.threshold(c)
        for c in a.delinquent_currencies
    )


@SETTINGS
@given(POLICIES, histories())
def test_i_a_covering_payment_in_flight_never_sees_a_suspension_while_in_force(
    policy: Policy, events: list[Event]
) -> None:
    r = run(policy=policy)
    suspend = suspend_index(policy)
    for inbound in events:
        for e in r.feed(inbound):
            # Entered from below (a drop from a later stage is no new suspension).
            if (
                isinstance(e, StageEntered)
                and stage_index(policy, e.data.stage) == suspend
                and stage_index(policy, e.data.previous) < suspend
            ):
                book = r.book(e.customer_id)
                assert not _covered_in_force(book, policy), (e.data.why.text, book.pending)
                if any(p.expected_by >= e.data.as_of for p in book.pending.values()):
                    observe("suspended with a payment in flight too small to cover")


def test_histories_hold_suspensions_back() -> None:
    """The generator is not vacuous: the calendar and payments in flight do hold back."""
    s = Story(customer="c1")
    r = run(
        s.issue("c1-I0", Decimal("50.00"), START, subs=["c1-s0"]),
        [tick(START + timedelta(days=n)) for n in range(20)],
        policy=CALENDAR,
    )
    entered = r.entered()[-1]
    # Due on 2026-10-10 (a Saturday, and Taiwan's National Day), then Sunday, then a partner
    # holiday on Wednesday the 14th: the why names each closed date.
    assert entered.data.stage == "suspended"
    assert entered.data.as_of == date(2026, 10, 12)
    assert "2026-10-10 is a Saturday" in entered.data.why.text
    assert "2026-10-11 is a Sunday" in entered.data.why.text


# ---- (j) a payment claimed in a support ticket holds the suspension back --------------------


def _nth_business_date(policy: Policy, day: date, n: int) -> date:
    """Written apart from the engine: walk the dates after `day`, counting business dates."""
    while n:
        day += timedelta(days=1)
        if policy.calendar.closed(day) is None:
            n -= 1
    return day


@SETTINGS
@given(POLICIES, histories())
def test_j_a_claimed_payment_holds_the_suspension_through_its_last_business_date(
    policy: Policy, events: list[Event]
) -> None:
    """A claim holds through the 3rd business date after it was filed; while one holds, no
    suspend stage is entered from below; at most one claim holds per delinquency episode."""
    r = run(policy=policy)
    suspend = suspend_index(policy)
    for inbound in events:
        for e in r.feed(inbound):
            if (
                isinstance(e, StageEntered)
                and stage_index(policy, e.data.stage) == suspend
                and stage_index(policy, e.data.previous) < suspend
            ):
                on = e.data.as_of
                for t in r.book(e.customer_id).tickets.values():
                    until = t.holds_until
                    assert until is None or not t.opened_on <= on <= until, e.data.why.text
                if "payment claimed in support ticket" in e.data.why.text:
                    observe("a claim held a suspension back")
        for book in r.driver.books.values():
            holding = [t for t in book.tickets.values() if t.holds_until is not None]
            assert len(holding) <= 1
            for t in holding:
                assert t.topic == "payment_claimed"
                assert t.holds_until == _nth_business_date(policy, t.opened_on, 3)
                observe("a claim holds")
