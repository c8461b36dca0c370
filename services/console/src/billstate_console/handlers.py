"""Message handler of the console: decode, apply to the read model, write nothing.

A read model refuses nothing: a record it cannot decode is the writer's problem (the
writer's own readers dead-letter it), so the console logs it and moves on rather than
adding a second copy to the writer's DLQ. A tombstone (a deleted customer) is skipped.
A dead letter (a `*.dlq` topic) is not a contract: it is kept by its headers and its
position, before any decoding, with its original bytes for a re-drive.
"""

from __future__ import annotations

import structlog

from billstate_console.domain.cases import letter_of
from billstate_console.store import Store
from billstate_shared.contracts import ContractError, decode
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.topics import group_inputs

log = structlog.get_logger("billstate.console")

# Every topic the catalog lists the console as reading or observing, DLQs included.
TOPICS = tuple(t.name for t in group_inputs("console"))


class ConsoleHandler:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, record: Record) -> list[Produce]:
        if record.topic.endswith(".dlq"):
            letter = letter_of(
                record.topic,
                record.partition,
                record.offset,
                timestamp=getattr(record, "timestamp", None),
                key=record.key,
                value=record.value,
                headers=getattr(record, "headers", ()),
            )
            kept = self.store.apply_letter(letter)
            structlog.contextvars.bind_contextvars(customer_id=letter.customer_id, applied=kept)
            return []
        if record.value is None:
            return []
        try:
            event = decode(record.value)
        except ContractError as err:
            log.warning("unreadable record skipped", field=err.field, reason=err.reason)
            return []
        applied = self.store.apply(event)
        structlog.contextvars.bind_contextvars(
            customer_id=event.customer_id, event_id=event.event_id, applied=applied
        )
        return []
