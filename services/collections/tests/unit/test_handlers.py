"""The workers' handlers without Kafka: over a recorded history, collections' handler sends
what the in-process driver decides (plus a state record per change), keeps the table in step,
and after a crash (table ahead of the committed offsets) sends a re-read record's outputs
again, the same bytes; invoicing's handler ages what the driver ages."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from driver import Driver
from scenario import standard

from billstate_collections.handlers import CollectionsHandler, Committed
from billstate_invoicing.handlers import InvoicingHandler
from billstate_shared.contracts import ClockTick, Event, decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.runtime.records import Produce
from billstate_shared.topics import DUE_DATES, STATE

HISTORY = Path(__file__).resolve().parents[1] / "golden" / "history-60x120-seed11.jsonl"


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka's record time, in seconds (faust's Message)


def _inputs() -> list[tuple[Event, list[bytes]]]:
    """Collections' inputs in order (inbound events but ticks, and the aged events), each
    with what the driver decided for it, encoded."""
    driver = Driver(standard())
    found: list[tuple[Event, list[bytes]]] = []
    for line in HISTORY.read_bytes().splitlines():
        event = decode(line)
        out = driver.feed(event)
        if not isinstance(event, ClockTick):
            found.append((event, [to_bytes(p) for p in out]))
            continue
        # A tick's outputs: each aged event, then what it decided, until the next aged one.
        for p in out:
            raw = to_bytes(p)
            if p.event_type == "invoice.aged":
                found.append((decode(raw), []))
            else:
                found[-1][1].append(raw)
    return found


def test_collections_handler_sends_what_the_engine_decides_and_resends_after_a_crash() -> None:
    table: dict[bytes, bytes] = {}
    committed: dict[tuple[str, int], int | None] = {}

    def view() -> Committed:
        return committed

    handler = CollectionsHandler(table=table, policy=standard(), cache_size=8, committed=view)
    records: list[tuple[Rec, Event, list[Produce]]] = []
    states = 0
    for offset, (event, decided) in enumerate(_inputs()):
        record = Rec("in", 0, offset, event.customer_id.encode(), None)
        out = handler.handle(record, event)
        assert all(p.key == record.key for p in out)
        assert [p.value for p in out if p.topic != STATE.name] == decided
        states += sum(p.topic == STATE.name for p in out)
        records.append((record, event, out))
    assert states > 100

    # A crash after the table was written, before the offsets were committed: a new worker
    # (empty cache) reads the records again and sends their outputs again, unchanged.
    committed[("in", 0)] = len(records) - 50
    again = CollectionsHandler(table=dict(table), policy=standard(), cache_size=8, committed=view)
    for record, event, out in records[-50:]:
        if out:
            assert again.handle(record, event) == out


def test_invoicing_handler_ages_what_the_driver_ages() -> None:
    policy = standard()
    driver = Driver(policy)
    table: dict[bytes, bytes] = {}
    handler = InvoicingHandler(table=table, policy=policy, partition_of=lambda _key: 0)
    aged = 0
    for offset, line in enumerate(HISTORY.read_bytes().splitlines()):
        event = decode(line)
        expected = [
            Produce(DUE_DATES.name, p.customer_id.encode(), to_bytes(p))
            for p in driver.feed(event)
            if p.event_type == "invoice.aged"
        ]
        key = None if isinstance(event, ClockTick) else event.customer_id.encode()
        # Played as it happened: each record stamped at its event's time, as the broker would.
        record = Rec("in", 0, offset, key, line, event.occurred_at.timestamp())
        assert handler.handle(record, event) == expected
        aged += len(expected)
    assert aged > 100
    # The table alone rebuilds the aging index: a fresh handler ages the same invoices.
    fresh = InvoicingHandler(table=table, policy=policy, partition_of=lambda _key: 0)
    ticks = [e for e in map(decode, HISTORY.read_bytes().splitlines()) if isinstance(e, ClockTick)]
    last = ticks[-1]
    assert fresh.handle(Rec("in", 0, 0, None, None, last.occurred_at.timestamp()), last)
