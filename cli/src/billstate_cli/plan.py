"""Dry-run plan: the dated schedule of every notice and action for one customer if unpaid."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from billstate_cli.replay import Replay
from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_data
from billstate_invoicing.domain.aging import Aging
from billstate_shared.contracts import CollectionsStateData
from billstate_shared.contracts.outbound import Outbound
from billstate_shared.domain.ledger import ZERO
from billstate_shared.errors import Refused

HORIZON_DAYS = 400


@dataclass(frozen=True)
class Plan:
    customer_id: str
    state: CollectionsStateData
    events: list[tuple[date, Outbound]]  # (business date, what the system would produce)

    def items(self) -> list[dict[str, Any]]:
        """The schedule as plain rows: date, what, for whom, details."""
        rows: list[dict[str, Any]] = []
        for day, event in self.events:
            d = event.data
            row: dict[str, Any] = {"date": day.isoformat(), "id": event.event_id}
            if event.event_type == "collections.stage_entered":
                row.update(what=f"stage {d['stage']}", detail=d["why"]["text"])
            elif event.event_type == "notice.requested":
                row.update(
                    what=f"notice {d['kind']}",
                    audience=d["audience"],
                    locale=d["locale"],
                    suspension_on=d["facts"].get("suspension_on"),
                )
            else:
                verb = event.event_type.split(".")[1]
                row.update(what=f"access {verb}", subscriptions=d["subscription_ids"])
            rows.append(row)
        return rows


def _no_debt(book: Book) -> bool:
    return all(inv.open <= ZERO for inv in book.ledger.invoices.values())


def plan(replay: Replay, customer_id: str, last_tick: datetime | None) -> Plan:
    """Tick daily from the state after the input, on a copy, until nothing more can happen.

    The copy runs the same aging and engine as replay, so a test clock that sends the same
    daily ticks reproduces the plan item for item.
    """
    policy = replay.policy
    if customer_id not in replay.books:
        raise Refused("customer_id", f"no events for customer {customer_id!r} in the input")
    book = copy.deepcopy(replay.books[customer_id])
    register = copy.deepcopy(replay.registers[customer_id])
    register.ledger = book.ledger
    aging = Aging(policy)
    aging.today = replay.aging.today
    aging.latest = replay.aging.latest
    aging.watch(register)
    state = state_data(book, policy)
    when = last_tick or datetime.combine(
        book.as_of or min(i.issued_on for i in book.ledger.invoices.values()),
        datetime.min.time().replace(hour=9),
        tzinfo=policy.zone,
    )
    events: list[tuple[date, Outbound]] = []
    lookup = {customer_id: register}.get
    quiet = 0
    last = len(policy.stages) - 1
    for _ in range(HORIZON_DAYS):
        # At the last stage nothing moves up any more; a newly overdue invoice can still
        # widen a suspension, so stop only after a quiet month and a half.
        if _no_debt(book) or (book.stage == last and quiet > 45):
            break
        when = when + timedelta(days=1)
        produced = []
        for aged in aging.tick(when, lookup):
            produced.extend(step(book, aged, policy))
        day = book.as_of or aging.business_date(when)  # the customer's own date
        events.extend((day, p) for p in produced)
        quiet = 0 if produced else quiet + 1
    return Plan(customer_id, state, events)
