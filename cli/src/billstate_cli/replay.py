"""The embedded mode: invoicing's aging and collections' engine composed in-process, no Kafka."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import step
from billstate_invoicing.domain.aging import Aging, Register, record
from billstate_shared.contracts import INBOUND_TYPES, ClockTick, ContractError, Event, decode
from billstate_shared.contracts.outbound import Produced, to_bytes
from billstate_shared.domain.policy import Policy


@dataclass
class Replay:
    """What the running system would produce for a stream of inbound events, in order.

    Invoicing and collections each keep a ledger per customer in production; here they share
    one (the second application is a no-op duplicate), so memory grows with customers.
    """

    policy: Policy
    books: dict[str, Book] = field(default_factory=dict)
    registers: dict[str, Register] = field(default_factory=dict)
    aging: Aging = field(init=False)
    last_tick: datetime | None = None

    def __post_init__(self) -> None:
        self.aging = Aging(self.policy)

    def book(self, customer_id: str) -> Book:
        book = self.books.get(customer_id)
        if book is None:
            book = self.books[customer_id] = Book(customer_id)
            self.registers[customer_id] = Register(customer_id, ledger=book.ledger)
        return book

    def feed(self, event: Event) -> list[Produced]:
        if event.event_type not in INBOUND_TYPES:
            raise ValueError(f"{event.event_type} is not an inbound event type")
        if isinstance(event, ClockTick):
            if self.last_tick is None or event.occurred_at > self.last_tick:
                self.last_tick = event.occurred_at
            out: list[Produced] = []
            for aged in self.aging.tick(event.occurred_at, self.registers.get):
                out.append(aged)
                out.extend(step(self.books[aged.customer_id], aged, self.policy))
            return out
        book = self.book(event.customer_id)
        decided: list[Produced] = list(step(book, event, self.policy))
        record(self.aging, self.registers[event.customer_id], event)
        return decided

    def run(self, events: Iterable[Event]) -> Iterator[Produced]:
        for event in events:
            yield from self.feed(event)


@dataclass
class Tally:
    inbound: int = 0
    bad: int = 0
    produced: Counter[str] = field(default_factory=Counter)


def replay_lines(
    replay: Replay,
    source: Iterable[bytes],
    out: BinaryIO,
    label: str,
    only: set[str] | None = None,
) -> Tally:
    """`billstate replay`'s loop: decode each line, feed it, write what it produced (or the
    `only` types of it); a bad line is reported on stderr with its number and skipped."""
    tally = Tally()
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            decided = replay.feed(decode(line))
        except (ContractError, ValueError) as err:
            tally.bad += 1
            print(f"{label}:{number}: {err}", file=sys.stderr)
            continue
        tally.inbound += 1
        for produced in decided:
            tally.produced[produced.event_type] += 1
            if not only or produced.event_type in only:
                out.write(to_bytes(produced))
                out.write(b"\n")
    return tally
