"""Rule 9: the first business date each later stage can be entered if nothing is paid."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from billstate_collections.domain.assess import _blocked_by, countable, disputed
from billstate_collections.domain.book import Book, Pending
from billstate_shared.domain.ledger import ZERO
from billstate_shared.domain.policy import Policy

FAR = date.max
ONE_DAY = timedelta(days=1)


def _delinquency_timeline(book: Book, policy: Policy) -> list[tuple[date, date]]:
    """(date a currency becomes delinquent, its anchor due date) if nothing is paid, by date.

    With no payments, a currency's overdue sum only grows as its open invoices fall due, so it
    turns delinquent the day after the invoice whose due date lifts the sum to the minimum,
    and from then on its anchor is its oldest open invoice.
    """
    disputes = disputed(book) if book.holds else None
    timeline: list[tuple[date, date]] = []
    # open_invoices() lists the open invoices by currency (sorted), oldest due first within
    # each: the same walk as ledger.ordered(currency) per currency, minus the paid invoices.
    current: str | None = None
    done = False
    total = ZERO
    oldest: date | None = None
    threshold = ZERO
    for invoice in book.ledger.open_invoices():
        if invoice.currency != current:
            current = invoice.currency
            total = ZERO
            oldest = None
            threshold = policy.threshold(current)
            done = False
        elif done:
            continue
        amount = countable(invoice, disputes) if disputes else invoice.open
        if amount <= ZERO:
            continue
        oldest = oldest or invoice.due_on
        total += amount
        if total >= threshold:
            timeline.append((invoice.due_on + ONE_DAY, oldest))
            done = True
    timeline.sort()
    return timeline


def _reach(timeline: list[tuple[date, date]], days: int, lower: date) -> date:
    """The first date >= lower on which the age of the debt reaches `days`."""
    anchor = FAR
    for i, (delinquent_on, oldest) in enumerate(timeline):
        anchor = min(anchor, oldest)
        candidate = max(lower, delinquent_on, anchor + timedelta(days=days))
        next_change = timeline[i + 1][0] if i + 1 < len(timeline) else FAR
        if candidate < next_change:
            return candidate
    return FAR


def in_force(book: Book, day: date) -> list[Pending]:
    """The payments in flight still in force on `day`, oldest `expected_by` first."""
    return sorted(
        (p for p in book.pending.values() if p.expected_by >= day),
        key=lambda p: (p.expected_by, p.payment_id),
    )


def _covered(book: Book, policy: Policy, day: date) -> bool:
    """Whether, if nothing is paid, the payments in flight on `day` would bring every
    currency delinquent then below its minimum (the suspend stage waits while they do)."""
    waiting = in_force(book, day)
    if not waiting:
        return False
    disputes = disputed(book) if book.holds else None
    overdue: dict[str, Decimal] = {}
    for invoice in book.ledger.open_invoices():
        if invoice.due_on < day:
            amount = countable(invoice, disputes) if disputes else invoice.open
            overdue[invoice.currency] = overdue.get(invoice.currency, ZERO) + amount
    pending: dict[str, Decimal] = {}
    for p in waiting:
        pending[p.currency] = pending.get(p.currency, ZERO) + p.amount
    delinquent = [c for c, amount in overdue.items() if amount >= policy.threshold(c)]
    return bool(delinquent) and all(
        overdue[c] - pending.get(c, ZERO) < policy.threshold(c) for c in delinquent
    )


def _uncovered_from(book: Book, policy: Policy, day: date) -> date:
    """The first date from `day` on which no payment in flight holds the suspension back:
    coverage changes only when a payment's wait ends or an invoice falls due."""
    if not book.pending:
        return day
    changes = sorted(
        {p.expected_by + ONE_DAY for p in book.pending.values()}
        | {inv.due_on + ONE_DAY for inv in book.ledger.open_invoices()}
    )
    while _covered(book, policy, day):
        day = next(c for c in changes if c > day)  # past the last expected_by: none in force
    return day


def _suspension_date(
    book: Book, policy: Policy, timeline: list[tuple[date, date]], days: int, earliest: date
) -> date:
    """The suspend stage's date: reached as any stage, then moved past the payments in flight
    that would cover the debt and on to a business date, until neither moves it."""
    entered = _reach(timeline, days, earliest)
    while entered != FAR:
        moved = _uncovered_from(book, policy, entered)
        if moved != entered:
            moved = _reach(timeline, days, moved)
            if moved == FAR:
                return FAR
        moved = policy.calendar.next_open(moved)
        if moved == entered:
            return entered
        entered = moved
    return FAR


def projected_entries(
    book: Book, policy: Policy, today: date, *, climbs_today: bool = True
) -> list[tuple[int, date]]:
    """(stage index, date) for every stage above the current one, up to the suspend stage or
    the last stage, that the engine will enter if nothing is paid, ticking daily from today.

    `climbs_today` says whether a forward move can still happen today: true while an
    `invoice.aged` event is being handled (the climb runs right after), false for a change
    between ticks (a payment, a hold, a profile), after which rule 6 moves up only on the
    next business date's aged event.
    """
    if _blocked_by(book, policy) is not None:
        return []
    timeline = _delinquency_timeline(book, policy)
    if not timeline:
        return []
    promise_until = max(
        (h.until for h in book.holds.values() if h.kind == "promise_to_pay" and h.until),
        default=None,
    )
    lower = today if climbs_today else today + timedelta(days=1)
    if promise_until is not None:
        lower = max(lower, promise_until + timedelta(days=1))
    # A payment claimed in a support ticket holds the suspend stage through its last date.
    claimed = max((t.holds_until for t in book.tickets.values() if t.holds_until), default=None)
    entries: list[tuple[int, date]] = []
    previous = book.entered_on
    for index in range(book.stage + 1, len(policy.stages)):
        stage = policy.stages[index]
        earliest = lower
        if previous is not None and stage.min_days_in_previous:
            earliest = max(earliest, previous + timedelta(days=stage.min_days_in_previous))
        if index == policy.suspend_stage_index:
            if claimed is not None:
                earliest = max(earliest, claimed + ONE_DAY)
            entered = _suspension_date(book, policy, timeline, stage.days_past_due, earliest)
        else:
            entered = _reach(timeline, stage.days_past_due, earliest)
        if entered == FAR:
            break
        entries.append((index, entered))
        previous = entered
    return entries


def suspension_on(
    book: Book, policy: Policy, today: date, *, climbs_today: bool = True
) -> date | None:
    """The first date access can be suspended if nothing is paid; None if it cannot be."""
    index = policy.suspend_stage_index
    if index is None or book.stage >= index:
        return None
    for stage, entered in projected_entries(book, policy, today, climbs_today=climbs_today):
        if stage == index:
            return entered
    return None
