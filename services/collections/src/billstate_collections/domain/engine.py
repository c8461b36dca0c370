"""The stage machine: one event in, the book updated, the decided events out (rules 1 to 12)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from billstate_collections.domain.assess import Assessment, assess
from billstate_collections.domain.book import (
    CURRENT,
    Book,
    CostLine,
    HoldRecord,
    Pending,
    Profile,
    Ticket,
    prune,
)
from billstate_collections.domain.exposure import add_cost, exposure, money
from billstate_collections.domain.schedule import in_force, suspension_on
from billstate_shared.contracts import (
    CostRecorded,
    CustomerUpserted,
    Event,
    HoldPlaced,
    HoldReleased,
    InvoiceAged,
    PaymentFailed,
    PaymentPending,
    PaymentReceived,
    SupportRequested,
    SupportResolved,
)
from billstate_shared.contracts.outbound import Aged, Outbound
from billstate_shared.contracts.types import MAX_HOLDS, MAX_SUBSCRIPTIONS, MAX_TEXT
from billstate_shared.domain.ids import make_id
from billstate_shared.domain.ledger import LEDGER_EVENTS, ZERO, Posting, apply_event
from billstate_shared.domain.policy import Policy, Support
from billstate_shared.errors import Refused

DEFAULT_LOCALE = "en"
CURRENT_NAME = "current"
ONE_DAY = timedelta(days=1)
MAX_WAITED = 16  # reasons a held-back suspension remembers for its why

Output = Outbound


def business_date(book: Book, at: datetime, policy: Policy) -> date:
    """The date of `at` in the customer's zone (its own, else the policy's)."""
    zone = book.profile.timezone if book.profile is not None else None
    return at.astimezone(policy.zone if zone is None else ZoneInfo(zone)).date()


def stage_name(policy: Policy, index: int) -> str:
    return "current" if index == CURRENT else policy.stages[index].name


def step(book: Book, event: Event | Aged, policy: Policy) -> list[Output]:
    """Apply one inbound or due-date event to a customer's book; return what it decided."""
    if book.moved is None:
        out = _step(book, event, policy)
    else:
        out = _migrated(book, event, policy)  # first, what the new policy's migrate map did
        out.extend(_step(book, event, policy))
    if book.costs and book.as_of is not None:  # no cost line, no exposure: nothing to check
        _exposure_high(book, event, policy, out)
    return out


def _exposure_high(book: Book, trigger: Any, policy: Policy, out: list[Output]) -> None:
    """Once per delinquency episode and currency, tell staff when the exposure to Microsoft
    goes above the policy's `exposure.escalate_above` (docs/policy.md "Exposure")."""
    limits = policy.exposure.escalate_above
    if not limits and not book.alerted:
        return
    assert book.as_of is not None
    a = assess(book, book.as_of, policy)
    if not a.delinquent:
        if book.alerted:  # the episode is over: a later one may tell again
            book.alerted, book.episode = (), book.episode + 1
            book.version += 1
        return
    found = exposure(book)
    crossed = [
        (c, amount, subs)
        for c, amount, subs in found
        if c in limits and amount > limits[c] and c not in book.alerted
    ]
    if not crossed:
        return
    currencies = tuple(c for c, _, _ in crossed)
    book.alerted = tuple(sorted({*book.alerted, *currencies}))
    book.version += 1
    facts = _facts(book, a, policy, None)
    facts["exposure"] = money(found)
    facts["above"] = [
        {
            "currency": c,
            "amount": format(amount, "f"),
            "threshold": format(limits[c], "f"),
            "subscription_ids": list(subs),
        }
        for c, amount, subs in crossed
    ]
    out.append(
        _notice(
            book, a, trigger, "exposure_high", "partner", facts=facts, policy=policy,
            key=(book.episode, *currencies),
        )
    )  # fmt: skip


def _migrated(book: Book, trigger: Any, policy: Policy) -> list[Output]:
    """The book was in a stage the running policy no longer has; loading it moved it by
    the policy's `migrate` map: say so, and give back access a lower stage does not take."""
    old, book.moved = book.moved or CURRENT_NAME, None
    out: list[Output] = []
    if book.as_of is None:
        return out  # no stage without a business date: nothing to report
    a = assess(book, book.as_of, policy)
    book.entered_on = a.as_of
    book.transitions += 1
    name, version = policy.ref
    since = f" (from v{book.policy_version})" if book.policy_version else ""
    text = (
        f"Policy {name} changed to v{version}{since}: stage {old} is not in it; the policy's"
        f" migrate map moves its customers to {stage_name(policy, book.stage)}."
    )
    out.append(
        _stage_entered(
            book, a, trigger, policy, previous=old, rule="policy change: migrate", text=text
        )
    )
    suspend_index = policy.suspend_stage_index
    if book.suspended and (suspend_index is None or book.stage < suspend_index):
        restored, book.suspended = book.suspended, ()
        out.append(_command("restore", book, a, trigger, policy, subs=restored, reason=text))
    return out


