"""The collections worker as a process on a real broker: a record's offset commits only after
the broker acknowledged everything it wrote, a refused write stops the worker until it is
taken, and each input topic accepts only the event types its catalog entry carries.

The broker refuses writes here because a topic's `max.message.bytes` is shrunk with the admin
client (then restored); the worker runs under a fresh consumer group that starts at the end of
its topics, and every customer id is unique to its test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from billstate_devkit.kafka import end_offsets, read_after
from billstate_devkit.worker import (
    Worker,
    event,
    ids,
    poll,
    read_to_end,
    records_of,
    running,
    shrunk,
    tick,
    unique,
)
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import (
    BY_NAME,
    CONTROL,
    EVENTS,
    INVOICES,
    PAYMENTS,
    STATE,
    Topic,
)

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[4]
POLICY = ROOT / "policies" / "standard.yaml"


def changelog_of(group: str) -> Topic:
    """The books table's changelog as `ensure_changelog` creates it."""
    name = f"{group}-books-changelog"
    return Topic(name, (), "changelog", cleanup="compact", retention_days=None)


@pytest.fixture(scope="module")
async def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worker]:
    async with running(
        kafka_bootstrap, tmp_path_factory.mktemp("acks"), "collections", POLICY
    ) as w:
        yield w


# ---- acknowledged before committed ----------------------------------------------------


@pytest.mark.parametrize("target", ["output", "changelog", "dead letters"])
async def test_a_refused_write_stops_the_worker_until_the_broker_takes_it(
    worker: Worker, target: str
) -> None:
    customer = unique("blocked")
    topic = {
        "output": STATE,
        "changelog": changelog_of(worker.group),
        "dead letters": BY_NAME[INVOICES.dlq],
    }[target]
    # What the record makes the worker write: its book (changelog), its state record; or,
    # for a record that breaks the contract, its dead letter.
    value = b"{not json" if target == "dead letters" else event("invoice.issued", customer)
    since = {
        name: await end_offsets(worker.bootstrap, name)
        for name in (STATE.name, topic.name, INVOICES.dlq)
    }
    failures = await worker.metric("billstate_send_failures_total", topic=topic.name)

    async with shrunk(worker.admin, topic):
        tp, offset = await worker.send(INVOICES.name, customer, value)
        why = await worker.wait_blocked(topic.name)
        assert "MessageSizeTooLarge" in why, why
        # Retried with backoff, and the offset stays before the record all along.
        await poll(
            lambda: _more(worker, "billstate_send_failures_total", failures + 2, topic=topic.name),
            timeout=60,
        )
        assert await worker.committed(tp) <= offset
        status, body = await worker.probe("/healthz")
        assert status == 200, body  # retrying is alive; a restart would not help
        assert "blocked" in body["why"]
        assert await worker.metric("billstate_blocked", service="collections") == 1

    # Taken once the topic accepts it again: the worker resumes by itself.
    await poll(lambda: _committed_past(worker, tp, offset), timeout=60)
    await worker.wait_ready()
    assert await worker.metric("billstate_blocked", service="collections") == 0
    if target == "dead letters":
        letters = await read_after(
            worker.bootstrap, since[INVOICES.dlq], lambda rs: bool(records_of(rs, customer))
        )
        mine = records_of(letters, customer)
        assert len(mine) == 1
        assert read_headers(mine[0].headers)["offset"] == str(offset)
        return
    states = await read_after(
        worker.bootstrap, since[STATE.name], lambda rs: bool(records_of(rs, customer))
    )
    assert set(ids(records_of(states, customer)).values()) == {1}, "each state id exactly once"
    if target == "changelog":
        changes = await read_after(
            worker.bootstrap, since[topic.name], lambda rs: bool(records_of(rs, customer))
        )
        assert len(records_of(changes, customer)) == 1
        book = json.loads(records_of(changes, customer)[0].value)
        assert book["book"]["customer_id"] == customer


async def _more(worker: Worker, name: str, at_least: float, **labels: str) -> bool:
    return await worker.metric(name, **labels) >= at_least


async def _committed_past(worker: Worker, tp: TopicPartition, offset: int) -> bool:
    return await worker.committed(tp) > offset


