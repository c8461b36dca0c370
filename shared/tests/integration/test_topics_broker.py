"""The catalog on a real broker: `topics apply` creates it, is idempotent and reports drift;
the console's catalog ACLs let it observe, act and re-drive, and nothing more."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from billstate_devkit.kafka import local_sasl_ssl
from billstate_shared.acls import apply_acls, service_acls
from billstate_shared.contracts import encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import ACCESS_COMMANDS, CASES, CATALOG, Topic

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


async def _send(bootstrap: str, auth: KafkaAuth, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **client_options(auth))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"contoso")
    finally:
        await producer.stop()


async def _commit(bootstrap: str, auth: KafkaAuth, group: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        **client_options(auth),
    )  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: 0})
    finally:
        await consumer.stop()


async def test_the_console_user_observes_acts_and_re_drives_and_writes_no_dead_letter(
    kafka_bootstrap: str,
) -> None:
    tls = await local_sasl_ssl(kafka_bootstrap)
    suffix = uuid.uuid4().hex[:8]
    user, password, base = f"console-{suffix}", f"console-password-{suffix}", f"console-{suffix}"
    await tls.add_user(user, password)
    acls = service_acls("console", user, base)
    assert await apply_acls(tls.bootstrap, acls, auth=tls.admin) == len(acls)
    auth = tls.auth(user, password)
    case = encode(EXAMPLES["case.acknowledged"])

    # Its own case notes, in a generation of its group; a re-drive back to a read topic.
    await _commit(tls.bootstrap, auth, f"{base}-7", CASES.name)
    await _send(tls.bootstrap, auth, CASES.name, case)
    await _send(tls.bootstrap, auth, ACCESS_COMMANDS.name, encode(EXAMPLES["access.suspend"]))
    # An observer refuses nothing, so it may not write a dead letter; nor use another group.
    with pytest.raises(TopicAuthorizationFailedError):
        await _send(tls.bootstrap, auth, ACCESS_COMMANDS.dlq, case)
    with pytest.raises(GroupAuthorizationFailedError):
        await _commit(tls.bootstrap, auth, f"collections-{suffix}", CASES.name)
