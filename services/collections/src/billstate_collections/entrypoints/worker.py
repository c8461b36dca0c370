"""The collections faust worker: books in a RocksDB table with a changelog, the engine between."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from faust.types import TP

from billstate_collections.config import Settings
from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_record
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import Intake, make_app, process, raw_topic, watch_progress
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import (
    ACCESS_COMMANDS,
    CONTROL,
    CUSTOMERS,
    DUE_DATES,
    EVENTS,
    INVOICES,
    NOTICE_REQUESTS,
    PAYMENTS,
    STATE,
)

log = structlog.get_logger("billstate.collections")
# The per-message line is checked against the level before it is built: at WARNING,
# structlog's level filter still costs microseconds per call.
_levels = logging.getLogger("billstate.collections")

INPUTS = (INVOICES, PAYMENTS, CUSTOMERS, DUE_DATES, CONTROL)
ROUTE = {
    "collections.stage_entered": EVENTS.name,
    "access.suspend": ACCESS_COMMANDS.name,
    "access.restore": ACCESS_COMMANDS.name,
    "notice.requested": NOTICE_REQUESTS.name,
}


Sent = list[list[Any]]  # [source topic, partition, offset, [[topic, value], ...]]


class Books:
    """The table plus a bounded cache of live books, so a hot customer is not re-read and
    re-parsed from RocksDB for every event; the table stays the source of truth.

    Each table value also keeps what the book's recent records produced ("sent"), until
    their offsets are committed. After a hard kill the changelog can be ahead of the
    committed offsets (a faust pitfall): the re-read record then finds its effect already
    in the book, and its outputs are sent again from here (same ids) instead of lost.
    """

    def __init__(self, table: Any, size: int) -> None:
        self.table, self.size = table, size
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
        return load_book(value["book"]), orjson.dumps(value["book"]), value["sent"]

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


def uncommitted(sent: list[Any], committed: Mapping[Any, int | None]) -> list[Any]:
    """The `[topic, partition, offset, outputs]` entries whose record is not committed yet.

    faust's map of committed offsets holds None for a partition it has not committed on
    (it is a defaultdict), so a missing and a None offset both mean "nothing committed"."""
    return [e for e in sent if e[2] >= (committed.get(TP(e[0], e[1])) or 0)]


def build(settings: Settings, policy: Policy, progress: Progress, metrics: Metrics) -> Any:
    app = make_app(
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
        settings.data_dir,
        replication_factor=settings.replication_factor,
        commit_interval=settings.commit_interval,
        auth=settings.kafka_auth,
        producer_linger=settings.producer_linger,
    )
    inbound = raw_topic(app, *(t.name for t in INPUTS))
    outbound = {name: raw_topic(app, name) for name in {*ROUTE.values(), STATE.name}}
    table = app.Table("books", partitions=INPUTS[0].partitions, key_type=bytes, value_type=bytes)
    books = Books(table, settings.cache_size)
    intake = Intake(app, "collections", metrics, progress, [t.dlq for t in INPUTS])
    watch_progress(app, progress)

    @app.on_partitions_revoked.connect
    async def _forget(app: Any, revoked: Any, **kwargs: Any) -> None:
        books.forget()

    async def handle(message: Any, decoded: Any) -> None:
        book, before, sent = books.get(decoded.customer_id)
        source = [message.topic, message.partition, message.offset]
        again = next((entry[3] for entry in sent if entry[:3] == source), None)
        if again is not None:
            for topic, value in again:
                outbound[topic].send_soon(key=message.key, value=value.encode())
            log.info("re-sent", outputs=len(again))  # rare: after a crash
            return
        outputs = step(book, decoded, policy)
        raw = orjson.dumps(dump_book(book))
        produced = [[ROUTE[o.event_type], to_bytes(o).decode()] for o in outputs]
        if raw != before:
            state = state_record(book, policy, decoded.occurred_at)
            produced.append([STATE.name, state.encode().decode()])
        kept = uncommitted(sent, app.consumer._committed_offset)
        if produced:
            kept.append([*source, produced])
        if raw != before or kept != sent:
            books.put(book, raw, kept)
        for topic, value in produced:
            outbound[topic].send_soon(key=message.key, value=value.encode())
        if _levels.isEnabledFor(logging.INFO):
            log.info("processed", event_type=decoded.event_type, outputs=len(outputs))

    @app.agent(inbound, concurrency=1)
    async def collect(stream: Any) -> None:
        await process(stream, intake, handle, books.forget)

    return app