async def test_a_commit_never_passes_a_record_whose_outputs_are_not_readable(
    worker: Worker,
) -> None:
    prefix = unique("flow")
    customers = [f"{prefix}-{i}" for i in range(300)]
    since = await end_offsets(worker.bootstrap, STATE.name)
    sent: dict[TopicPartition, list[tuple[int, str]]] = {}
    seen: set[str] = set()

    async def feed() -> None:
        for customer in customers:
            value = event("invoice.issued", customer)
            tp, offset = await worker.send(INVOICES.name, customer, value)
            sent.setdefault(tp, []).append((offset, customer))

    reader = AIOKafkaConsumer(bootstrap_servers=worker.bootstrap, enable_auto_commit=False)
    await reader.start()
    feeding = asyncio.create_task(feed())
    checks = 0
    try:
        reader.assign(list(since))
        for tp, position in since.items():
            reader.seek(tp, position)
        while True:
            # The group's commits first, then all the state topic holds by now: every record
            # below a committed offset must have its state record there already.
            fed = feeding.done()
            committed = {tp: await worker.committed(tp) for tp in list(sent)}
            ends = await reader.end_offsets(list(since))
            for tp, end in ends.items():
                while await reader.position(tp) < end:
                    for batch in (await reader.getmany(tp, timeout_ms=500)).values():
                        seen.update(r.key.decode() for r in batch if r.key is not None)
            for tp, offset in committed.items():
                done = [c for o, c in sent[tp] if o < offset]
                missing = [c for c in done if c not in seen]
                assert not missing, f"{tp} committed at {offset} before {missing[:3]} were written"
            checks += 1
            if fed and all(committed[tp] > records[-1][0] for tp, records in sent.items()):
                break
            await asyncio.sleep(0.05)
    finally:
        feeding.cancel()
        await reader.stop()
    assert set(customers) <= seen
    assert checks > 1


# ---- each topic carries its catalog's event types ---------------------------------------


async def _refused(worker: Worker, topic: Topic, key: str, value: bytes) -> dict[str, str]:
    """Send `value` where it does not belong; the dead letter's headers."""
    since = await end_offsets(worker.bootstrap, topic.dlq)
    _tp, offset = await worker.send(topic.name, key, value)
    letters = await read_after(
        worker.bootstrap,
        since,
        lambda rs: any(read_headers(r.headers).get("offset") == str(offset) for r in rs),
        timeout=60,
    )
    (letter,) = [r for r in letters if read_headers(r.headers).get("offset") == str(offset)]
    assert letter.value == value
    return read_headers(letter.headers)


async def _state_after(worker: Worker, topic: str, customer: str, value: bytes) -> dict[str, Any]:
    """Send a valid record for `customer`; the state record it produces."""
    since = await end_offsets(worker.bootstrap, STATE.name)
    await worker.send(topic, customer, value)
    records = await read_after(
        worker.bootstrap, since, lambda rs: bool(records_of(rs, customer)), timeout=60
    )
    state: dict[str, Any] = json.loads(records_of(records, customer)[-1].value)
    return state


async def test_a_hold_release_on_the_payments_topic_leaves_the_hold(worker: Worker) -> None:
    customer = unique("hold")
    placed = await _state_after(worker, CONTROL.name, customer, event("hold.placed", customer))
    assert [h["hold_id"] for h in placed["data"]["holds"]] == ["HOLD-19"]

    refused = await _refused(worker, PAYMENTS, customer, event("hold.released", customer))
    assert refused["field"] == "event_type"
    assert refused["event_type"] == "hold.released"
    assert refused["reason"] == (
        "hold.released is not accepted on billing.payments.v1;"
        " it carries payment.received, payment.reversed, payment.failed, payment.pending"
    )
    after = await _state_after(worker, INVOICES.name, customer, event("invoice.issued", customer))
    assert [h["hold_id"] for h in after["data"]["holds"]] == ["HOLD-19"]


async def test_an_aged_invoice_on_the_invoices_topic_escalates_nobody(worker: Worker) -> None:
    customer = unique("aged")
    since = await end_offsets(worker.bootstrap, EVENTS.name)
    await _state_after(worker, INVOICES.name, customer, event("invoice.issued", customer))
    refused = await _refused(worker, INVOICES, customer, event("invoice.aged", customer))
    assert refused["field"] == "event_type"
    assert refused["reason"].startswith("invoice.aged is not accepted on billing.invoices.v1;")
    upserted = event("customer.upserted", customer)
    after = await _state_after(worker, BY_NAME["billing.customers.v1"].name, customer, upserted)
    # Had it been taken, the book would be dated 2026-12-16, 15 days past due.
    assert after["data"]["stage"] == "current"
    assert after["data"]["as_of"] is None
    assert not records_of(await read_to_end(worker.bootstrap, since), customer)


async def test_a_clock_tick_on_an_input_topic_writes_no_state_for_everyone(
    worker: Worker,
) -> None:
    since = await end_offsets(worker.bootstrap, STATE.name)
    refused = await _refused(worker, INVOICES, "*", tick("2026-11-20T09:00:00+00:00"))
    assert refused["field"] == "event_type"
    assert refused["event_type"] == "clock.tick"
    assert refused["reason"] == (
        "clock.tick is not accepted on billing.invoices.v1;"
        " it carries invoice.issued, invoice.adjusted, invoice.voided"
    )
    # A record after it, processed: the tick's turn has passed, and it wrote nothing.
    marker = unique("marker")
    await _state_after(worker, INVOICES.name, marker, event("invoice.issued", marker))
    assert not records_of(await read_to_end(worker.bootstrap, since), "*")
