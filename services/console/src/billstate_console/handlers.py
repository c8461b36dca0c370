"""Message handler of the console: decode, apply to the read model, write nothing.

A read model refuses nothing: a record it cannot decode is the writer's problem (the
writer's own readers dead-letter it), so the console logs it and moves on rather than
adding a second copy to the writer's DLQ. A tombstone (a deleted customer) is skipped.
"""

from __future__ import annotations

import structlog

from billstate_console.store import Store
from billstate_shared.contracts import ContractError, decode
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.topics import (
    ACCESS_EVENTS,
    CUSTOMERS,
    EVENTS,
    INVOICES,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
    PAYMENTS,
    STATE,
)

log = structlog.get_logger("billstate.console")

TOPICS = tuple(
    t.name
    for t in (
        STATE,
        EVENTS,
        CUSTOMERS,
        INVOICES,
        PAYMENTS,
        ACCESS_EVENTS,
        NOTICE_REQUESTS,
        NOTICE_DELIVERIES,
    )
)


class ConsoleHandler:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, record: Record) -> list[Produce]:
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
