"""`topics apply` against a real broker: creates the catalog, is idempotent, and reports drift."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CATALOG, Topic

pytestmark = pytest.mark.broker


async def test_apply_creates_catalog_and_is_idempotent(kafka_bootstrap: str) -> None:
    await apply_topics(kafka_bootstrap, CATALOG)
    again = await apply_topics(kafka_bootstrap, CATALOG)
    assert again.created == []
    assert again.drift == []
    assert sorted(again.unchanged) == sorted(t.name for t in CATALOG)


async def test_apply_reports_partition_and_config_drift(kafka_bootstrap: str) -> None:
    name = f"test.drift.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 2, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()
    wanted = Topic(name, (), "drift probe", cleanup="compact", retention_days=None, partitions=3)

    report = await apply_topics(kafka_bootstrap, [wanted])

    assert report.created == []
    found = {(d.setting, d.expected, d.actual) for d in report.drift}
    assert ("partitions", "3", "2") in found
    assert ("cleanup.policy", "compact", "delete") in found
    assert ("retention.ms", "-1", "604800000") in found


async def test_dry_run_creates_nothing(kafka_bootstrap: str) -> None:
    name = f"test.dry.{uuid.uuid4().hex[:8]}"
    wanted = Topic(name, (), "dry-run probe", partitions=1)
    report = await apply_topics(kafka_bootstrap, [wanted], dry_run=True)
    assert report.created == [name]
    second = await apply_topics(kafka_bootstrap, [wanted], dry_run=True)
    assert second.created == [name]