def _step(book: Book, event: Event | Aged, policy: Policy) -> list[Output]:  # noqa: C901, PLR0911, PLR0912
    # One exit per kind of event that decides nothing: the dispatch reads best flat.
    if type(event) is Aged or isinstance(event, InvoiceAged):
        return _on_time(book, event, policy)
    if isinstance(event, PaymentReceived) and event.data.payment_id in book.pending:
        return _payment_arrived(book, event, policy)
    if event.event_type in LEDGER_EVENTS:
        posting = apply_event(book.ledger, event)
    elif isinstance(event, PaymentPending):
        return _payment_pending(book, event, policy)
    elif isinstance(event, CustomerUpserted):
        posting = _upsert(book, event)
    elif isinstance(event, HoldPlaced):
        posting = _place_hold(book, event, policy)
    elif isinstance(event, HoldReleased):
        posting = _release_hold(book, event)
    elif isinstance(event, PaymentFailed):
        return _payment_failed(book, event, policy)
    elif isinstance(event, SupportRequested):
        return _ticket_opened(book, event, policy)
    elif isinstance(event, SupportResolved):
        return _ticket_resolved(book, event, policy)
    elif isinstance(event, CostRecorded):
        d = event.data
        line = CostLine(
            d.cost_id, d.subscription_id, d.charge_start, d.charge_end, d.amount, d.currency,
            d.invoice_ref,
        )  # fmt: skip
        if add_cost(book, line):
            book.version += 1  # a new state: its exposure changed
        return []  # exposure decides no stage
    else:
        return []  # clock ticks and outbound types are not collections' input
    if posting is not Posting.APPLIED:
        return []
    return _settle(book, event, policy)


def _upsert(book: Book, event: CustomerUpserted) -> Posting:
    if book.seen.knows(event.event_id, event.occurred_at):
        return Posting.DUPLICATE  # changes nothing, also after a newer upsert
    book.seen.add(event.event_id, event.occurred_at)
    d = event.data
    book.profile = Profile(
        d.locale, frozenset(d.tags), tuple(sorted(d.subscription_ids)), d.timezone
    )
    book.version += 1
    return Posting.APPLIED


def _release_hold(book: Book, event: HoldReleased) -> Posting:
    hold_id = event.data.hold_id
    if hold_id not in book.holds and book.released.knows(hold_id, event.occurred_at):
        return Posting.DUPLICATE
    book.released.add(hold_id, event.occurred_at)
    book.holds.pop(hold_id, None)
    book.version += 1
    return Posting.APPLIED


def _place_hold(book: Book, event: HoldPlaced, policy: Policy) -> Posting:
    d = event.data
    if d.hold_id in book.holds or book.released.knows(d.hold_id, event.occurred_at):
        return Posting.DUPLICATE
    if len(book.holds) >= MAX_HOLDS:
        # Checked before anything changes: the record goes to the DLQ, the book stays as is.
        raise Refused(
            "data.hold_id",
            f"the customer has {MAX_HOLDS} holds in force, the most collections keeps;"
            " release one first",
            event.event_type,
        )
    # The hold's own business date in the customer's zone, also before that day's tick.
    placed_on = business_date(book, event.occurred_at, policy)
    until = d.until
    if d.kind == "promise_to_pay" and until is not None:
        # A promise longer than the policy allows is held to the policy's maximum.
        latest = date.fromordinal(placed_on.toordinal() + policy.promise_to_pay.max_days)
        until = min(until, latest)
    book.holds[d.hold_id] = HoldRecord(
        d.hold_id, d.kind, d.invoice_id, d.amount, until, d.reason, d.by, placed_on
    )
    book.version += 1
    return Posting.APPLIED


# ---- backward: at once, on any change (rule 7) ---------------------------------------------


