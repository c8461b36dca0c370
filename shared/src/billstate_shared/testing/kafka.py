"""Real-broker test helpers: mark where topics end, read what arrives after, with timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CATALOG

_applied: set[str] = set()


async def ensure_catalog(bootstrap: str) -> None:
    """Apply the topic catalog once per broker and test session."""
    if bootstrap not in _applied:
        report = await apply_topics(bootstrap, CATALOG)
        if report.drift:
            raise AssertionError(f"topic drift on the test broker: {report.drift}")
        _applied.add(bootstrap)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Where each partition of `topic` ends now: read after this to see only new records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return offsets
    finally:
        await consumer.stop()


async def read_after(
    bootstrap: str,
    start: dict[TopicPartition, int],
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Read records after `start` until `until(records)` holds; fail after `timeout` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while not until(records):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"condition not met within {timeout}s; read {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 30.0, every: float = 0.05
) -> None:
    """Poll a condition with a deadline; the only sanctioned way for a test to wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)
