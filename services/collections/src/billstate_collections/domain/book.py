"""A customer's collections book: ledger, profile, holds, stage and what has been done."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from billstate_shared.domain.ledger import Ledger

CURRENT = -1  # stage index of a customer in no stage


@dataclass(slots=True)
class Profile:
    locale: str
    tags: frozenset[str]
    subscription_ids: tuple[str, ...]


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
    released: set[str] = field(default_factory=set)  # hold ids released, perhaps before placed
    reminded: set[tuple[str, int]] = field(default_factory=set)  # (invoice_id, days before due)
    # Event ids of applied events that carry no id of their own to dedupe by (profile
    # upserts, failed payments): a redelivered old upsert must not undo a newer one.
    seen: set[str] = field(default_factory=set)
    transitions: int = 0  # decisions made so far; part of every output id
    version: int = 0  # bumped when profile or holds change
    evaluated: tuple[int, int, date | None] = (-1, -1, None)  # what the last climb looked at
    wake_on: date = date.max  # before this date, with nothing else changed, time decides nothing

    def key(self) -> tuple[int, int, date | None]:
        return (self.ledger.version, self.version, self.as_of)
