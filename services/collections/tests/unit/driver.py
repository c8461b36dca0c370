"""The tests' driver: invoicing's aging and collections' engine composed in-process, as the
running system (and `billstate replay`) composes them, without importing the CLI.

A clock tick ages the open invoices, and each `invoice.aged` event goes through the engine at
once; any other inbound event goes to its customer's book, then to the aging index.
Invoicing and collections share one ledger per customer here (the second application is a
no-op duplicate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import step
from billstate_invoicing.domain.aging import Aging, Register, record
from billstate_shared.contracts import INBOUND_TYPES, ClockTick, Event
from billstate_shared.contracts.outbound import Produced
from billstate_shared.domain.policy import Policy


@dataclass
class Driver:
    """What the running system produces for a stream of inbound events, in order."""

    policy: Policy
    books: dict[str, Book] = field(default_factory=dict)
    registers: dict[str, Register] = field(default_factory=dict)
    aging: Aging = field(init=False)

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
            out: list[Produced] = []
            for aged in self.aging.tick(event.occurred_at, self.registers.get):
                out.append(aged)
                out.extend(step(self.books[aged.customer_id], aged, self.policy))
            return out
        book = self.book(event.customer_id)
        decided: list[Produced] = list(step(book, event, self.policy))
        record(self.aging, self.registers[event.customer_id], event)
        return decided
