"""Feed inbound events to Kafka as a billing bus and a clock would, paced so the result is exact."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.topic_admin import start_group_at_end
from billstate_shared.topics import CLOCK, Topic, group_inputs, topic_for

# The services whose consumer groups must catch up before business time moves on.
PIPELINE = ("invoicing", "collections")

Groups = Iterable[str] | dict[str, str]


def group_topics(service: str) -> list[Topic]:
    """The catalog topics a service's consumer group consumes (and commits offsets on)."""
    return group_inputs(service)


async def start_at_end(bootstrap: str, groups: dict[str, str]) -> None:
    """Commit each new group's offsets at the current end of the topics its service reads,
    so a service started under a fresh group sees only what is produced from now on."""
    for service, group in groups.items():
        read = [t.name for t in group_topics(service)]
        await start_group_at_end(bootstrap, group, read)


def tick_event(at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"tick-{at.isoformat()}",
        "event_type": "clock.tick",
        "schema_version": 1,
        "occurred_at": at.isoformat(),
        "customer_id": "*",
        "data": {},
    }


class Driver:
    """Produces events to their catalog topics; ticks go to every partition explicitly.

    Services read several topics at once, so Kafka keeps order only within a partition of
    one topic. To make a run exact (equal to `billstate replay` on the same input), the
    driver lets the pipeline catch up before each tick, after it, and before a customer's
    event on a second topic within one window.
    """

    def __init__(
        self, bootstrap: str, groups: Groups = PIPELINE, auth: KafkaAuth | None = None
    ) -> None:
        self.bootstrap = bootstrap
        # service -> consumer group id; a bare name is both
        self.groups = dict(groups) if isinstance(groups, dict) else {g: g for g in groups}
        # SASL/TLS on a cluster (the clock's KafkaUser on Kubernetes); plain locally
        kafka = {"bootstrap_servers": bootstrap, **client_options(auth)}
        self.producer = AIOKafkaProducer(**kafka, acks="all", enable_idempotence=True, linger_ms=5)
        self.admin = AIOKafkaAdminClient(**kafka)
        self.offsets = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
        self._window: dict[str, str] = {}  # customer -> topic written in this window
        self.sent = 0
        self.ticks = 0
        # Called after a tick is written and before the pipeline has caught up with it:
        # where a crash test pulls the plug.
        self.after_tick: Callable[[Driver], None] | None = None

    async def __aenter__(self) -> Self:
        await self.producer.start()
        await self.admin.start()
        await self.offsets.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.admin.close()
        await self.offsets.stop()

    async def send(self, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        if event["event_type"] == "clock.tick":
            await self.settle()
            for partition in range(CLOCK.partitions):
                await self.producer.send(CLOCK.name, value, key=b"*", partition=partition)
            self.ticks += 1
            if self.after_tick is not None:
                self.after_tick(self)
            await self.settle()
            return
        topic = topic_for(event["event_type"]).name
        customer = event["customer_id"]
        if self._window.get(customer, topic) != topic:
            await self.settle()
        self._window[customer] = topic
        await self.producer.send(topic, value, key=customer.encode())
        self.sent += 1

    async def settle(self, timeout: float = 120.0) -> None:  # noqa: ASYNC109  (a deadline for polling the broker, not a cancellation)
        """Wait until every group has committed past the end of every topic it reads."""
        await self.producer.flush()
        self._window.clear()
        deadline = time.monotonic() + timeout
        for service, group in self.groups.items():
            tps = [
                TopicPartition(t.name, p)
                for t in group_topics(service)
                for p in range(t.partitions)
            ]
            ends = await self.offsets.end_offsets(tps)
            # Records retention removed are behind nobody: a partition with none left gets
            # no commit from a group that never saw a record of it.
            firsts = await self.offsets.beginning_offsets(tps)
            while True:
                committed = await self.admin.list_consumer_group_offsets(group)
                behind = sum(
                    max(end - max(committed[tp].offset if tp in committed else 0, firsts[tp]), 0)
                    for tp, end in ends.items()
                )
                if behind == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"consumer group {group} is {behind} records behind")
                await asyncio.sleep(0.05)


async def drive(
    bootstrap: str,
    events: Iterable[dict[str, Any]],
    progress: Callable[[Driver, dict[str, Any]], None] | None = None,
    groups: Groups = PIPELINE,
) -> Driver:
    async with Driver(bootstrap, groups) as driver:
        for event in events:
            await driver.send(event)
            if progress is not None:
                progress(driver, event)
        await driver.settle()
        return driver
