"""A collections book as JSON-ready data and back, for the state table and its changelog."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from billstate_collections.domain.book import (
    Book,
    CostLine,
    HoldRecord,
    Pending,
    Profile,
    Ticket,
    Window,
    digest,
)
from billstate_shared.domain.ledger_state import dump_ledger, front, load_ledger, unfront
from billstate_shared.domain.policy import CURRENT, Policy
from billstate_shared.errors import Refused


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _time(value: int | str | None) -> datetime | None:
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value) if value else None


def _stamp(at: datetime | None) -> int | str | None:
    """A window's time: whole seconds since the epoch for a UTC time (a third of the ISO
    form's bytes), else the ISO form."""
    if at is None:
        return None
    if at.microsecond == 0 and at.utcoffset() == timedelta(0):
        return int(at.timestamp())
    return at.isoformat()


def _dump_window(window: Window) -> dict[str, Any]:
    return {
        "ids": [[key, _stamp(at)] for key, at in window.ids.items()],
        "floor": _stamp(window.floor),
    }


def _load_window(data: Any) -> Window:
    if isinstance(data, list):  # a book stored before windows: a sorted list of ids
        return Window(dict.fromkeys(map(digest, data)))
    return Window({key: _time(at) for key, at in data["ids"]}, _time(data["floor"]))


def dump_book(book: Book, policy: Policy) -> dict[str, Any]:
    """The book as stored; its stage by name, so that a policy that adds, removes or
    reorders stages finds each customer where it was."""
    profile = book.profile
    data: dict[str, Any] = {
        "customer_id": book.customer_id,
        "ledger": dump_ledger(book.ledger),
        "profile": None if profile is None else
        [profile.locale, sorted(profile.tags), list(profile.subscription_ids)]
        + ([profile.timezone] if profile.timezone else []),
        "stage": CURRENT if book.stage < 0 else policy.stages[book.stage].name,
        "policy_version": policy.version,
        "entered_on": book.entered_on.isoformat() if book.entered_on else None,
        "as_of": book.as_of.isoformat() if book.as_of else None,
        "suspended": list(book.suspended),
        "holds": [
            [h.hold_id, h.kind, h.invoice_id, None if h.amount is None else str(h.amount),
             h.until.isoformat() if h.until else None, h.reason, h.by,
             h.placed_on.isoformat() if h.placed_on else None]
            for h in book.holds.values()
        ],
        "released": _dump_window(book.released),
        "reminded": sorted([inv, days] for inv, days in book.reminded),
        "seen": _dump_window(book.seen),
        "transitions": book.transitions,
        "version": book.version,
    }  # fmt: skip
    # Only when set: every other book's bytes stay as they were before these existed.
    if book.sequence_base:  # after a recovery
        data["sequence_base"] = book.sequence_base
    if book.pending:
        data["pending"] = [
            [p.payment_id, str(p.amount), p.currency, p.expected_by.isoformat()]
            for p in book.pending.values()
        ]
    if book.waited:
        data["waited"] = list(book.waited)
    if book.costs:
        # By charge period and currency, each once, and ids as what they add to the line
        # before: a month's lines share most of both (a book stored before this has
        # "costs", one full line each).
        periods: dict[tuple[date, date, str], list[CostLine]] = {}
        for c in book.costs.values():
            periods.setdefault((c.start, c.end, c.currency), []).append(c)
        lines: list[Any] = []
        for (start, end, currency), group in periods.items():
            rows: list[Any] = [start.isoformat(), end.isoformat(), currency]
            cost_id = sub = ref = ""
            for c in group:
                rows.append([front(cost_id, c.cost_id), front(sub, c.subscription_id),
                             str(c.amount), front(ref, c.invoice_ref)])  # fmt: skip
                cost_id, sub, ref = c.cost_id, c.subscription_id, c.invoice_ref
            lines.append(rows)
        data["lines"] = lines
    if book.alerted or book.episode:
        data["alerted"] = [list(book.alerted), book.episode]
    data.update(_dump_tickets(book))
    return data


def _dump_tickets(book: Book) -> dict[str, Any]:
    """Open support tickets and the episode's claim, only when there are any."""
    data: dict[str, Any] = {}
    if book.tickets:
        data["tickets"] = [
            [t.ticket_id, t.topic, t.opened_on.isoformat(),
             t.holds_until.isoformat() if t.holds_until else None]
            for t in book.tickets.values()
        ]  # fmt: skip
    if book.claimed:
        data["claimed"] = True
    return data


def _stage(data: dict[str, Any], policy: Policy) -> tuple[int, str | None]:
    """(stage index under `policy`, the stage name it moved from or None)."""
    stage = data["stage"]
    if isinstance(stage, int):  # stored by position, before stages had names in books
        return stage, None
    index = policy.stage_index(stage)
    if index is not None:
        return index, None
    target = policy.migrate.get(stage)
    index = None if target is None else policy.stage_index(target)
    if index is None:
        # The start-up check refuses such a policy; a book that still gets here is kept
        # as it is (its record goes to the dead-letter topic) rather than guessed at.
        raise Refused(
            "stage",
            f"the customer is in stage '{stage}', which policy {policy.name}"
            f" v{policy.version} neither has nor migrates",
        )
    return index, stage


def load_book(data: dict[str, Any], policy: Policy) -> Book:
    profile = data["profile"]
    stage, moved = _stage(data, policy)
    book = Book(
        data["customer_id"],
        ledger=load_ledger(data["ledger"]),
        profile=None if profile is None else
        Profile(profile[0], frozenset(profile[1]), tuple(profile[2]), *profile[3:4]),
        stage=stage,
        entered_on=_day(data["entered_on"]),
        as_of=_day(data["as_of"]),
        suspended=tuple(data["suspended"]),
        released=_load_window(data["released"]),
        reminded={(inv, days) for inv, days in data["reminded"]},
        seen=_load_window(data["seen"]),
        transitions=data["transitions"],
        version=data["version"],
        sequence_base=data.get("sequence_base", 0),
        pending={
            payment_id: Pending(payment_id, Decimal(amount), currency, date.fromisoformat(by))
            for payment_id, amount, currency, by in data.get("pending", ())
        },
        waited=tuple(data.get("waited", ())),
        policy_version=data.get("policy_version", 0),
        moved=moved,
        costs={
            cost_id: CostLine(cost_id, sub, date.fromisoformat(start), date.fromisoformat(end),
                              Decimal(amount), currency, ref)
            for cost_id, sub, start, end, amount, currency, ref in data.get("costs", ())
        },
    )  # fmt: skip
    for start, end, currency, *rows in data.get("lines", ()):
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        cost_id = sub = ref = ""
        for told, sub_told, amount, ref_told in rows:
            cost_id, sub = unfront(cost_id, told), unfront(sub, sub_told)
            ref = unfront(ref, ref_told)
            book.costs[cost_id] = CostLine(
                cost_id, sub, first, last, Decimal(amount), currency, ref
            )
    if "alerted" in data:
        book.alerted, book.episode = tuple(data["alerted"][0]), data["alerted"][1]
    for ticket_id, topic, opened_on, holds_until in data.get("tickets", ()):
        book.tickets[ticket_id] = Ticket(
            ticket_id, topic, date.fromisoformat(opened_on), _day(holds_until)
        )
    book.claimed = data.get("claimed", False)
    for hold_id, kind, invoice_id, amount, until, reason, by, placed_on in data["holds"]:
        book.holds[hold_id] = HoldRecord(
            hold_id, kind, invoice_id, None if amount is None else Decimal(amount),
            _day(until), reason, by, _day(placed_on),
        )  # fmt: skip
    return book
