"""Limits of what a book keeps: the largest book and what one record makes of it fit one Kafka
record far below 1 MB; the dedupe windows stay bounded and still know an old event; every
access command carries a `sequence` that grows per customer."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from driver import Driver
from scenario import standard

from billstate_collections.domain.book import DEDUPE_SIZE, Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import step
from billstate_collections.handlers import CollectionsHandler
from billstate_shared.contracts import Event, decode
from billstate_shared.contracts.types import (
    MAX_HOLDS,
    MAX_ID,
    MAX_LABEL,
    MAX_SUBSCRIPTION_ID,
    MAX_SUBSCRIPTIONS,
    MAX_TAG,
    MAX_TAGS,
    MAX_TEXT,
)
from billstate_shared.errors import Refused

# The documented bound on one collections table value (docs/contracts.md, "Limits"): the book
# and the outputs of its last record, below 40% of Kafka's default 1 MB record limit.
BOUND = 384 * 1024
HISTORY = Path(__file__).resolve().parents[1] / "golden" / "history-60x120-seed11.jsonl"
WIDE = "\U0001d518"  # four bytes in UTF-8: the widest a character can be
CUSTOMER = "c" * 64
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def wide(prefix: str, length: int) -> str:
    return prefix + WIDE * (length - len(prefix))


def sub(i: int) -> str:
    return f"s{i:04}-".ljust(MAX_SUBSCRIPTION_ID, "x")


def envelope(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> Event:
    return decode(
        json.dumps(
            {
                "event_id": event_id,
                "event_type": event_type,
                "occurred_at": at.isoformat(),
                "customer_id": CUSTOMER,
                "data": data,
            }
        )
    )


def largest_history() -> list[Event]:
    """A customer with every list and string at its cap, in the widest characters: the whole
    profile, the most disputes with the longest reasons, both dedupe windows full, and an
    invoice billing the most subscriptions that goes unpaid until they are suspended."""
    subs = [sub(i) for i in range(MAX_SUBSCRIPTIONS)]
    at = START
    events = [
        envelope(
            wide("up-", MAX_ID),
            "customer.upserted",
            at,
            {
                "name": WIDE * MAX_TEXT,
                "locale": "zh-Hant-TW",
                "billing_email": "ap@example.com",
                "partner_contact_email": "am@example.com",
                "tags": [wide(f"t{i}-", MAX_TAG) for i in range(MAX_TAGS)],
                "subscription_ids": subs,
            },
        )
    ]
    issued, due, invoice = date(2026, 1, 5), date(2026, 2, 4), wide("A-", MAX_ID)
    data = {
        "invoice_id": invoice,
        "currency": "USD",
        "amount": "999999999999.9999",
        "issued_on": issued.isoformat(),
        "due_on": due.isoformat(),
        "subscription_ids": subs,
    }
    events.append(envelope(wide("iss-", MAX_ID), "invoice.issued", at, data))
    for i in range(DEDUPE_SIZE + 8):  # ids released but never placed: the window full
        at += timedelta(minutes=1)
        data = {"hold_id": wide(f"R{i}-", MAX_ID), "reason": WIDE * MAX_TEXT, "by": "ops"}
        events.append(envelope(wide(f"rel{i}-", MAX_ID), "hold.released", at, data))
    for i in range(DEDUPE_SIZE + 8):  # failed payments: the other window full
        at += timedelta(minutes=1)
        data = {"invoice_id": None, "reason": WIDE * MAX_TEXT, "will_retry": True}
        events.append(envelope(wide(f"pf{i}-", MAX_ID), "payment.failed", at, data))
    for i in range(MAX_HOLDS):  # disputes on a sliver of A: it still climbs to suspension
        at += timedelta(minutes=1)
        data = {
            "hold_id": wide(f"D{i}-", MAX_ID),
            "kind": "dispute",
            "invoice_id": invoice,
            "amount": "0.0001",
            "reason": WIDE * MAX_TEXT,
            "by": WIDE * MAX_LABEL,
        }
        events.append(envelope(wide(f"hp{i}-", MAX_ID), "hold.placed", at, data))
    for day in range(60):
        as_of = due - timedelta(days=10) + timedelta(days=day)
        data = {
            "invoice_id": invoice,
            "due_on": due.isoformat(),
            "as_of": as_of.isoformat(),
            "days_past_due": (as_of - due).days,
            "outstanding": {"amount": "999999999999.9999", "currency": "USD"},
            "subscription_ids": subs,
        }
        moment = datetime(as_of.year, as_of.month, as_of.day, 1, tzinfo=UTC)
        events.append(envelope(wide(f"aged-{day}-", MAX_ID), "invoice.aged", moment, data))
    return events


def test_the_largest_book_and_its_outputs_fit_far_below_a_kafka_record() -> None:
    policy = standard()
    table: dict[bytes, bytes] = {}
    committed: dict[tuple[str, int], int] = {}
    handler = CollectionsHandler(
        table=table, policy=policy, cache_size=4, committed=lambda: committed
    )
    largest, kinds = 0, defaultdict(int)
    for offset, event in enumerate(largest_history()):
        committed["in", 0] = offset  # what came before is committed, as after a commit
        record = Rec("in", 0, offset, CUSTOMER.encode(), None)
        for produced in handler.handle(record, event) + handler.flush():
            kinds[json.loads(produced.value)["event_type"]] += 1
            decode(produced.value)  # every output fits its own contract
        largest = max(largest, len(table[CUSTOMER.encode()]))
    value = json.loads(table[CUSTOMER.encode()])
    book = load_book(value["book"], policy)
    assert len(book.suspended) == MAX_SUBSCRIPTIONS
    assert len(book.holds) == MAX_HOLDS
    assert len(book.seen.ids) == len(book.released.ids) == DEDUPE_SIZE
    assert kinds["access.suspend"] == 1
    assert largest < BOUND, f"{largest} bytes"


def test_a_hold_beyond_the_cap_is_refused_and_changes_nothing() -> None:
    policy, book = standard(), Book(CUSTOMER)
    events = [e for e in largest_history() if e.event_type == "hold.placed"]
    for event in events:
        step(book, event, policy)
    before = dump_book(book, policy)
    extra = envelope(
        "hp-extra",
        "hold.placed",
        START + timedelta(days=1),
        {"hold_id": "D-extra", "kind": "manual", "reason": "one more", "by": "ops"},
    )
    with pytest.raises(Refused) as info:
        step(book, extra, policy)
    assert info.value.field == "data.hold_id"
    assert dump_book(book, policy) == before


def test_dedupe_windows_keep_a_fixed_number_of_ids_and_still_know_old_events() -> None:
    policy, book = standard(), Book(CUSTOMER)
    released = []
    for i in range(3 * DEDUPE_SIZE):
        at = START + timedelta(minutes=i)
        event = envelope(
            f"rel-{i}", "hold.released", at, {"hold_id": f"H-{i}", "reason": "", "by": "o"}
        )
        released.append(event)
        step(book, event, policy)
    assert len(book.released.ids) == DEDUPE_SIZE
    # H-0 left the window long ago; its placement (older than what was forgotten) is still
    # recognised, and so is its release delivered again.
    placed = envelope(
        "hp-0", "hold.placed", START, {"hold_id": "H-0", "kind": "manual", "reason": "", "by": "o"}
    )
    assert step(book, placed, policy) == []
    assert "H-0" not in book.holds
    assert step(book, released[0], policy) == []
    # A new hold, placed now, is placed.
    later = START + timedelta(days=1)
    fresh = envelope(
        "hp-new",
        "hold.placed",
        later,
        {"hold_id": "H-new", "kind": "manual", "reason": "", "by": "o"},
    )
    step(book, fresh, policy)
    assert "H-new" in book.holds
    # The window survives the table: dumped and loaded, the book knows the same events.
    again = load_book(json.loads(json.dumps(dump_book(book, policy))), policy)
    assert dump_book(again, policy) == dump_book(book, policy)
    assert again.released.knows("H-0", START)


def test_a_book_stored_before_windows_loads() -> None:
    stored = dump_book(Book(CUSTOMER), standard())
    stored["released"], stored["seen"] = ["H-1", "H-2"], ["evt-9"]
    book = load_book(stored, standard())
    assert book.released.knows("H-2", START)
    assert book.seen.knows("evt-9", START)
    assert not book.seen.knows("evt-10", START)


def test_commands_carry_a_sequence_that_grows_per_customer() -> None:
    driver = Driver(standard())
    last: dict[str, int] = {}
    commands = 0
    for line in HISTORY.read_bytes().splitlines():
        for produced in driver.feed(decode(line)):
            if produced.event_type not in {"access.suspend", "access.restore"}:
                continue
            model = produced.model()
            sequence = model.data.sequence  # type: ignore[union-attr]
            assert sequence is not None
            assert sequence > last.get(model.customer_id, -1)
            last[model.customer_id] = sequence
            commands += 1
    assert commands > 10


def test_a_book_suspends_at_most_the_subscriptions_one_command_can_name() -> None:
    policy, book = standard(), Book(CUSTOMER)
    due = date(2026, 2, 4)
    at = START
    invoices = {"A": [f"a{i}" for i in range(MAX_SUBSCRIPTIONS)]}
    invoices["B"] = [f"b{i}" for i in range(MAX_SUBSCRIPTIONS)]
    for invoice, subs in invoices.items():
        data = {
            "invoice_id": invoice,
            "currency": "USD",
            "amount": "100.00",
            "issued_on": "2026-01-05",
            "due_on": due.isoformat(),
            "subscription_ids": subs,
        }
        step(book, envelope(f"iss-{invoice}", "invoice.issued", at, data), policy)
    commands = []
    for day in range(40):
        as_of = due + timedelta(days=day)
        moment = datetime(as_of.year, as_of.month, as_of.day, 1, tzinfo=UTC)
        for invoice, subs in invoices.items():
            data = {
                "invoice_id": invoice,
                "due_on": due.isoformat(),
                "as_of": as_of.isoformat(),
                "days_past_due": day,
                "outstanding": {"amount": "100.00", "currency": "USD"},
                "subscription_ids": subs,
            }
            aged = envelope(f"aged-{invoice}-{day}", "invoice.aged", moment, data)
            for output in step(book, aged, policy):
                model = output.model()  # valid against its contract
                if model.event_type == "access.suspend":
                    commands.append(model)
    assert len(book.suspended) == MAX_SUBSCRIPTIONS
    assert [len(c.data.subscription_ids) for c in commands] == [MAX_SUBSCRIPTIONS]  # type: ignore[union-attr]
    assert book.suspended == tuple(sorted(invoices["A"]))
