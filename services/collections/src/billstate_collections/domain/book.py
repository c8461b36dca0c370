"""A customer's collections book: ledger, profile, holds, stage and what has been done."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from hashlib import blake2b

from billstate_shared.domain.ledger import Ledger
from billstate_shared.domain.policy import Policy

CURRENT = -1  # stage index of a customer in no stage
DEDUPE_SIZE = 32  # ids a dedupe window keeps (the newest); docs/policy.md "Duplicates"
# Business days after which what is settled is forgotten (docs/policy.md "What a book keeps").
KEEP_DAYS = 90


def digest(key: str) -> str:
    """The compact form a window keeps of an id: 20 hex digits of its hash, whatever the
    id's length (up to 128 characters of up to 4 bytes each)."""
    return blake2b(key.encode(), digest_size=10).hexdigest()


@dataclass(slots=True)
class Window:
    """The ids (as digests) of the newest `DEDUPE_SIZE` events of one kind a book applied,
    each with its `occurred_at`, and `floor`: the latest `occurred_at` among those forgotten.

    An event is known when its id is in the window, or when it is no newer than `floor`: a
    redelivered old event is older than what was forgotten after it, so it is recognised by
    its time once its id is gone. A book therefore keeps a fixed number of ids however long
    it lives.
    """

    ids: dict[str, datetime | None] = field(default_factory=dict)  # digest -> time, oldest first
    floor: datetime | None = None

    def knows(self, key: str, at: datetime) -> bool:
        return digest(key) in self.ids or (self.floor is not None and at <= self.floor)

    def add(self, key: str, at: datetime | None) -> None:
        ids = self.ids
        ids[digest(key)] = at
        while len(ids) > DEDUPE_SIZE:
            oldest = next(iter(ids))
            when = ids.pop(oldest)
            if when is not None and (self.floor is None or when > self.floor):
                self.floor = when

    def trim(self, before: date) -> None:
        """Forget the ids of events that occurred before a date: the floor rises past them,
        so they stay known by their time (docs/policy.md "What a book keeps")."""
        cutoff = datetime.combine(before, time(), UTC)  # an instant: stored zones differ
        old = [k for k, at in self.ids.items() if at is not None and at < cutoff]
        for key in old:
            when = self.ids.pop(key)
            if when is not None and (self.floor is None or when > self.floor):
                self.floor = when


@dataclass(slots=True)
class Profile:
    locale: str
    tags: frozenset[str]
    subscription_ids: tuple[str, ...]
    timezone: str | None = None  # the customer's own IANA zone; None: the policy's


@dataclass(slots=True)
class HoldRecord:
    hold_id: str
    kind: str  # dispute | promise_to_pay | manual
    invoice_id: str | None
    amount: Decimal | None
    until: date | None
    reason: str
    by: str
    placed_on: date | None


@dataclass(slots=True, frozen=True)
class Pending:
    """A payment in flight (`payment.pending`): in force until `expected_by`, inclusive."""

    payment_id: str
    amount: Decimal
    currency: str
    expected_by: date


@dataclass(slots=True, frozen=True)
class Ticket:
    """An open support ticket (`support.requested`); a `payment_claimed` one that holds the
    climb into the suspend stage does so through `holds_until`, inclusive (else None)."""

    ticket_id: str
    topic: str  # billing_question | payment_claimed | dispute | access_problem
    opened_on: date
    holds_until: date | None


@dataclass(slots=True, frozen=True)
class CostLine:
    """What Microsoft billed the partner for one subscription and charge period
    (`cost.recorded`); a negative amount is a credit."""

    cost_id: str
    subscription_id: str
    start: date
    end: date
    amount: Decimal
    currency: str
    invoice_ref: str

    @property
    def order(self) -> tuple[date, date, str]:
        """The newest lines are kept when a book holds MAX_COSTS (docs/policy.md "Exposure")."""
        return (self.end, self.start, self.cost_id)


MAX_COSTS = 1024  # cost lines a book keeps: the newest by charge end (docs/policy.md "Exposure")