def _settle(book: Book, trigger: Any, policy: Policy) -> list[Output]:
    if book.as_of is None:
        return []  # nothing has aged yet, so no stage can have been entered
    a = assess(book, book.as_of, policy)
    out: list[Output] = []
    if book.waited and (a.target < (policy.suspend_stage_index or 0) or not a.delinquent):
        book.waited = ()  # no longer due for the suspend stage: nothing waits
    _episode_over(book, a)
    if a.target < book.stage:
        _drop(book, a, trigger, policy, out)
    if book.suspended:  # also after a drop that stays at or above the suspend stage
        _release_paid(book, a, trigger, policy, out)
    return out


def _drop(book: Book, a: Assessment, trigger: Any, policy: Policy, out: list[Output]) -> None:
    previous = book.stage
    target = a.target if a.delinquent else CURRENT
    book.stage = target
    book.entered_on = a.as_of
    book.transitions += 1
    cause = _cause(a, trigger)
    text = (
        f"Moved down from {stage_name(policy, previous)} to {stage_name(policy, target)} at once:"
        f" {cause}."
    )
    out.append(
        _stage_entered(
            book, a, trigger, policy, previous=previous, rule="rule 7: backward at once", text=text
        )
    )
    suspend_index = policy.suspend_stage_index
    if suspend_index is not None and previous >= suspend_index > target and book.suspended:
        restored = book.suspended
        book.suspended = ()
        out.append(_command("restore", book, a, trigger, policy, subs=restored, reason=cause))
        # Rule 9 for every notice before the suspend stage, also when the customer is not
        # delinquent now but other open invoices will fall due. After a drop the target is the
        # stage: the next move up is on a later business date.
        due = suspension_on(book, policy, a.as_of, climbs_today=False)
        facts = _facts(book, a, policy, due)
        facts["subscription_ids"] = list(restored)
        facts["still_delinquent"] = a.delinquent
        out.append(_notice(book, a, trigger, "restored", "customer", facts=facts, policy=policy))


def _release_paid(
    book: Book, a: Assessment, trigger: Any, policy: Policy, out: list[Output]
) -> None:
    """Per-subscription enforcement: what is no longer overdue comes back on at once."""
    suspend_index = policy.suspend_stage_index
    if suspend_index is None or book.stage < suspend_index:
        return
    free = tuple(s for s in book.suspended if s not in a.scope)
    if free:
        book.suspended = tuple(s for s in book.suspended if s in a.scope)
        book.transitions += 1
        reason = f"{', '.join(free)} no longer billed by an overdue invoice"
        out.append(_command("restore", book, a, trigger, policy, subs=free, reason=reason))


# ---- forward: only on time (rule 6) ---------------------------------------------------------


def _on_time(book: Book, event: InvoiceAged | Aged, policy: Policy) -> list[Output]:
    d = event.data
    out: list[Output] = []
    as_of = book.as_of
    if as_of is None or d.as_of > as_of:
        as_of = book.as_of = d.as_of
        if book.reminded:
            _forget_reminders(book, as_of)
        prune(book, as_of, policy)  # what can no longer change a decision (docs/policy.md)
    if d.days_past_due < 0:  # only an invoice not yet due can have a reminder (rule 10)
        _remind(book, event, policy, out)
    if book.pending:
        _expire_pending(book, as_of)
    evaluated = book.evaluated
    if (
        book.ledger.version == evaluated[0]
        and book.version == evaluated[1]
        and (as_of == evaluated[2] or as_of < book.wake_on)
    ):
        # Same ledger, holds and profile as the last climb, and no date reached on which
        # the passing of time alone can change anything: nothing new to decide. Most aged
        # events end here, so the test reads the fields directly (Book.key spelled out).
        return out
    _climb(book, as_of, event, policy, out)
    return out


def _climb(book: Book, as_of: date, trigger: Any, policy: Policy, out: list[Output]) -> None:
    """Evaluate on a business date: down at once, then up one stage at a time (rules 6-8)."""
    a = assess(book, as_of, policy)
    _episode_over(book, a)
    if a.target < book.stage:
        _drop(book, a, trigger, policy, out)
    if book.suspended:
        _release_paid(book, a, trigger, policy, out)
    promised = _promise_blocks(book, a, trigger, policy, out)
    suspend_index = policy.suspend_stage_index
    held = False
    while not promised and a.target > book.stage:
        index = book.stage + 1
        gate = policy.stages[index].min_days_in_previous
        if gate and book.entered_on is not None and (as_of - book.entered_on).days < gate:
            break
        if index == suspend_index:
            reasons = _held_back(book, a, policy)
            if reasons:
                _wait(book, reasons)
                held = True
                break
        _enter(book, index, a, trigger, policy, out=out)
    if book.waited and (suspend_index is None or book.stage >= suspend_index or not held):
        book.waited = ()  # suspended, or no longer due for it: nothing is waiting
    # Not a move up, so a promise does not pause it: while in the suspend stage, what the
    # overdue invoices bill is what is suspended (rule 8), whatever order payments came in;
    # on a business date, as every suspension.
    if policy.calendar.closed(as_of) is None:
        _extend_suspension(book, a, trigger, policy, out)
    elif suspend_index is not None and book.stage >= suspend_index:
        held = True
    book.evaluated = book.key()
    # `a` still holds after the moves above: an assessment reads the ledger, the profile and
    # the dispute and manual holds, and a climb changes none of them (it changes the stage
    # and may end promises, which assess does not read), so no second assess is needed.
    book.wake_on = _wake_on(book, a, policy, held=held)


