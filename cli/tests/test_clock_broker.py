"""`billstate clock tick` on a real broker: the broker, not the sender, stamps a tick's time."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from billstate_cli.main import main
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import decode
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CLOCK

pytestmark = pytest.mark.broker

LOG_APPEND_TIME = 1  # Kafka's timestamp type of a record the broker stamped


async def test_a_tick_within_the_skew_is_sent_and_stamped_by_the_broker(
    kafka_bootstrap: str,
) -> None:
    await ensure_catalog(kafka_bootstrap)
    start = await end_offsets(kafka_bootstrap, CLOCK.name)
    at = datetime.now(UTC) + timedelta(minutes=5)
    before = datetime.now(UTC)
    code = await asyncio.to_thread(
        main, ["clock", "tick", "--at", at.isoformat(), "--bootstrap", kafka_bootstrap]
    )
    assert code == 0
    records = await read_after(
        kafka_bootstrap, start, lambda found: len(found) >= CLOCK.partitions, timeout=60
    )
    assert {TopicPartition(r.topic, r.partition) for r in records} == set(start)
    for record in records:
        assert decode(record.value).occurred_at == at
        assert record.timestamp_type == LOG_APPEND_TIME
        stamped = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC)


async def test_a_clock_topic_stamped_by_its_senders_is_reported_as_drift(
    kafka_bootstrap: str,
) -> None:
    """A clock topic created before the catalog said LogAppendTime: `topics apply` names it."""
    name = f"test.clock.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()
    wanted = dataclasses.replace(CLOCK, name=name, partitions=1)
    report = await apply_topics(kafka_bootstrap, [wanted])
    assert {(d.setting, d.expected, d.actual) for d in report.drift} >= {
        ("message.timestamp.type", "LogAppendTime", "CreateTime")
    }
    assert CLOCK.config["message.timestamp.type"] == "LogAppendTime"
