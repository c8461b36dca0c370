"""The workers' handlers without Kafka: over a recorded history, collections' handler sends
what the in-process driver decides (plus a state record per change), keeps the table in step,
and after a crash (table ahead of the committed offsets) sends a re-read record's outputs
again, the same bytes; batched, it writes each book once per flush and ends where it ends
record by record, also when a try fails half-way; invoicing's handler ages what the driver
ages."""

from __future__ import annotations

import json
import sys
from collections import Counter as TallyCounter
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from driver import Driver
from scenario import standard

from billstate_collections.handlers import CollectionsHandler, Committed
from billstate_invoicing.handlers import InvoicingHandler
from billstate_shared.contracts import ClockTick, Event, decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.runtime.metrics import Metrics
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
        out = handler.handle(record, event) + handler.flush()  # an idle stream: one by one
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
            assert again.handle(record, event) + again.flush() == out
    # The same records read again in one batch: each still finds what it sent, also after
    # an earlier record of its customer in the batch.
    batched = CollectionsHandler(table=dict(table), policy=standard(), cache_size=8, committed=view)
    for record, event, out in records[-50:]:
        got = batched.handle(record, event)
        if out:
            assert got == out
    batched.flush()


def _one_by_one(
    handler: CollectionsHandler, inputs: list[tuple[Event, list[bytes]]]
) -> dict[bytes, bytes]:
    """Each record flushed at once (an idle stream); the last state record per customer."""
    states: dict[bytes, bytes] = {}
    for offset, (event, _decided) in enumerate(inputs):
        handler.handle(Rec("in", 0, offset, event.customer_id.encode(), None), event)
        states.update((p.key, p.value) for p in handler.flush() if p.key and p.value)
    return states


def _books(table: dict[bytes, bytes]) -> dict[bytes, object]:
    """The books in a table, without what each keeps to re-send (which differs by batch)."""
    return {key: json.loads(value)["book"] for key, value in table.items()}


@pytest.mark.parametrize("batch", [2, 37, 500])
def test_a_batch_writes_each_book_once_and_ends_where_one_by_one_ends(batch: int) -> None:
    inputs = _inputs()
    alone: dict[bytes, bytes] = {}
    final = _one_by_one(CollectionsHandler(table=alone, policy=standard(), cache_size=8,
                                           committed=dict), inputs)  # fmt: skip

    writes: list[bytes] = []

    class Table(dict[bytes, bytes]):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            writes.append(key)
            super().__setitem__(key, value)

    table = Table()
    handler = CollectionsHandler(table=table, policy=standard(), cache_size=8, committed=dict)
    decided: list[bytes] = []
    last_state: dict[bytes, bytes] = {}
    for start in range(0, len(inputs), batch):
        for offset, (event, expected) in enumerate(inputs[start : start + batch], start):
            out = handler.handle(Rec("in", 0, offset, event.customer_id.encode(), None), event)
            assert [p.value for p in out] == expected  # decisions go out at once
            decided.extend(p.value for p in out if p.value is not None)
        before = len(writes)
        states = handler.flush()
        assert all(p.topic == STATE.name for p in states)
        flushed = writes[before:]
        assert len(flushed) == len(set(flushed))  # each book written once per flush
        assert len(states) == len({p.key for p in states})
        last_state.update((p.key, p.value) for p in states if p.key and p.value)
    assert decided == [raw for _event, raws in inputs for raw in raws]
    assert _books(table) == _books(alone)
    assert last_state == final


def test_a_failed_try_is_undone_to_the_book_the_batch_had_made() -> None:
    inputs = _inputs()
    alone: dict[bytes, bytes] = {}
    _one_by_one(CollectionsHandler(table=alone, policy=standard(), cache_size=8,
                                   committed=dict), inputs)  # fmt: skip
    table: dict[bytes, bytes] = {}
    handler = CollectionsHandler(table=table, policy=standard(), cache_size=8, committed=dict)
    for offset, (event, _expected) in enumerate(inputs):
        record = Rec("in", 0, offset, event.customer_id.encode(), None)
        if offset % 7 == 3:
            # A try that changed the book half-way, then failed: undone, then tried again.
            book, _stored, _sent = handler.books.get(event.customer_id)
            live = (
                handler.dirty[event.customer_id].book
                if event.customer_id in handler.dirty
                else book
            )
            live.version += 1000
            live.holds.clear()
            handler.undo(event)
        handler.handle(record, event)
        if offset % 50 == 49:
            handler.flush()
    handler.flush()
    assert _books(table) == _books(alone)


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


def test_decisions_are_counted_by_kind_and_a_resent_record_counts_nothing() -> None:
    metrics = Metrics("collections")
    table: dict[bytes, bytes] = {}
    handler = CollectionsHandler(
        table=table, policy=standard(), cache_size=8, committed=dict, metrics=metrics
    )
    made: TallyCounter[str] = TallyCounter()
    records = []
    for offset, (event, decided) in enumerate(_inputs()):
        record = Rec("in", 0, offset, event.customer_id.encode(), None)
        handler.handle(record, event)
        handler.flush()
        made.update(decode(raw).event_type for raw in decided)
        records.append((record, event))
    assert {"collections.stage_entered", "access.suspend", "access.restore"} <= set(made)

    def counted(metrics: Metrics) -> dict[str, float | None]:
        sample = metrics.registry.get_sample_value
        name = "billstate_decisions_total"
        return {k: sample(name, {"service": "collections", "kind": k}) for k in made}

    assert counted(metrics) == {k: float(n) for k, n in made.items()}
    # Read again after a crash (offsets not committed): sent again from the table, not decided.
    fresh = Metrics("collections")
    again = CollectionsHandler(
        table=table, policy=standard(), cache_size=8, committed=dict, metrics=fresh
    )
    assert any(again.handle(record, event) for record, event in records[-50:])
    assert set(counted(fresh).values()) == {None}
