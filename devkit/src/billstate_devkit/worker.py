"""A faust worker run as a process on a real broker, for the tests that hold its guarantees:
produce, read its committed offsets, its probes and metrics, and make a topic refuse writes."""

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
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from billstate_cli.drive import start_at_end
from billstate_cli.local import Fleet
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.topics import Topic


class Served(Protocol):
    """A service process with an HTTP face (the CLI's local Fleet gives these)."""

    def url(self, path: str) -> str: ...


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
    service: Served
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
                url = self.service.url(path)
                with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  (loopback)
                    return int(answer.status), json.loads(answer.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        return await asyncio.to_thread(get)

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus series whose labels include `labels`."""

        def get() -> str:
            url = self.service.url("/metrics")
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  (loopback)
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


@asynccontextmanager
async def running(bootstrap: str, root: Path, service: str, policy: Path) -> AsyncIterator[Worker]:
    """`service` (a faust worker) as a process under a fresh group that starts at the end of
    its topics, committing every 0.1 s, with a producer and an admin client beside it."""
    await ensure_catalog(bootstrap)
    group = unique(f"{service}-acks")
    await start_at_end(bootstrap, {service: group})
    prefix = f"BILLSTATE_{service.upper()}_"
    env = {f"{prefix}CONSUMER_GROUP": group, f"{prefix}COMMIT_INTERVAL": "0.1"}
    fleet = Fleet(root, bootstrap, policy, extra_env=env)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await producer.start()
    await admin.start()
    try:
        fleet.start((service,))
        await asyncio.to_thread(fleet.wait_ready)
        yield Worker(bootstrap, group, fleet.get(service), producer, admin)
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