def _held_back(book: Book, a: Assessment, policy: Policy) -> list[str]:
    """Why the customer, due for the suspend stage today, is not to enter it: payments in
    flight that would bring every delinquent currency below its minimum, or dates that are
    not business dates (today's and the closed days after it, all named at once: no
    evaluation runs on them), or a payment claimed in a support ticket. Empty: nothing
    holds it back."""
    held = _claims_in_force(book, a.as_of, policy) if book.tickets else []
    if book.pending:
        waiting = in_force(book, a.as_of)
        pending: dict[str, Decimal] = {}
        for p in waiting:
            pending[p.currency] = pending.get(p.currency, ZERO) + p.amount
        overdue = dict(a.overdue)
        if waiting and all(
            overdue[c] - pending.get(c, ZERO) < policy.threshold(c) for c in a.delinquent_currencies
        ):
            held.extend(
                f"payment {p.payment_id} of {p.currency} {p.amount}"
                f" expected by {p.expected_by.isoformat()}"
                for p in waiting
                if p.currency in a.delinquent_currencies
            )
    if held:
        return held
    calendar = policy.calendar
    reasons: list[str] = []
    day = a.as_of
    while len(reasons) < MAX_WAITED and (reason := calendar.closed(day)) is not None:
        reasons.append(reason)
        day += ONE_DAY
    return reasons


def _wait(book: Book, reasons: list[str]) -> None:
    kept = tuple(r for r in book.waited if r not in reasons)
    book.waited = (*kept, *reasons)[-MAX_WAITED:]


def _wake_on(book: Book, a: Assessment, policy: Policy, *, held: bool = False) -> date:
    """The first date on which time alone (no new event) can change a decision: an open
    invoice falls overdue, the debt's age reaches the next stage, a gate opens, a promise
    ends. Until then an aged event only needs its reminder checked."""
    as_of = a.as_of
    dates = [inv.due_on + ONE_DAY for inv in book.ledger.open_invoices() if inv.due_on >= as_of]
    stages = policy.stages
    if a.anchor is not None and a.target + 1 < len(stages):
        dates.append(a.anchor.due_on + timedelta(days=stages[a.target + 1].days_past_due))
    if a.target > book.stage and book.entered_on is not None:
        gate = stages[book.stage + 1].min_days_in_previous
        dates.append(book.entered_on + timedelta(days=gate))
    dates.extend(
        hold.until + ONE_DAY
        for hold in book.holds.values()
        if hold.kind == "promise_to_pay" and hold.until is not None
    )
    dates.extend(p.expected_by + ONE_DAY for p in book.pending.values())
    dates.extend(t.holds_until + ONE_DAY for t in book.tickets.values() if t.holds_until)
    if held:  # a suspension waits for a business date
        dates.append(policy.calendar.next_open(as_of + ONE_DAY))
    return min((d for d in dates if d > as_of), default=date.max)


def _promise_blocks(
    book: Book, a: Assessment, trigger: Any, policy: Policy, out: list[Output]
) -> bool:
    blocked = False
    if not book.holds:
        return blocked
    for hold in sorted(book.holds.values(), key=lambda h: h.hold_id):
        if hold.kind != "promise_to_pay" or hold.until is None:
            continue
        if hold.until >= a.as_of:
            blocked = True
        else:
            # The day after the promise: kept if no longer delinquent, else broken, once.
            del book.holds[hold.hold_id]
            book.released.add(hold.hold_id, trigger.occurred_at)
            book.version += 1
            if a.delinquent:
                facts = _facts(book, a, policy, suspension_on(book, policy, a.as_of))
                facts["hold_id"] = hold.hold_id
                facts["promised_until"] = hold.until.isoformat()
                out.append(
                    _notice(
                        book, a, trigger, "promise_broken", "customer", facts=facts, policy=policy
                    )
                )
    return blocked


