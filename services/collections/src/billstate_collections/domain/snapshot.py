"""A customer's collections state as the compacted `collections.state` record shows it."""

from __future__ import annotations

from datetime import datetime

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import stage_name
from billstate_collections.domain.schedule import projected_entries
from billstate_shared.contracts import (
    CollectionsState,
    CollectionsStateData,
    Hold,
    Money,
    NextStage,
    PolicyRef,
)
from billstate_shared.domain.ids import make_id
from billstate_shared.domain.policy import Policy


def state_data(book: Book, policy: Policy) -> CollectionsStateData:
    a = assess(book, book.as_of, policy) if book.as_of is not None else None
    # A state is published after its event is handled, today's climb included: what comes
    # next comes on a later business date.
    upcoming = (
        projected_entries(book, policy, book.as_of, climbs_today=False)
        if book.as_of is not None
        else []
    )
    next_stage = (
        NextStage(stage=policy.stages[upcoming[0][0]].name, earliest_on=upcoming[0][1])
        if upcoming
        else None
    )
    holds = [
        Hold(
            hold_id=h.hold_id,
            kind=h.kind,  # type: ignore[arg-type]
            invoice_id=h.invoice_id,
            amount=h.amount,
            until=h.until,
            reason=h.reason,
            by=h.by,
            placed_on=h.placed_on,
        )
        for h in sorted(book.holds.values(), key=lambda h: h.hold_id)
    ]
    return CollectionsStateData(
        stage=stage_name(policy, book.stage),
        delinquent=bool(a and a.delinquent),
        overdue=[Money(amount=amt, currency=c) for c, amt in a.overdue] if a else [],
        anchor_due_on=a.anchor.due_on if a and a.anchor else None,
        days_past_due=a.days_past_due if a else None,
        as_of=book.as_of,
        holds=holds,
        suspended_subscription_ids=list(book.suspended),
        next=next_stage,
        policy=PolicyRef(name=policy.name, version=policy.version),
    )


def state_event(book: Book, policy: Policy, occurred_at: datetime) -> CollectionsState:
    """The state record to publish after a change; its id names the change it follows."""
    return CollectionsState(
        event_id=make_id(
            "state",
            book.customer_id,
            book.ledger.version,
            book.version,
            book.transitions,
            book.as_of,
        ),
        event_type="collections.state",
        occurred_at=occurred_at,
        customer_id=book.customer_id,
        data=state_data(book, policy),
    )
