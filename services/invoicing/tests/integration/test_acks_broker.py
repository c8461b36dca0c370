"""The invoicing worker as a process on a real broker: a clock tick's `invoice.aged` events
are acknowledged before the tick's offset commits (a refused one stops the worker until it is
taken), and a clock tick anywhere but on the clock topic ages nobody.

The broker refuses writes here because a topic's `max.message.bytes` is shrunk with the admin
client (then restored); the worker runs under a fresh consumer group that starts at the end of
its topics, and every customer id is unique to its test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from billstate_devkit.kafka import end_offsets, read_after
from billstate_devkit.worker import (
    Worker,
    event,
    poll,
    running,
    shrunk,
    tick,
    unique,
)
from billstate_shared.contracts import decode
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import BY_NAME, CLOCK, DUE_DATES, INVOICES, PAYMENTS

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[4]
POLICY = ROOT / "policies" / "standard.yaml"


@pytest.fixture(scope="module")
async def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worker]:
    root = tmp_path_factory.mktemp("acks")
    async with running(kafka_bootstrap, root, "invoicing", POLICY) as running_worker:
        yield running_worker


def aged_of(records: list[ConsumerRecord], customer: str) -> list[Any]:
    return [decode(r.value) for r in records if r.key == customer.encode()]


async def invoice(worker: Worker, customer: str) -> TopicPartition:
    """An invoice due 2026-11-01 for `customer`, recorded; the partition it sits on."""
    value = event("invoice.issued", customer, issued_on=date(2026, 10, 1), due_on=date(2026, 11, 1))
    tp, offset = await worker.send(INVOICES.name, customer, value)
    await poll(lambda: _committed_past(worker, tp, offset), timeout=60)
    return tp


async def clock(worker: Worker, partition: int, at: str) -> tuple[TopicPartition, int]:
    """A tick on the clock topic, on one partition (the clock writes one to each)."""
    sent = await worker.producer.send_and_wait(CLOCK.name, tick(at), key=b"*", partition=partition)
    return TopicPartition(CLOCK.name, partition), sent.offset


async def _committed_past(worker: Worker, tp: TopicPartition, offset: int) -> bool:
    return await worker.committed(tp) > offset


async def _more(worker: Worker, name: str, at_least: float, **labels: str) -> bool:
    return await worker.metric(name, **labels) >= at_least


async def test_the_aged_events_of_a_tick_wait_for_the_broker(worker: Worker) -> None:
    customers = [unique("aging") for _ in range(3)]
    partitions = {(await invoice(worker, c)).partition for c in customers}
    since = await end_offsets(worker.bootstrap, DUE_DATES.name)
    failures = await worker.metric("billstate_send_failures_total", topic=DUE_DATES.name)

    async with shrunk(worker.admin, BY_NAME[DUE_DATES.name]):
        ticks = [await clock(worker, p, "2026-11-10T09:00:00+00:00") for p in sorted(partitions)]
        why = await worker.wait_blocked(DUE_DATES.name)
        assert "MessageSizeTooLarge" in why, why
        await poll(
            lambda: _more(
                worker, "billstate_send_failures_total", failures + 2, topic=DUE_DATES.name
            ),
            timeout=60,
        )
        for tp, offset in ticks:
            assert await worker.committed(tp) <= offset

    for tp, offset in ticks:
        await poll(lambda tp=tp, offset=offset: _committed_past(worker, tp, offset), timeout=60)
    await worker.wait_ready()
    records = await read_after(
        worker.bootstrap, since, lambda rs: all(aged_of(rs, c) for c in customers), timeout=60
    )
    for customer in customers:
        aged = aged_of(records, customer)
        assert Counter(a.event_id for a in aged) == {aged[0].event_id: 1}, "once per id"
        assert aged[0].data.as_of == date(2026, 11, 10)


async def test_a_clock_tick_on_an_input_topic_ages_nobody(worker: Worker) -> None:
    customer = unique("early")
    tp = await invoice(worker, customer)
    since_aged = await end_offsets(worker.bootstrap, DUE_DATES.name)
    since_dlq = await end_offsets(worker.bootstrap, PAYMENTS.dlq)
    wrong = tick("2026-11-20T09:00:00+00:00")
    sent = await worker.producer.send_and_wait(
        PAYMENTS.name, wrong, key=b"*", partition=tp.partition
    )
    letters = await read_after(
        worker.bootstrap,
        since_dlq,
        lambda rs: any(read_headers(r.headers)["offset"] == str(sent.offset) for r in rs),
        timeout=60,
    )
    headers = [read_headers(r.headers) for r in letters]
    (refused,) = [h for h in headers if h["offset"] == str(sent.offset)]
    assert refused["service"] == "invoicing"
    assert refused["field"] == "event_type"
    assert refused["reason"] == (
        "clock.tick is not accepted on billing.payments.v1;"
        " it carries payment.received, payment.reversed, payment.failed, payment.pending"
    )
    # The real clock, later: what it ages is dated by it alone.
    await clock(worker, tp.partition, "2026-11-25T09:00:00+00:00")
    records = await read_after(worker.bootstrap, since_aged, lambda rs: bool(aged_of(rs, customer)))
    assert {a.data.as_of for a in aged_of(records, customer)} == {date(2026, 11, 25)}