def _enter(
    book: Book, index: int, a: Assessment, trigger: Any, policy: Policy, *, out: list[Output]
) -> None:
    stage = policy.stages[index]
    previous = book.stage
    book.stage = index
    gate_text = ""
    if stage.min_days_in_previous and book.entered_on is not None:
        days_in = (a.as_of - book.entered_on).days
        gate_text = (
            f"; {_days(days_in)} in {stage_name(policy, previous)}"
            f" (at least {stage.min_days_in_previous})"
        )
    book.entered_on = a.as_of
    book.transitions += 1
    anchor = a.anchor
    assert anchor is not None
    assert a.days_past_due is not None
    text = (
        f"Entered {stage.name}: invoice {anchor.invoice_id} due {anchor.due_on.isoformat()} is"
        f" {_days(a.days_past_due)} past due (stage starts at day {stage.days_past_due}); overdue"
        f" {_amounts(a)} at or above the minimum{gate_text}."
    )
    if stage.action == "suspend" and book.waited:
        text += f" Postponed until today: {'; '.join(book.waited)}."
        book.waited = ()
    out.append(
        _stage_entered(
            book, a, trigger, policy, previous=previous, rule="rule 6: forward on time", text=text
        )
    )
    if stage.action == "suspend":
        subs = _to_suspend(book, a)
        if subs:
            book.suspended = tuple(sorted(set(book.suspended).union(subs)))
            out.append(_command("suspend", book, a, trigger, policy, subs=subs, reason=text))
    suspend_index = policy.suspend_stage_index
    due = None
    if suspend_index is not None and index < suspend_index:
        due = suspension_on(book, policy, a.as_of)
    for audience in stage.notify:
        facts = _facts(book, a, policy, due)
        if stage.action == "suspend":
            facts["subscription_ids"] = list(book.suspended)
        out.append(_notice(book, a, trigger, stage.name, audience, facts=facts, policy=policy))


def _extend_suspension(
    book: Book, a: Assessment, trigger: Any, policy: Policy, out: list[Output]
) -> None:
    """While suspended, a newly overdue subscription is suspended too (rule 8's scope)."""
    suspend_index = policy.suspend_stage_index
    if suspend_index is None or book.stage < suspend_index:
        return
    subs = _to_suspend(book, a)
    if subs:
        book.suspended = tuple(sorted(set(book.suspended).union(subs)))
        book.transitions += 1
        reason = f"{', '.join(subs)} billed by an overdue invoice while suspended"
        out.append(_command("suspend", book, a, trigger, policy, subs=subs, reason=reason))


def _to_suspend(book: Book, a: Assessment) -> tuple[str, ...]:
    """The subscriptions in scope not suspended yet; a book suspends at most
    MAX_SUBSCRIPTIONS (the first in id order), what one command or state can name."""
    subs = tuple(s for s in a.scope if s not in book.suspended)
    room = MAX_SUBSCRIPTIONS - len(book.suspended)
    return subs if len(subs) <= room else subs[: max(room, 0)]


# ---- reminders (rule 10) and informational notices -----------------------------------------


def _forget_reminders(book: Book, as_of: date) -> None:
    """Reminders are sent before the due date only: what was reminded of an invoice due by
    now is no longer needed to avoid a second one."""
    invoices = book.ledger.invoices
    kept = {
        r for r in book.reminded if (inv := invoices.get(r[0])) is not None and inv.due_on > as_of
    }
    if len(kept) != len(book.reminded):
        book.reminded = kept


def _remind(book: Book, event: InvoiceAged | Aged, policy: Policy, out: list[Output]) -> None:
    d = event.data
    days_before = -d.days_past_due
    if days_before <= 0 or not policy.reminders.days_before_due:
        return
    invoice = book.ledger.invoices.get(d.invoice_id)
    if invoice is None or invoice.open <= 0:
        return  # rule 10: none for an invoice already paid
    if book.as_of is not None and invoice.due_on <= book.as_of:
        return  # a late (redelivered) aged event: the due date has passed, its reminders too
    # After a gap in ticks, the reminders skipped over become one reminder now.
    due = [
        n
        for n in policy.reminders.days_before_due
        if n >= days_before and (d.invoice_id, n) not in book.reminded
    ]
    if not due:
        return
    book.reminded.update((d.invoice_id, n) for n in due)
    a = assess(book, d.as_of, policy)
    facts = _facts(book, a, policy, suspension_on(book, policy, d.as_of))
    facts["invoice"] = {
        "invoice_id": invoice.invoice_id,
        "due_on": invoice.due_on.isoformat(),
        "open": str(invoice.open),
        "currency": invoice.currency,
    }
    facts["days_before_due"] = days_before
    out.append(
        _notice(
            book,
            a,
            event,
            "reminder",
            "customer",
            facts=facts,
            key=(d.invoice_id, min(due)),
            policy=policy,
        )
    )


