"""Message handlers of collections: one record in; load the book, call the engine, and return
what to send (the book is written to its table here).

No faust or aiokafka here: the entrypoint hands in the table (any mutable mapping of bytes) and
a view of the committed offsets, and sends what `handle` returns.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import orjson
import structlog

from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_record
from billstate_shared.contracts import Event
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.topics import ACCESS_COMMANDS, EVENTS, NOTICE_REQUESTS, STATE

log = structlog.get_logger("billstate.collections")
# The per-message line is checked against the level before it is built: at WARNING,
# structlog's level filter still costs microseconds per call.
_levels = logging.getLogger("billstate.collections")

ROUTE = {
    "collections.stage_entered": EVENTS.name,
    "access.suspend": ACCESS_COMMANDS.name,
    "access.restore": ACCESS_COMMANDS.name,
    "notice.requested": NOTICE_REQUESTS.name,
}

Sent = list[list[Any]]  # [source topic, partition, offset, [[topic, value], ...]]
Committed = Mapping[tuple[str, int], int | None]  # (topic, partition) -> next offset to read


class Books:
    """The table plus a bounded cache of live books, so a hot customer is not re-read and
    re-parsed from RocksDB for every event; the table stays the source of truth.

    Each table value also keeps what the book's recent records produced ("sent"), until
    their offsets are committed. After a hard kill the changelog can be ahead of the
    committed offsets (a faust pitfall): the re-read record then finds its effect already
    in the book, and its outputs are sent again from here (same ids) instead of lost.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], size: int, policy: Policy) -> None:
        self.table, self.size, self.policy = table, size, policy
        self.cache: OrderedDict[str, tuple[Book, bytes, Sent]] = OrderedDict()

    def get(self, customer_id: str) -> tuple[Book, bytes, Sent]:
        hit = self.cache.get(customer_id)
        if hit is not None:
            self.cache.move_to_end(customer_id)
            return hit
        raw = self.table.get(customer_id.encode())
        if not raw:
            return Book(customer_id), b"", []
        value = orjson.loads(raw)
        book = load_book(value["book"], self.policy)
        return book, orjson.dumps(value["book"]), value["sent"]

    def put(self, book: Book, raw_book: bytes, sent: Sent) -> None:
        value = b'{"book":' + raw_book + b',"sent":' + orjson.dumps(sent) + b"}"
        self.table[book.customer_id.encode()] = value
        self.cache[book.customer_id] = (book, raw_book, sent)
        self.cache.move_to_end(book.customer_id)
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)

    def forget(self) -> None:
        """On rebalance or failure: reload from the table, the truth."""
        self.cache.clear()


def uncommitted(sent: Sent, committed: Committed) -> Sent:
    """The `[topic, partition, offset, outputs]` entries whose record is not committed yet.

    faust's map of committed offsets holds None for a partition it has not committed on
    (it is a defaultdict), so a missing and a None offset both mean "nothing committed".
    Its keys are `TP` named tuples, which a plain `(topic, partition)` tuple finds."""
    return [e for e in sent if e[2] >= (committed.get((e[0], e[1])) or 0)]


class CollectionsHandler:
    """One inbound or due-date record in: the book updated and stored, the outputs returned
    (decisions, then the `collections.state` record when the book changed), keyed like the
    record."""

    def __init__(
        self,
        *,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        cache_size: int,
        committed: Callable[[], Committed],
    ) -> None:
        self.books = Books(table, cache_size, policy)
        self.policy, self.committed = policy, committed

    def forget(self) -> None:
        """Drop the cached books (on revocation, or before a try is repeated)."""
        self.books.forget()

    def handle(self, record: Record, event: Event) -> list[Produce]:
        books, key = self.books, record.key
        book, before, sent = books.get(event.customer_id)
        source = [record.topic, record.partition, record.offset]
        again = next((entry[3] for entry in sent if entry[:3] == source), None)
        if again is not None:
            log.info("re-sent", outputs=len(again))  # rare: after a crash
            return [Produce(topic, key, value.encode()) for topic, value in again]
        policy = self.policy
        outputs = step(book, event, policy)
        raw = orjson.dumps(dump_book(book, policy))
        # The table keeps each output as text (in "sent"); the send takes the bytes as built.
        out: list[Produce] = []
        produced: list[list[str]] = []
        for o in outputs:
            topic, value = ROUTE[o.event_type], to_bytes(o)
            produced.append([topic, value.decode()])
            out.append(Produce(topic, key, value))
        if raw != before:
            value = state_record(book, policy, event.occurred_at).encode()
            produced.append([STATE.name, value.decode()])
            out.append(Produce(STATE.name, key, value))
        kept = uncommitted(sent, self.committed())
        if produced:
            kept.append([*source, produced])
        if raw != before or kept != sent:
            books.put(book, raw, kept)
        if _levels.isEnabledFor(logging.INFO):
            log.info("processed", event_type=event.event_type, outputs=len(outputs))
        return out
