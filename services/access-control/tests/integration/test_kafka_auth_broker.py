"""access-control authenticating to Kafka with SASL/SCRAM-SHA-512, as against a Strimzi cluster.

The project's local broker has a SCRAM listener beside its plain one; the test adds a user,
runs the service on the SCRAM listener and feeds it through the plain one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_devkit.events import access_command
from billstate_devkit.kafka import end_offsets, local_scram, read_after, wait_for
from billstate_shared.kafka_auth import KafkaAuth
from billstate_shared.topic_admin import apply_topics, start_group_at_end
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, APPROVALS, CATALOG

pytestmark = pytest.mark.broker

USER = "billstate-test-access-control"
PASSWORD = "scram-test-password-7f3c"


@pytest.fixture
async def scram(kafka_bootstrap: str) -> str:
    """The local broker's SCRAM listener, with the test user on it."""
    return await local_scram(kafka_bootstrap, USER, PASSWORD)


async def test_the_service_consumes_and_produces_over_scram(
    kafka_bootstrap: str, scram: str, tmp_path: Path
) -> None:
    customer = f"sasl-{uuid.uuid4().hex[:10]}"
    group = f"access-control-sasl-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, group, [ACCESS_COMMANDS.name, APPROVALS.name])
    settings = Settings(
        kafka_bootstrap_servers=scram,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(PASSWORD),
        data_dir=tmp_path,
        http_port=0,
        consumer_group=group,
        reconcile_interval=0,
        payment_feed_max_age=0,  # not about the guards (test_guards_broker.py is)
    )
    service = AccessControl(settings)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or task.done(), timeout=30)
        start = await end_offsets(kafka_bootstrap, ACCESS_EVENTS.name)
        command = access_command("suspend", customer, f"cmd-{customer}", ["sub-a"])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(ACCESS_COMMANDS.name, command, key=customer.encode())
        finally:
            await producer.stop()
        records = await read_after(
            kafka_bootstrap,
            start,
            lambda rs: any(r.key == customer.encode() for r in rs),
            timeout=30,
        )
        (done,) = [json.loads(r.value) for r in records if r.key == customer.encode()]
        assert done["event_type"] == "access.suspended"
    finally:
        await service.stop()
        await asyncio.wait_for(task, timeout=30)
        await service.close()


async def test_a_wrong_password_is_refused_by_the_broker(scram: str) -> None:
    wrong = KafkaAuth(
        security_protocol="SASL_PLAINTEXT",
        sasl_username=USER,
        sasl_password=SecretStr("not-the-password"),
    )
    with pytest.raises(KafkaError) as caught:
        await asyncio.wait_for(apply_topics(scram, CATALOG, dry_run=True, auth=wrong), timeout=60)
    assert "not-the-password" not in str(caught.value)


def test_sasl_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="needs a SASL username and password"):
        Settings(kafka_security_protocol="SASL_SSL")