def _payment_pending(book: Book, event: PaymentPending, policy: Policy) -> list[Output]:
    d = event.data
    if (
        d.payment_id in book.pending
        or d.payment_id in book.ledger.payments  # it arrived already
        or book.seen.knows(_ENDED + d.payment_id, event.occurred_at)  # it failed already
    ):
        return []
    placed_on = business_date(book, event.occurred_at, policy)
    # Held to the policy's maximum, as a promise to pay is: a far-future date from the
    # billing bus must not keep a customer out of suspension for years.
    latest = placed_on + timedelta(days=policy.payments_in_flight.max_days)
    expected_by = min(d.expected_by, latest)
    if expected_by < placed_on:
        return []  # expected before today: no longer in force
    if len(book.pending) >= MAX_HOLDS:
        raise Refused(
            "data.payment_id",
            f"the customer has {MAX_HOLDS} payments in flight, the most collections keeps",
            event.event_type,
        )
    book.pending[d.payment_id] = Pending(d.payment_id, d.amount, d.currency, expected_by)
    book.version += 1
    return []  # it can only hold back a climb to come; nothing is decided now


_ENDED = "pending-ended:"  # a failed payment in flight, in the `seen` window
_CLOSED = "ticket-closed:"  # a resolved support ticket, in the `seen` window


def _claims_in_force(book: Book, day: date, policy: Policy) -> list[str]:
    """Why a payment claimed in a support ticket holds the suspend stage on `day`."""
    reasons = []
    for t in sorted(book.tickets.values(), key=lambda t: t.ticket_id):
        until = t.holds_until
        if until is None or not t.opened_on <= day <= until:
            continue
        closed = policy.calendar.closed
        held = sum(
            closed(t.opened_on + timedelta(days=n)) is None
            for n in range(1, (until - t.opened_on).days + 1)
        )
        reasons.append(
            f"payment claimed in support ticket {t.ticket_id} (filed {t.opened_on.isoformat()}),"
            f" held {held} business {'day' if held == 1 else 'days'} to {until.isoformat()}"
        )
    return reasons


def claim_ends(policy: Policy, opened_on: date) -> date:
    """The N-th business date after the date a payment was claimed (N: the policy's
    `support.payment_claim_hold_days`, 3 without a support section)."""
    support = policy.support
    left = 3 if support is None else support.payment_claim_hold_days
    day = opened_on
    while left:
        day = policy.calendar.next_open(day + ONE_DAY)
        left -= 1
    return day


def _ticket_opened(book: Book, event: SupportRequested, policy: Policy) -> list[Output]:
    """Record an open ticket; a payment claim, the first of a delinquency episode, holds the
    climb into the suspend stage (docs/policy.md "Support requests")."""
    d = event.data
    if d.ticket_id in book.tickets or book.seen.knows(_CLOSED + d.ticket_id, event.occurred_at):
        return []  # a redelivery, or a ticket already resolved
    if len(book.tickets) >= MAX_HOLDS:
        raise Refused(
            "data.ticket_id",
            f"the customer has {MAX_HOLDS} open support tickets, the most collections keeps;"
            " resolve one first",
            event.event_type,
        )
    opened_on = business_date(book, event.occurred_at, policy)
    until = None
    # Only a customer in a delinquency episode has a climb to hold.
    if (
        d.topic == "payment_claimed"
        and not book.claimed
        and book.as_of is not None
        and assess(book, book.as_of, policy).delinquent
    ):
        until = claim_ends(policy, opened_on)
        book.claimed = True
    book.tickets[d.ticket_id] = Ticket(d.ticket_id, d.topic, opened_on, until)
    book.version += 1
    return []  # it can only hold back a climb to come; nothing is decided now


