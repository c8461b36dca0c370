"""Events to read-model rows: pure, order-independent, idempotent by event id.

`project(current, event)` returns the customer row after the event and the timeline entry
the event adds. Every group of customer fields (the profile, the standing, the why, the next
step) remembers the version of the event that wrote it, `<occurred_at UTC>|<event_id>`, and
an event only overwrites a group it is newer than. So the rows do not depend on the order in
which the topics' partitions interleave: a store rebuilt from the topics equals the one built
record by record. The store applies an event id once (a redelivered record changes nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC
from decimal import Decimal

from billstate_console.domain.i18n import Words
from billstate_console.domain.timeline import KINDS, kind_of, tell
from billstate_shared.contracts import (
    AccessDrift,
    AccessFailed,
    AccessRestored,
    AccessSuspended,
    CollectionsState,
    CollectionsStateData,
    CustomerUpserted,
    StageEntered,
)
from billstate_shared.contracts.events import EventBase, Money

ENGLISH = Words("en")

# The envelope's customer id of events about no one customer (clock ticks, policies).
EVERYONE = "*"

Overdue = tuple[tuple[str, str], ...]  # (currency, amount as a decimal string), by currency


@dataclass(frozen=True)
class Customer:
    """One customer's row. `*_at` fields are the versions of the groups they follow."""

    customer_id: str
    name: str | None = None
    locale: str | None = None
    tags: tuple[str, ...] = ()
    billing_email: str | None = None
    partner_email: str | None = None
    subscriptions: tuple[str, ...] = ()
    profile_at: str = ""
    stage: str | None = None
    overdue: Overdue = ()
    as_of: str | None = None
    days_past_due: int | None = None
    standing_at: str = ""
    since: str | None = None
    why: str | None = None
    why_rule: str | None = None
    why_at: str = ""
    next_stage: str | None = None
    next_on: str | None = None
    waiting: str | None = None
    # What Microsoft has billed the partner for periods the customer has not paid for, per
    # Microsoft billing currency: the latest state record's, written with the next step.
    exposure: Overdue = ()
    # The latest state record's holds, pending payments, suspended subscriptions and policy,
    # as JSON (`state_json`); written with the next step, by the same records.
    state: str | None = None
    next_at: str = ""


@dataclass(frozen=True)
class Access:
    """One subscription's access as its provider last reported it (newest version wins).
    A parked suspension is no report: the pages lay it over this while it waits."""

    customer_id: str
    subscription_id: str
    access: str  # active | suspended | failed | drift
    provider: str
    at: str
    detail: str
    version: str


@dataclass(frozen=True)
class Entry:
    """One timeline entry: what happened to a customer, when, and why."""

    event_id: str
    customer_id: str
    occurred_at: str
    kind: str
    event_type: str
    summary: str
    why: str | None
    raw: str


@dataclass(frozen=True)
class Projection:
    """What one event changes: the customer's new row (None: none) and its timeline entry."""

    customer: Customer | None
    entry: Entry | None
    access: tuple[Access, ...] = ()


def utc(event: EventBase) -> str:
    """The event's time in UTC, fixed width, so that text order is time order."""
    return event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version(event: EventBase) -> str:
    return f"{utc(event)}|{event.event_id}"


def overdue_of(money: list[Money]) -> Overdue:
    """Per currency, summed, sorted by currency."""
    totals: dict[str, Decimal] = {}
    for item in money:
        totals[item.currency] = totals.get(item.currency, Decimal(0)) + item.amount
    return tuple((currency, str(totals[currency])) for currency in sorted(totals))