@dataclass(slots=True)
class Book:
    """Everything collections knows about one customer; owned by one partition's worker.

    The engine updates a book in place (it is the aggregate's state, not a shared value) and
    returns the events it decided; all updates are idempotent, so a redelivered event
    changes nothing.
    """

    customer_id: str
    ledger: Ledger = field(default_factory=Ledger)
    profile: Profile | None = None
    stage: int = CURRENT
    entered_on: date | None = None  # when the current stage was entered (rule 6 gates)
    as_of: date | None = None  # the latest business date seen (rule 11)
    suspended: tuple[str, ...] = ()
    holds: dict[str, HoldRecord] = field(default_factory=dict)
    # Hold ids released (perhaps before placed), or promises ended: such an id is never
    # placed again.
    released: Window = field(default_factory=Window)
    # (invoice_id, days before due) of reminders sent; dropped once the invoice is due, as
    # no reminder comes after the due date.
    reminded: set[tuple[str, int]] = field(default_factory=set)
    # Event ids of applied events that carry no id of their own to dedupe by (profile
    # upserts, failed payments): a redelivered old upsert must not undo a newer one.
    seen: Window = field(default_factory=Window)
    # Decisions made so far; part of every output id, and (plus `sequence_base`) the
    # `sequence` of every access command: each command follows its own decision, so the
    # number grows with each one.
    transitions: int = 0
    # Added to `transitions` in the `sequence` of every access command, and never part of an
    # id: `billstate recover rebuild` sets it when a rebuilt book has made fewer decisions
    # than the book it replaces, so the customer's next commands stay newer than those out.
    sequence_base: int = 0
    # Payments in flight by payment id, until received, failed or past their expected date.
    pending: dict[str, Pending] = field(default_factory=dict)
    # Why the climb into the suspend stage has been held back since it was first due (a date
    # that is not a business date, a payment in flight), for the why of the eventual entry.
    waited: tuple[str, ...] = ()
    version: int = 0  # bumped when profile, holds or payments in flight change
    # The policy version the book was last stored under (0: before it was recorded), and,
    # only between loading and the next step, the stage it was in when that stage is gone
    # from the running policy (the step reports the move the policy's `migrate` made).
    policy_version: int = 0
    moved: str | None = None
    # Cost lines by cost id (at most MAX_COSTS, the newest by charge end), and the currencies
    # an `exposure_high` notice was sent for in this delinquency episode (`episode` counts
    # the episodes that had one, for the next notice's id).
    costs: dict[str, CostLine] = field(default_factory=dict)
    alerted: tuple[str, ...] = ()
    episode: int = 0
    # Open support tickets by ticket id (at most MAX_HOLDS), and whether a payment claim has
    # held the suspend stage in this delinquency episode (a claim holds once per episode).
    tickets: dict[str, Ticket] = field(default_factory=dict)
    claimed: bool = False
    evaluated: tuple[int, int, date | None] = (-1, -1, None)  # what the last climb looked at
    wake_on: date = date.max  # before this date, with nothing else changed, time decides nothing

    def key(self) -> tuple[int, int, date | None]:
        return (self.ledger.version, self.version, self.as_of)


Billed = list[tuple[date, date, frozenset[str]]]  # (start, end, subscriptions) of invoices


def billed(ledger: Ledger) -> Billed:
    """The billing periods of the invoices a ledger keeps, with what each bills."""
    return [(*inv.billed, frozenset(inv.subscription_ids)) for inv in ledger.invoices.values()]


def keeps(line: CostLine, periods: Billed, horizon: date | None) -> bool:
    """Whether a book keeps a cost line: one charged up to a horizon, for a period no kept
    invoice bills, can count toward no exposure again (a forgotten invoice never reopens)."""
    if horizon is None or line.end >= horizon:
        return True
    sub = line.subscription_id
    return any(
        line.start <= end and start <= line.end and (not subs or sub in subs)
        for start, end, subs in periods
    )


def horizon(as_of: date) -> date:
    """KEEP_DAYS before `as_of`, on the Monday on or before it: it moves a week at a time,
    so the book is tidied once a week, at the same dates whatever order it was built in."""
    day = as_of.toordinal() - KEEP_DAYS
    return date.fromordinal(day - (day - 1) % 7)


def prune(book: Book, as_of: date, policy: Policy) -> None:
    """Forget what can no longer change a decision, once the horizon has moved: settled
    invoices and their payments (the ledger's `forget`), and the cost lines no kept invoice
    bills. Runs in the engine when the book's business date moves, so a live book and one
    rebuilt by replay forget the same things at the same point."""
    ledger = book.ledger
    limit = horizon(as_of)
    if ledger.horizon is not None and limit <= ledger.horizon:
        return
    keep = {h.invoice_id for h in book.holds.values() if h.invoice_id is not None}
    index = policy.suspend_stage_index
    if index is not None and policy.stages[index].scope == "all_subscriptions":
        # A suspension of all subscriptions takes them from the profile and every invoice
        # kept: each subscription's newest invoice stays.
        newest: dict[str, tuple[tuple[date, date, str], str]] = {}
        for inv in ledger.invoices.values():
            for sub in inv.subscription_ids:
                if sub not in newest or newest[sub][0] < inv.order:
                    newest[sub] = (inv.order, inv.invoice_id)
        keep.update(invoice_id for _, invoice_id in newest.values())
    ledger.forget(limit, keep)
    book.seen.trim(limit)
    book.released.trim(limit)
    # Forgotten ids are kept KEEP_DAYS more, so an event about one is refused by name.
    ledger.past.trim(limit - timedelta(days=KEEP_DAYS))
    if book.costs and not book.alerted:  # an episode told about is ended by a later step
        periods = billed(ledger)
        kept = {k: c for k, c in book.costs.items() if keeps(c, periods, limit)}
        if len(kept) != len(book.costs):
            book.costs = kept
