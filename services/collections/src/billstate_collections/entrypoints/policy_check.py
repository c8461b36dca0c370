"""At start-up: the policy file against the one the consumer group last accepted."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from billstate_collections.config import Settings
from billstate_shared.contracts import PolicyAccepted, PolicyAcceptedData, PolicyRef, decode
from billstate_shared.contracts import encode as encode_event
from billstate_shared.domain.policy import Accepted, Policy, digest, refuse_change
from billstate_shared.errors import ConfigRefused
from billstate_shared.kafka_auth import client_options
from billstate_shared.runtime.wallclock import utc_now
from billstate_shared.topics import POLICIES

READ_TIMEOUT_MS = 2000


async def last_accepted(settings: Settings) -> Accepted | None:
    """The group's latest `policy.accepted` record on collections.policies.v1, if any."""
    options = client_options(settings.kafka_auth)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    try:
        if POLICIES.name not in await consumer.topics():
            raise ConfigRefused(
                "topic",
                f"{POLICIES.name} does not exist; create the catalog's topics first"
                " (billstate topics create)",
            )
        tp = TopicPartition(POLICIES.name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: PolicyAccepted | None = None
        key = settings.consumer_group.encode()
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=READ_TIMEOUT_MS)
            for record in batch.get(tp, ()):
                if record.key == key and record.value is not None:
                    event = decode(record.value)
                    if isinstance(event, PolicyAccepted):
                        found = event
    finally:
        await consumer.stop()
    if found is None:
        return None
    data = found.data
    return Accepted(data.policy.name, data.policy.version, data.digest, tuple(data.stages))


async def accept(settings: Settings, policy: Policy) -> None:
    """Refuse to start (ConfigRefused) with a policy the group must not run; record a new
    version the group accepts, so that the next start-up compares against it."""
    previous = await last_accepted(settings)
    reason = refuse_change(previous, policy)
    if reason is not None:
        raise ConfigRefused("policy", reason)
    if previous is not None and previous.version == policy.version:
        return
    name, version = policy.ref
    record = PolicyAccepted(
        event_id=f"policy-{settings.consumer_group}-{name}-{version}"[:128],
        event_type="policy.accepted",
        occurred_at=utc_now(),  # when it was accepted: a fact of the deployment, not a decision
        customer_id="*",
        data=PolicyAcceptedData(
            policy=PolicyRef(name=name, version=version),
            digest=digest(policy),
            stages=[stage.name for stage in policy.stages],
            migrate=dict(policy.migrate),
            group=settings.consumer_group,
        ),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        **client_options(settings.kafka_auth),
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            POLICIES.name,
            encode_event(record),
            key=settings.consumer_group.encode(),
            partition=0,
        )
    finally:
        await producer.stop()