def _apply(current: Customer, event: EventBase, at: str) -> Customer:
    match event:
        case CustomerUpserted(data=d) if at > current.profile_at:
            return replace(
                current,
                name=d.name,
                locale=d.locale,
                tags=tuple(d.tags),
                billing_email=str(d.billing_email),
                partner_email=str(d.partner_contact_email),
                subscriptions=tuple(d.subscription_ids),
                profile_at=at,
            )
        case StageEntered(data=d):
            row = current
            if at > row.standing_at:
                row = replace(
                    row,
                    stage=d.stage,
                    overdue=overdue_of(d.overdue),
                    as_of=d.as_of.isoformat(),
                    days_past_due=d.days_past_due,
                    standing_at=at,
                )
            if at > row.why_at:
                row = replace(
                    row, since=d.as_of.isoformat(), why=d.why.text, why_rule=d.why.rule, why_at=at
                )
            return row
        case CollectionsState(data=d):
            row = current
            if at > row.standing_at:
                row = replace(
                    row,
                    stage=d.stage,
                    overdue=overdue_of(d.overdue),
                    as_of=d.as_of.isoformat() if d.as_of else row.as_of,
                    days_past_due=d.days_past_due,
                    standing_at=at,
                )
            if at > row.next_at:
                row = replace(
                    row,
                    next_stage=d.next.stage if d.next else None,
                    next_on=d.next.earliest_on.isoformat() if d.next else None,
                    waiting=d.waiting,
                    exposure=overdue_of(d.exposure),
                    state=state_json(d),
                    next_at=at,
                )
            return row
    return current


# What the row keeps of a state record; `tickets` (issue 17): the open support tickets, a
# payment claim's hold date with each.
STATE_FIELDS = set({"holds", "pending_payments", "suspended_subscription_ids", "policy", "tickets"})


def state_json(d: CollectionsStateData) -> str:
    """What the customer page shows of a state record besides the standing and next step."""
    body = d.model_dump(mode="json", include=STATE_FIELDS)
    return json.dumps(body, sort_keys=True)


def access_of(event: EventBase, at: str | None = None) -> tuple[Access, ...]:
    """The per-subscription access an actuator's event reports; () for any other event.
    `at`: the event's `utc`, when the caller has it."""
    at = at or utc(event)
    ver = f"{at}|{event.event_id}"
    cid = event.customer_id
    match event:
        case AccessSuspended(data=d):
            found = [(d.subscription_id, "suspended", d.provider, f"command {d.command_id}")]
        case AccessRestored(data=d):
            found = [(d.subscription_id, "active", d.provider, f"command {d.command_id}")]
        case AccessFailed(data=d):
            found = [(d.subscription_id, "failed", d.provider, d.error)]
        case AccessDrift(data=d):
            text = f"observed {d.observed}, should be {d.desired}"
            found = [(d.subscription_id, "drift", d.provider, text)]
        case _:
            return ()
    return tuple(Access(cid, sub, what, prov, at, text, ver) for sub, what, prov, text in found)


def project(current: Customer | None, event: EventBase) -> Projection:
    """The customer row after `event` and the timeline entry it adds (pure)."""
    if event.customer_id == EVERYONE:
        return Projection(None, None)
    before = current if current is not None else Customer(event.customer_id)
    at = utc(event)
    after = _apply(before, event, f"{at}|{event.event_id}")
    kind = kind_of(event.event_type)
    entry = None
    if kind is not None:
        raw = event.model_dump_json()
        # The English words are kept for a reader of the table; the pages and the API
        # render each entry from `raw` in the language asked for.
        told = tell(event.event_type, json.loads(raw)["data"], ENGLISH)
        entry = Entry(
            event_id=event.event_id,
            customer_id=event.customer_id,
            occurred_at=at,
            kind=kind,
            event_type=event.event_type,
            summary=told.summary,
            why=told.why,
            raw=raw,
        )
    changed = after != current
    return Projection(after if changed else None, entry, access_of(event, at))


def redact(raw: str) -> str:
    """An entry's raw JSON without e-mail addresses (for a viewer)."""

    def walk(value: object) -> object:
        if isinstance(value, dict):
            return {k: ("[redacted]" if k.endswith("email") else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return json.dumps(walk(json.loads(raw)), sort_keys=True)


__all__ = [
    "KINDS",
    "Access",
    "Customer",
    "Entry",
    "Projection",
    "access_of",
    "overdue_of",
    "project",
    "redact",
    "version",
]
