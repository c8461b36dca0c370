"""Real-broker test helpers: mark where topics end, read what arrives after, with timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from billstate_devkit.localkafka import Layout, add_scram_user
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
            # aiokafka has no public way to refresh the consumer's metadata.
            await consumer._client.force_metadata_update()  # noqa: SLF001
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
    timeout: float = 30.0,  # noqa: ASYNC109  (the error says how many records came by then)
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
    predicate: Callable[[], bool],
    timeout: float = 30.0,  # noqa: ASYNC109  (the callers' API: each passes its own deadline)
    every: float = 0.05,
) -> None:
    """Poll a condition with a deadline; the only sanctioned way for a test to wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def local_scram(bootstrap: str, user: str, password: str) -> str:
    """The SCRAM-SHA-512 listener of the project's local broker, with `user` on it; skips
    for an external cluster (whose listeners the tests cannot know)."""
    layout = Layout.from_env()
    if bootstrap != layout.bootstrap:
        pytest.skip("SASL runs against the project's local broker, not an external cluster")
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", layout.sasl_port)) != 0:
            pytest.fail(
                "the local broker has no SCRAM listener (it was started before it had one):"
                " make kafka-down kafka-up"
            )
    await ensure_catalog(bootstrap)
    await asyncio.to_thread(add_scram_user, layout, user, password)
    return layout.sasl_bootstrap
