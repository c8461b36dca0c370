"""The invoicing worker as a process on a real broker: a clock tick's `invoice.aged` events
are acknowledged before the tick's offset commits (a refused one stops the worker until it is
taken), and a clock tick anywhere but on the clock topic ages nobody.

The broker refuses writes here because a topic's `max.message.bytes` is shrunk with the admin
client (then restored); the worker runs under a fresh consumer group that starts at the end of
its topics, and every customer id is unique to its test.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from billstate_cli.drive import start_at_end
from billstate_cli.local import Fleet, Service
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import BY_NAME, CLOCK, DUE_DATES, INVOICES, PAYMENTS, Topic

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[4]
POLICY = ROOT / "policies" / "standard.yaml"
SMALL = "100"  # bytes: smaller than any record the worker writes


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(event_type: str, customer_id: str, **update: Any) -> bytes:
    """The catalog example of `event_type` for `customer_id`, its ids made unique to it."""
    example = EXAMPLES[event_type]
    data = example.data.model_copy(update=update) if update else example.data
    return encode(
        example.model_copy(
            update={
                "customer_id": customer_id,
                "event_id": f"{example.event_id}-{customer_id}",
                "data": data,
            }
        )
    )


def tick(at: str) -> bytes:
    return json.dumps(
        {
            "event_id": f"tick-{at}",
            "event_type": "clock.tick",
            "schema_version": 1,
            "occurred_at": at,
            "customer_id": "*",
            "data": {},
        }
    ).encode()


@dataclass
class Worker:
    bootstrap: str
    group: str
    service: Service
    producer: AIOKafkaProducer
    admin: AIOKafkaAdminClient

    async def send(self, topic: str, key: str, value: bytes) -> tuple[TopicPartition, int]:
        """Produce one record; where it landed."""
        sent = await self.producer.send_and_wait(topic, value=value, key=key.encode())
        return TopicPartition(topic, sent.partition), sent.offset

    async def committed(self, tp: TopicPartition) -> int:
        offsets = await self.admin.list_consumer_group_offsets(self.group, partitions=[tp])
        found = offsets.get(tp)
        return -1 if found is None else int(found.offset)

    async def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        def get() -> tuple[int, dict[str, Any]]:
            try:
                with urllib.request.urlopen(self.service.url(path), timeout=5) as answer:
                    return int(answer.status), json.loads(answer.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        return await asyncio.to_thread(get)

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus series whose labels include `labels`."""

        def get() -> str:
            with urllib.request.urlopen(self.service.url("/metrics"), timeout=5) as answer:
                return str(answer.read().decode())

        total = 0.0
        for line in (await asyncio.to_thread(get)).splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def wait_blocked(self, topic: str) -> str:
        """Wait until /readyz says the worker is blocked on `topic`; the reason."""
        found: list[str] = []

        async def check() -> bool:
            status, body = await self.probe("/readyz")
            found[:] = [body["why"]]
            return status == 503 and "blocked" in body["why"] and topic in body["why"]

        await poll(check, timeout=60)
        return found[0]

    async def wait_ready(self) -> None:
        async def check() -> bool:
            status, _body = await self.probe("/readyz")
            return status == 200

        await poll(check, timeout=60)


async def poll(check: Callable[[], Any], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """`wait_for` for an async condition: poll it with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


async def alter(admin: AIOKafkaAdminClient, topic: str, configs: dict[str, str]) -> None:
    responses = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)]
    )
    errors = [r[:2] for response in responses for r in response.resources if r[0] != 0]
    assert not errors, f"altering {topic}: {errors}"


@asynccontextmanager
async def shrunk(admin: AIOKafkaAdminClient, topic: Topic) -> AsyncIterator[None]:
    """`topic` refuses every record the worker writes, until the block ends. The alter call
    replaces the topic's dynamic configs, so the catalog's are given with it, and restored."""
    await alter(admin, topic.name, {**topic.config, "max.message.bytes": SMALL})
    try:
        yield
    finally:
        await alter(admin, topic.name, topic.config)


@pytest.fixture(scope="module")
async def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worker]:
    await ensure_catalog(kafka_bootstrap)
    group = unique("invoicing-acks")
    await start_at_end(kafka_bootstrap, {"invoicing": group})
    fleet = Fleet(
        tmp_path_factory.mktemp("acks"),
        kafka_bootstrap,
        POLICY,
        extra_env={
            "BILLSTATE_INVOICING_CONSUMER_GROUP": group,
            "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await admin.start()
    try:
        fleet.start(("invoicing",))
        await asyncio.to_thread(fleet.wait_ready)
        yield Worker(kafka_bootstrap, group, fleet.get("invoicing"), producer, admin)
    finally:
        fleet.stop()
        await admin.close()
        await producer.stop()


async def read_to_end(bootstrap: str, since: dict[TopicPartition, int]) -> list[ConsumerRecord]:
    """Every record between `since` and where the topic ends now."""
    topic = next(iter(since)).topic
    ends = await end_offsets(bootstrap, topic)
    count = sum(ends[tp] - offset for tp, offset in since.items())
    if count == 0:
        return []
    return await read_after(bootstrap, since, lambda rs: len(rs) >= count)


def records_of(records: list[ConsumerRecord], customer: str) -> list[ConsumerRecord]:
    return [r for r in records if r.key == customer.encode()]


def ids(records: list[ConsumerRecord]) -> Counter[str]:
    return Counter(decode(r.value).event_id for r in records)


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
        " it carries payment.received, payment.reversed, payment.failed"
    )
    # The real clock, later: what it ages is dated by it alone.
    await clock(worker, tp.partition, "2026-11-25T09:00:00+00:00")
    records = await read_after(worker.bootstrap, since_aged, lambda rs: bool(aged_of(rs, customer)))
    assert {a.data.as_of for a in aged_of(records, customer)} == {date(2026, 11, 25)}
