"""Message handlers of collections: one record in; load the book, call the engine, and return
what to send; the books a batch changed are written at its flush.

No faust or aiokafka here: the entrypoint hands in the table (any mutable mapping of bytes) and
a view of the committed offsets, and sends what `handle` returns.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog
from prometheus_client import Counter

from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_record
from billstate_shared.contracts import Event
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.metrics import Metrics
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


@dataclass(slots=True)
class Dirty:
    """A book changed since the last flush: what it was when last stored, and the records
    applied to it since (to rebuild it should a later try fail half-way)."""

    book: Book
    stored: bytes  # the book's bytes as last written ("" when never)
    sent: Sent  # the table value's "sent" as last written
    applied: list[Event] = field(default_factory=list)
    produced: Sent = field(default_factory=list)  # this batch's [topic, partition, offset, outputs]
    at: datetime | None = None  # the latest record's occurred_at, for the state record
    last: list[Any] = field(default_factory=list)  # the latest record's [topic, partition, offset]


class CollectionsHandler:
    """One inbound or due-date record in: the book updated, the decisions returned at once;
    the book written and its `collections.state` record made once per flush, however many of
    the batch's records changed it (as Kafka Streams' record cache collapses writes)."""

    def __init__(
        self,
        *,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        cache_size: int,
        committed: Callable[[], Committed],
        metrics: Metrics | None = None,
    ) -> None:
        self.books = Books(table, cache_size, policy)
        self.policy, self.committed = policy, committed
        self.dirty: dict[str, Dirty] = {}
        self._decisions: Counter | None = None
        self._service = "collections"
        if metrics is not None:
            self._service = metrics.service
            self._decisions = Counter(
                "billstate_decisions",
                "Decisions made, by kind: stage entered, suspend, restore, notice requested",
                ["service", "kind"], registry=metrics.registry,
            )  # fmt: skip

    def forget(self) -> None:
        """Drop the cached books and the unflushed changes (on revocation, or when records
        are given up: they are read again, by this worker or the partition's next owner)."""
        self.books.forget()
        self.dirty.clear()

    def undo(self, event: Event) -> None:
        """Before a failed try is repeated or dead-lettered: the customer's book as it was
        before it, rebuilt from the stored book and the batch's earlier records (the engine
        is deterministic; their outputs were sent already)."""
        customer_id = event.customer_id
        books = self.books
        books.cache.pop(customer_id, None)
        dirty = self.dirty.get(customer_id)
        if dirty is None:
            return  # the table holds the book as it was
        policy = self.policy
        book = load_book(orjson.loads(dirty.stored), policy) if dirty.stored else Book(customer_id)
        for earlier in dirty.applied:
            step(book, earlier, policy)
        dirty.book = book
        books.cache[customer_id] = (book, dirty.stored, dirty.sent)

    def handle(self, record: Record, event: Event) -> list[Produce]:
        customer_id = event.customer_id
        dirty = self.dirty.get(customer_id)
        if dirty is None:
            book, stored, sent = self.books.get(customer_id)
        else:
            book, stored, sent = dirty.book, dirty.stored, dirty.sent
        # Every record, also after an earlier one of its customer in this batch: after a
        # crash the stored book can hold several records read again, and only the list of
        # what they sent knows which (recomputed, they would decide nothing).
        source = [record.topic, record.partition, record.offset]
        again = next((entry[3] for entry in sent if entry[:3] == source), None)
        if again is not None:
            log.info("re-sent", outputs=len(again))  # rare: after a crash
            key = record.key
            return [Produce(topic, key, value.encode()) for topic, value in again]
        outputs = step(book, event, self.policy)
        out: list[Produce] = []
        produced: list[list[str]] = []
        if outputs:
            key = record.key
            # The table keeps each output as text (in "sent"); the send takes the bytes.
            for o in outputs:
                topic, value = ROUTE[o.event_type], to_bytes(o)
                produced.append([topic, value.decode()])
                out.append(Produce(topic, key, value))
        # Only now, when nothing can fail any more: `undo` replays what is recorded here.
        if dirty is None:
            dirty = self.dirty[customer_id] = Dirty(book, stored, sent)
        dirty.applied.append(event)
        dirty.at = event.occurred_at
        dirty.last = [record.topic, record.partition, record.offset]
        if produced:
            dirty.produced.append([record.topic, record.partition, record.offset, produced])
        if self._decisions is not None:
            # Counted once decided; a record handled again after a failed send counts again.
            for o in outputs:
                self._decisions.labels(self._service, o.event_type).inc()
        if _levels.isEnabledFor(logging.INFO):
            log.info("processed", event_type=event.event_type, outputs=len(outputs))
        return out

    def flush(self) -> list[Produce]:
        """Each changed book written once, with one `collections.state` record if its state
        changed, and the outputs of its records not committed yet kept beside it."""
        if not self.dirty:
            return []
        policy, books, committed = self.policy, self.books, self.committed()
        out: list[Produce] = []
        for customer_id, dirty in self.dirty.items():
            book = dirty.book
            raw = orjson.dumps(dump_book(book, policy))
            changed = raw != dirty.stored
            if changed and dirty.at is not None:
                state = state_record(book, policy, dirty.at).encode()
                out.append(Produce(STATE.name, customer_id.encode(), state))
                # Kept with the batch's last record of this book, to be sent again with its
                # outputs if it is read again after a crash.
                produced = dirty.produced
                if produced and produced[-1][:3] == dirty.last:
                    produced[-1][3].append([STATE.name, state.decode()])
                else:
                    produced.append([*dirty.last, [[STATE.name, state.decode()]]])
            kept = uncommitted(dirty.sent, committed)
            kept.extend(dirty.produced)
            if changed or kept != dirty.sent:
                books.put(book, raw, kept)
        self.dirty.clear()
        return out
