"""Dry-run plan: the dated schedule of every notice and action for one customer if unpaid."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billstate_cli.replay import Replay
from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_data
from billstate_invoicing.domain.aging import Aging
from billstate_shared.contracts import (
    AccessRestore,
    AccessSuspend,
    CollectionsStateData,
    EventBase,
    NoticeRequested,
    StageEntered,
)
from billstate_shared.domain.ledger import ZERO

HORIZON_DAYS = 400


@dataclass(frozen=True)
class Plan:
    customer_id: str
    state: CollectionsStateData
    events: list[EventBase]  # what the system would produce, in order, ticking daily

    def items(self) -> list[dict[str, Any]]:
        """The schedule as plain rows: date, what, for whom, details."""
        rows: list[dict[str, Any]] = []
        for event in self.events:
            if isinstance(event, StageEntered):
                d = event.data
                rows.append(
                    {"date": d.as_of.isoformat(), "what": f"stage {d.stage}",
                     "detail": d.why.text, "id": event.event_id}
                )  # fmt: skip
            elif isinstance(event, NoticeRequested):
                n = event.data
                rows.append(
                    {"date": n.facts.get("as_of"), "what": f"notice {n.kind}",
                     "audience": n.audience, "locale": n.locale,
                     "suspension_on": n.facts.get("suspension_on"), "id": n.notice_id}
                )  # fmt: skip
            elif isinstance(event, AccessSuspend | AccessRestore):
                c = event.data
                verb = "suspend" if isinstance(event, AccessSuspend) else "restore"
                rows.append(
                    {"date": _date_of(self.events, event), "what": f"access {verb}",
                     "subscriptions": c.subscription_ids, "id": c.command_id}
                )  # fmt: skip
        return rows


def _date_of(events: list[EventBase], command: EventBase) -> str | None:
    """Commands carry no date of their own: they happen with the stage change before them."""
    found: str | None = None
    for event in events:
        if isinstance(event, StageEntered):
            found = event.data.as_of.isoformat()
        if event is command:
            return found
    return found


def _done(book: Book, policy_stages: int) -> bool:
    no_debt = all(inv.open <= ZERO for inv in book.ledger.invoices.values())
    return no_debt or book.stage == policy_stages - 1


def plan(replay: Replay, customer_id: str, last_tick: datetime | None) -> Plan:
    """Tick daily from the state after the input, on a copy, until nothing more can happen.

    The copy runs the same aging and engine as replay, so a test clock that sends the same
    daily ticks reproduces the plan item for item.
    """
    policy = replay.policy
    if customer_id not in replay.books:
        raise KeyError(f"no events for customer {customer_id!r} in the input")
    book = copy.deepcopy(replay.books[customer_id])
    register = copy.deepcopy(replay.registers[customer_id])
    register.ledger = book.ledger
    aging = Aging(policy)
    aging.today = replay.aging.today
    aging.watch(register)
    state = state_data(book, policy)
    when = last_tick or datetime.combine(
        book.as_of or min(i.issued_on for i in book.ledger.invoices.values()),
        datetime.min.time().replace(hour=9),
        tzinfo=policy.zone,
    )
    events: list[EventBase] = []
    lookup = {customer_id: register}.get
    for _ in range(HORIZON_DAYS):
        if _done(book, len(policy.stages)):
            break
        when = when + timedelta(days=1)
        for aged in aging.tick(when, lookup):
            events.extend(step(book, aged, policy))
    return Plan(customer_id, state, events)