def _ticket_resolved(book: Book, event: SupportResolved, policy: Policy) -> list[Output]:
    """Close a ticket; the end of a claim's hold resumes the climb now, as the end of a
    payment in flight does."""
    ticket = book.tickets.pop(event.data.ticket_id, None)
    if ticket is None:
        return []  # unknown, or resolved already
    book.seen.add(_CLOSED + ticket.ticket_id, event.occurred_at)
    book.version += 1
    out: list[Output] = []
    until = ticket.holds_until
    if until is not None and book.as_of is not None and until >= book.as_of:
        _climb(book, book.as_of, event, policy, out)
    return out


def _episode_over(book: Book, a: Assessment) -> None:
    """When the customer is no longer delinquent, claims hold no longer and the next
    episode's first claim holds again."""
    if not book.claimed or a.delinquent:
        return
    book.claimed = False
    for t in list(book.tickets.values()):
        if t.holds_until is not None:
            book.tickets[t.ticket_id] = Ticket(t.ticket_id, t.topic, t.opened_on, None)
    book.version += 1


def _payment_arrived(book: Book, event: PaymentReceived, policy: Policy) -> list[Output]:
    """The payment the climb waited for is here: if it was not enough, the climb into the
    suspend stage resumes now rather than at the next business date."""
    if apply_event(book.ledger, event) is Posting.DUPLICATE:
        return []
    _end_pending(book, event.data.payment_id, event.occurred_at)
    out: list[Output] = []
    if book.as_of is not None:
        _climb(book, book.as_of, event, policy, out)
    return out


def _end_pending(book: Book, payment_id: str | None, at: datetime) -> bool:
    """End the wait for a payment in flight; True when there was one."""
    if payment_id is None or book.pending.pop(payment_id, None) is None:
        return False
    book.seen.add(_ENDED + payment_id, at)
    book.version += 1
    return True


def _expire_pending(book: Book, as_of: date) -> None:
    """A payment in flight is in force until its `expected_by`, inclusive."""
    expired = [p.payment_id for p in book.pending.values() if p.expected_by < as_of]
    for payment_id in expired:
        del book.pending[payment_id]
        book.version += 1


def _payment_failed(book: Book, event: PaymentFailed, policy: Policy) -> list[Output]:
    if book.seen.knows(event.event_id, event.occurred_at):
        return []  # the notice for it went out already
    book.seen.add(event.event_id, event.occurred_at)
    out: list[Output] = []
    if _end_pending(book, event.data.payment_id, event.occurred_at) and book.as_of is not None:
        _climb(book, book.as_of, event, policy, out)  # the wait is over: resume now
    as_of = book.as_of or business_date(book, event.occurred_at, policy)
    a = assess(book, as_of, policy)
    # Between ticks: today's climb is done (or, before any aging, yet to come).
    due = suspension_on(book, policy, as_of, climbs_today=book.as_of is None)
    facts = _facts(book, a, policy, due)
    facts["invoice_id"] = event.data.invoice_id
    facts["will_retry"] = event.data.will_retry
    out.append(
        _notice(
            book,
            a,
            event,
            "payment_failed",
            "customer",
            facts=facts,
            policy=policy,
            key=(event.event_id,),
        )
    )
    return out


# ---- building outputs -----------------------------------------------------------------------


def _clip(text: str) -> str:
    """Free text as the contracts take it: at most MAX_TEXT characters (a long list of
    subscriptions or currencies is cut, with an ellipsis)."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _amounts(a: Assessment) -> str:
    return ", ".join(f"{c} {amt}" for c, amt in a.overdue) or "nothing"


def _cause(a: Assessment, trigger: Any) -> str:
    what = f"{trigger.event_type} {trigger.event_id}"
    if a.blocked_by is not None:
        return f"{what}; {a.blocked_by} stops collections"
    if not a.delinquent:
        if not a.overdue:
            return f"{what} left no overdue balance"
        return f"{what} left overdue {_amounts(a)}, below the minimum"
    anchor = a.anchor.invoice_id if a.anchor else "?"
    return f"{what} left invoice {anchor} {_days(a.days_past_due or 0)} past due"


def _money(a: Assessment) -> list[dict[str, str]]:
    return [{"amount": str(amount), "currency": currency} for currency, amount in a.overdue]


def policy_ref(policy: Policy) -> dict[str, Any]:
    """The policy's `ref` as the JSON object every decision and state carries."""
    name, version = policy.ref
    return {"name": name, "version": version}


def _stamp(trigger: Any) -> datetime:
    occurred: datetime = trigger.occurred_at
    return occurred


# Outputs are built as JSON-ready data in the contract's field order (Outbound): the inputs
# were validated at the border, and a test holds every output to the contract models.


