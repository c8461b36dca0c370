"""A customer's collections state as the compacted `collections.state` record shows it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import policy_ref, stage_name
from billstate_collections.domain.exposure import exposure, money
from billstate_collections.domain.schedule import in_force, projected_entries
from billstate_shared.contracts import CollectionsStateData
from billstate_shared.contracts.outbound import Outbound
from billstate_shared.contracts.types import LATEST_DATE
from billstate_shared.domain.ids import make_id
from billstate_shared.domain.policy import Policy


def state_values(book: Book, policy: Policy) -> dict[str, Any]:
    """The state as JSON-ready values, keys in the contract's field order: what
    `CollectionsStateData` serializes to, built without validating (the worker publishes
    one per change; `state_data` validates the same values)."""
    a = assess(book, book.as_of, policy) if book.as_of is not None else None
    # A state is published after its event is handled, today's climb included: what comes
    # next comes on a later business date.
    upcoming = (
        projected_entries(book, policy, book.as_of, climbs_today=False)
        if book.as_of is not None
        else []
    )
    if upcoming and upcoming[0][1] > LATEST_DATE:
        upcoming = []  # beyond the contracts' date range: not a date anyone can act on
    anchor = a.anchor if a is not None else None
    values: dict[str, Any] = {
        "stage": stage_name(policy, book.stage),
        "delinquent": bool(a and a.delinquent),
        "overdue": [{"amount": format(amt, "f"), "currency": c} for c, amt in a.overdue]
        if a
        else [],
        "anchor_due_on": anchor.due_on.isoformat() if anchor is not None else None,
        "days_past_due": a.days_past_due if a else None,
        "as_of": book.as_of.isoformat() if book.as_of is not None else None,
        "holds": [
            {
                "hold_id": h.hold_id,
                "kind": h.kind,
                "invoice_id": h.invoice_id,
                "amount": None if h.amount is None else format(h.amount, "f"),
                "until": None if h.until is None else h.until.isoformat(),
                "reason": h.reason,
                "by": h.by,
                "placed_on": None if h.placed_on is None else h.placed_on.isoformat(),
            }
            for h in sorted(book.holds.values(), key=lambda h: h.hold_id)
        ],
        "suspended_subscription_ids": list(book.suspended),
        "next": {
            "stage": policy.stages[upcoming[0][0]].name,
            "earliest_on": upcoming[0][1].isoformat(),
        }
        if upcoming
        else None,
        "policy": policy_ref(policy),
        "pending_payments": [
            {
                "payment_id": p.payment_id,
                "amount": format(p.amount, "f"),
                "currency": p.currency,
                "expected_by": p.expected_by.isoformat(),
            }
            for p in (in_force(book, book.as_of) if book.as_of else in_force(book, date.min))
        ],
        "waiting": book.waited[-1] if book.waited else None,
    }
    values["exposure"] = money(exposure(book))
    values["tickets"] = [
        {
            "ticket_id": t.ticket_id,
            "topic": t.topic,
            "opened_on": t.opened_on.isoformat(),
            "holds_until": None if t.holds_until is None else t.holds_until.isoformat(),
        }
        for t in sorted(book.tickets.values(), key=lambda t: t.ticket_id)
    ]
    return values


def state_data(book: Book, policy: Policy) -> CollectionsStateData:
    return CollectionsStateData.model_validate(state_values(book, policy))


def state_record(book: Book, policy: Policy, occurred_at: datetime) -> Outbound:
    """The state record to publish after a change; its id names the change it follows.
    Its bytes are those of the encoded `CollectionsState`; `.model()` validates it."""
    return Outbound(
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
        data=state_values(book, policy),
    )