def _stage_entered(
    book: Book,
    a: Assessment,
    trigger: Any,
    policy: Policy,
    *,
    previous: int | str,
    rule: str,
    text: str,
) -> Outbound:
    stage = stage_name(policy, book.stage)
    anchor = a.anchor
    overdue = _money(a)
    text = _clip(text)
    why = {
        "rule": rule,
        "text": text,
        "trigger_event_id": trigger.event_id,
        "anchor_invoice_id": anchor.invoice_id if anchor else None,
        "anchor_due_on": anchor.due_on.isoformat() if anchor else None,
        "days_past_due": a.days_past_due,
        "overdue": overdue,
        "policy": policy_ref(policy),
    }
    return Outbound(
        event_id=make_id("stg", book.customer_id, book.transitions, stage, a.as_of),
        event_type="collections.stage_entered",
        occurred_at=_stamp(trigger),
        customer_id=book.customer_id,
        data={
            "stage": stage,
            "previous": previous if isinstance(previous, str) else stage_name(policy, previous),
            "as_of": a.as_of.isoformat(),
            "days_past_due": a.days_past_due,
            "overdue": overdue,
            "why": why,
        },
    )


def _command(
    verb: Literal["suspend", "restore"],
    book: Book,
    a: Assessment,
    trigger: Any,
    policy: Policy,
    *,
    subs: tuple[str, ...],
    reason: str,
) -> Outbound:
    command_id = make_id(verb, book.customer_id, book.transitions, a.as_of, *subs)
    return Outbound(
        event_id=f"evt-{command_id}",
        event_type=f"access.{verb}",
        occurred_at=_stamp(trigger),
        customer_id=book.customer_id,
        data={
            "command_id": command_id,
            "subscription_ids": list(subs),
            "reason": _clip(reason),
            "stage": stage_name(policy, book.stage),
            "policy": policy_ref(policy),
            # Each command follows its own decision (transitions + 1), so the number grows
            # with every command for the customer: access-control refuses an older one. The
            # base is 0 but after a recovery that rebuilt the book with fewer decisions.
            "sequence": book.transitions + book.sequence_base,
        },
    )


def _facts(book: Book, a: Assessment, policy: Policy, due: date | None) -> dict[str, Any]:
    return {
        "customer_id": book.customer_id,
        "stage": stage_name(policy, book.stage),
        "as_of": a.as_of.isoformat(),
        "days_past_due": a.days_past_due,
        "overdue": [{"amount": str(amt), "currency": c} for c, amt in a.overdue],
        "invoices": [
            {
                "invoice_id": inv.invoice_id,
                "due_on": inv.due_on.isoformat(),
                "open": str(amount),
                "currency": inv.currency,
            }
            for inv, amount in a.overdue_invoices
        ],
        "suspension_on": due.isoformat() if due else None,
        "policy": policy_ref(policy),
    }


def _support_terms(support: Support, locale: str) -> dict[str, Any]:
    """The policy's support terms as a customer notice tells them, cost in its language."""
    hours, contact = support.hours, support.contact
    return {
        "hours": {
            "days": list(hours.days),
            "opens": hours.opens,
            "closes": hours.closes,
            "timezone": hours.timezone,
        },
        "contact": {"email": contact.email, "phone": contact.phone, "web": contact.web},
        "languages": list(support.languages),
        "cost": support.cost_in(locale),
    }


def _notice(
    book: Book,
    a: Assessment,
    trigger: Any,
    kind: str,
    audience: Literal["customer", "partner"],
    *,
    policy: Policy,
    facts: dict[str, Any],
    key: tuple[object, ...] | None = None,
) -> Outbound:
    parts = key if key is not None else (book.transitions, a.as_of)
    notice_id = make_id("ntc", book.customer_id, kind, audience, *parts)
    locale = book.profile.locale if book.profile and audience == "customer" else DEFAULT_LOCALE
    if audience == "partner" and book.costs and "exposure" not in facts:
        # Staff see the partner's own money at stake; only with cost lines, so the facts
        # of a customer without any stay as they were.
        found = exposure(book)
        if found:
            facts["exposure"] = money(found)
    if audience == "customer" and policy.support is not None:
        facts["support"] = _support_terms(policy.support, locale)
    return Outbound(
        event_id=f"evt-{notice_id}",
        event_type="notice.requested",
        occurred_at=_stamp(trigger),
        customer_id=book.customer_id,
        data={
            "notice_id": notice_id,
            "kind": kind,
            "audience": audience,
            "locale": locale,
            "facts": facts,
        },
    )
