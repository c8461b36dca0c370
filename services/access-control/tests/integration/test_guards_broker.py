"""The guards at the actuator on a real broker: the brake, a silent payment feed, one staff
notice per batch, operators' decisions on access.approvals.v1, restores that cancel, and
held commands that outlive a restart.

Each test runs its own service in-process (fresh consumer group at the end of the commands
and approvals topics, own data dir, own customer ids) with the built-in provider, whose
records show exactly what was applied and how often. The stale-feed tests point the service
at a payments topic of their own, created empty, so no other test's payments make it fresh.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_devkit.events import access_command
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topic_admin import start_group_at_end
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, APPROVALS

pytestmark = pytest.mark.broker

COMMANDS = ACCESS_COMMANDS.name
EVENTS = ACCESS_EVENTS.name
DECISIONS = APPROVALS.name
DECISIONS_DLQ = APPROVALS.dlq
AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
TOKEN = SecretStr("guards-test-token")
AUTH = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}
SETTLE = 2.0  # seconds a batch gathers before its notice


# -- helpers ---------------------------------------------------------------------------


def new_customer() -> str:
    return f"gd-{uuid.uuid4().hex[:12]}"


def suspend(customer: str, command_id: str, *subs: str) -> bytes:
    return access_command("suspend", customer, command_id, subs, at=AT)


def restore(customer: str, command_id: str, *subs: str) -> bytes:
    return access_command("restore", customer, command_id, subs, reason="paid", at=AT)


def decision(kind: str, customer: str, command_id: str, by: str = "mei.lin") -> bytes:
    return json.dumps(
        {
            "event_id": f"{kind}-{command_id}",
            "event_type": f"access.{kind}",
            "schema_version": 1,
            "occurred_at": "2027-01-11T10:00:00+00:00",
            "customer_id": customer,
            "data": {"command_id": command_id, "by": by, "reason": "checked with the AM"},
        }
    ).encode()


async def send(
    bootstrap: str, topic: str, *records: tuple[str, bytes], timestamp_ms: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(
                topic, value=value, key=key.encode(), timestamp_ms=timestamp_ms
            )
    finally:
        await producer.stop()


async def marks(bootstrap: str, *topics: str) -> dict[TopicPartition, int]:
    start: dict[TopicPartition, int] = {}
    for topic in topics:
        start.update(await end_offsets(bootstrap, topic))
    return start


def mine(records: list[ConsumerRecord], customers: set[str]) -> list[dict[str, Any]]:
    """The access events about `customers` (an approval notice: any that names one)."""
    found = []
    for record in records:
        if record.topic != EVENTS:
            continue
        event = json.loads(record.value)
        named = set(event["data"].get("customer_ids", [])) | {event["customer_id"]}
        if named & customers:
            found.append(event)
    return found


def of(events: list[dict[str, Any]], event_type: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["event_type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
    ]


def until(
    customers: set[str], *wanted: tuple[str, dict[str, Any], int]
) -> Callable[[list[ConsumerRecord]], bool]:
    """Read until, for each (event type, data fields, n), n such events about `customers`."""

    def done(records: list[ConsumerRecord]) -> bool:
        events = mine(records, customers)
        return all(len(of(events, kind, **data)) >= n for kind, data, n in wanted)

    return done


async def everything_since(
    bootstrap: str, start: dict[TopicPartition, int]
) -> list[ConsumerRecord]:
    """Every record after `start` up to where the topics end now."""
    topics = {tp.topic for tp in start}
    ends = await marks(bootstrap, *topics)
    wanted = {tp: ends[tp] - start.get(tp, 0) for tp in ends}

    def complete(records: list[ConsumerRecord]) -> bool:
        seen: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            seen[tp] = seen.get(tp, 0) + 1
        return all(seen.get(tp, 0) >= n for tp, n in wanted.items())

    return await read_after(bootstrap, start, complete, timeout=30)


async def fresh_topic(bootstrap: str, partitions: int = 2) -> str:
    """An empty payments topic of the test's own."""
    name = f"test-payments-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def new_group(bootstrap: str) -> str:
    await ensure_catalog(bootstrap)
    group = f"access-control-test-{uuid.uuid4().hex[:12]}"
    await start_group_at_end(bootstrap, group, [COMMANDS, DECISIONS])
    return group


@asynccontextmanager
async def running(
    bootstrap: str, data_dir: Path, group: str | None = None, **overrides: Any
) -> AsyncIterator[AccessControl]:
    """An access-control service with the built-in provider, started and assigned its
    partitions (of both topics), and stopped after; `overrides` are settings."""
    if group is None:
        group = await new_group(bootstrap)
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        data_dir=data_dir,
        http_host="127.0.0.1",
        http_port=0,
        http_token=TOKEN,
        consumer_group=group,
        reconcile_interval=0,
        retry_attempts=2,
        retry_base_delay=0.01,
        approval_settle=SETTLE,
        **({"payment_feed_max_age": 0} | overrides),
    )
    service = AccessControl(settings)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: len(service.loop.consumer.assignment()) >= 16 or task.done(), 60)
        assert not task.done(), "the consumer loop ended during start-up"
        yield service
    finally:
        await service.stop()
        try:
            await asyncio.wait_for(task, timeout=30)
        finally:
            await service.close()


async def metrics(service: AccessControl) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{service.port}/metrics") as answer,
    ):
        return await answer.text()


def calls(service: AccessControl, customer: str) -> dict[str, int]:
    """The built-in provider's calls per subscription of the customer."""
    return {s["subscription_id"]: s["calls"] for s in service.store.view(customer)}


async def processed(service: AccessControl, n: int) -> None:
    """Wait until the service has handled `n` records in all (commands and decisions)."""
    await wait_for(lambda: service.progress.processed >= n, timeout=60)


# -- the brake -------------------------------------------------------------------------


async def test_the_brake_holds_seven_of_ten_and_approving_applies_each_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    customers = [new_customer() for _ in range(10)]
    everyone = set(customers)
    async with running(kafka_bootstrap, tmp_path, brake_cap=3) as service:
        start = await marks(kafka_bootstrap, EVENTS)
        await send(
            kafka_bootstrap, COMMANDS, *((c, suspend(c, f"s-{c}", "sub-a")) for c in customers)
        )
        records = await read_after(
            kafka_bootstrap,
            start,
            until(
                everyone,
                ("access.suspended", {}, 3),
                ("access.parked", {}, 7),
                ("access.approval_needed", {}, 1),
            ),
            timeout=60,
        )
        events = mine(records, everyone)
        applied = sorted(e["customer_id"] for e in of(events, "access.suspended"))
        held = sorted(e["customer_id"] for e in of(events, "access.parked"))
        assert len(applied) == 3
        assert len(held) == 7
        assert sorted(applied + held) == sorted(customers)
        for customer in applied:
            assert service.store.builtin_status(customer, "sub-a") == "suspended"
        for customer in held:
            assert service.store.builtin_status(customer, "sub-a") is None
        parked = of(events, "access.parked")
        assert {p["data"]["guard"] for p in parked} == {"brake"}
        assert {p["data"]["provider"] for p in parked} == {"builtin"}
        assert sorted(p["data"]["reason"] for p in parked) == sorted(
            f"{n}th suspension in 24 hours on builtin; the cap is 3" for n in range(4, 11)
        )
        [notice] = of(events, "access.approval_needed")
        assert notice["data"]["count"] == 7
        assert notice["data"]["guard"] == "brake"
        assert sorted(notice["data"]["customer_ids"]) == held
        assert notice["customer_id"] == notice["data"]["customer_ids"][0]
        assert "billstate access approve --all --by NAME --reason TEXT" in notice["data"]["reason"]
        text = await metrics(service)
        assert 'billstate_access_awaiting_approval{guard="brake",service="access-control"} 7.0' in (
            text
        )
        assert (
            'billstate_access_guard_parks_total{guard="brake",service="access-control"} 7.0'
        ) in text

        # Approve all seven; the approvals topic is keyed by customer like the commands.
        approvals = [(c, decision("approve", c, f"s-{c}")) for c in held]
        await send(kafka_bootstrap, DECISIONS, *approvals)
        records = await read_after(
            kafka_bootstrap,
            start,
            until(
                everyone,
                ("access.unparked", {"outcome": "approved"}, 7),
                ("access.suspended", {}, 10),
            ),
            timeout=60,
        )
        for customer in customers:
            assert service.store.builtin_status(customer, "sub-a") == "suspended"
            assert calls(service, customer) == {"sub-a": 1}
        unparked = of(mine(records, everyone), "access.unparked")
        assert {(u["data"]["by"], u["data"]["reason"]) for u in unparked} == {
            ("mei.lin", "checked with the AM")
        }
        # Each approval's unparked comes before its suspension, on the customer's partition.
        for customer in held:
            order = [
                e["event_type"] for e in mine(records, {customer}) if e["customer_id"] == customer
            ]
            assert order[-2:] == ["access.unparked", "access.suspended"]

        # Sent again: nothing changes, nothing is announced.
        before = service.progress.processed
        await send(kafka_bootstrap, DECISIONS, *approvals)
        await processed(service, before + 7)
        for customer in customers:
            assert calls(service, customer) == {"sub-a": 1}
        records = await everything_since(kafka_bootstrap, start)
        events = mine(records, everyone)
        assert len(of(events, "access.unparked")) == 7
        assert len(of(events, "access.suspended")) == 10
        assert len(of(events, "access.approval_needed")) == 1  # ONE notice for the batch
        text = await metrics(service)
        assert 'billstate_access_awaiting_approval{guard="brake",service="access-control"} 0.0' in (
            text
        )
        approved = (
            'billstate_access_guard_decisions_total{outcome="approved",service="access-control"}'
        )
        assert f"{approved} 7.0" in text


async def test_a_restore_cancels_a_held_suspension_and_a_reject_drops_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    primer, paid, refused = new_customer(), new_customer(), new_customer()
    everyone = {primer, paid, refused}
    async with running(kafka_bootstrap, tmp_path, brake_cap=1) as service:
        start = await marks(kafka_bootstrap, EVENTS, DECISIONS_DLQ)
        await send(kafka_bootstrap, COMMANDS, (primer, suspend(primer, "s-primer", "sub-a")))
        await read_after(kafka_bootstrap, start, until(everyone, ("access.suspended", {}, 1)))
        await send(
            kafka_bootstrap,
            COMMANDS,
            (paid, suspend(paid, "s-paid", "sub-a", "sub-b")),
            (refused, suspend(refused, "s-refused", "sub-a")),
        )
        await read_after(kafka_bootstrap, start, until(everyone, ("access.parked", {}, 2)))

        # The customer pays while held: the restore cancels; a later approval changes nothing.
        await send(kafka_bootstrap, COMMANDS, (paid, restore(paid, "r-paid", "sub-a", "sub-b")))
        records = await read_after(
            kafka_bootstrap,
            start,
            until(everyone, ("access.unparked", {"outcome": "cancelled"}, 1)),
        )
        [cancelled] = of(mine(records, everyone), "access.unparked")
        assert cancelled["customer_id"] == paid
        assert cancelled["data"]["command_id"] == "s-paid"
        assert cancelled["data"]["by"] == "access-control"
        assert "restore r-paid" in cancelled["data"]["reason"]
        assert of(mine(records, {paid}), "access.restored") == []  # nothing was ever suspended

        # Rejected: dropped. A malformed decision goes to the approvals DLQ with its reason.
        garbage = json.dumps({"event_type": "access.approve", "customer_id": refused}).encode()
        await send(
            kafka_bootstrap,
            DECISIONS,
            (paid, decision("approve", paid, "s-paid")),
            (refused, decision("reject", refused, "s-refused")),
            (refused, garbage),
        )
        records = await read_after(
            kafka_bootstrap,
            start,
            lambda rs: (
                until(everyone, ("access.unparked", {"outcome": "rejected"}, 1))(rs)
                and any(r.topic == DECISIONS_DLQ and r.key == refused.encode() for r in rs)
            ),
        )
        [rejected] = of(mine(records, everyone), "access.unparked", outcome="rejected")
        assert (rejected["customer_id"], rejected["data"]["by"]) == (refused, "mei.lin")
        [letter] = [r for r in records if r.topic == DECISIONS_DLQ and r.key == refused.encode()]
        assert letter.value == garbage
        headers = read_headers(letter.headers)
        assert headers["topic"] == DECISIONS
        assert headers["reason"]
        await wait_for(lambda: service.progress.processed >= 7, timeout=60)
        events = mine(await everything_since(kafka_bootstrap, start), everyone)
        assert len(of(events, "access.unparked")) == 2  # the late approval added nothing
        assert calls(service, paid) == {"sub-a": 0, "sub-b": 0}
        assert service.store.builtin_status(paid, "sub-a") is None
        assert service.store.builtin_status(refused, "sub-a") is None
        assert service.store.held_count() == 0


# -- the stale payment feed -----------------------------------------------------------------


async def test_a_silent_payment_feed_holds_suspensions_and_restores_pass(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    silent, old, fresh = new_customer(), new_customer(), new_customer()
    everyone = {silent, old, fresh}
    settings: dict[str, Any] = {
        "payment_feed_topic": topic,
        "payment_feed_max_age": 30,
        "payment_feed_check_interval": 0.2,
        "brake_cap": 0,
    }
    async with running(kafka_bootstrap, tmp_path, **settings) as service:
        assert service.feed.checked
        assert service.feed.newest is None
        start = await marks(kafka_bootstrap, EVENTS)
        # An empty topic is a silent feed.
        await send(kafka_bootstrap, COMMANDS, (silent, suspend(silent, "s-silent", "sub-a")))
        records = await read_after(
            kafka_bootstrap,
            start,
            until(everyone, ("access.parked", {}, 1), ("access.approval_needed", {}, 1)),
        )
        [parked] = of(mine(records, everyone), "access.parked")
        assert parked["data"]["guard"] == "stale_payment_feed"
        assert parked["data"]["reason"] == (
            f"no record on {topic} at all: a feed that never spoke is a broken feed"
            " (the limit is 30 s)"
        )
        [notice] = of(mine(records, everyone), "access.approval_needed")
        assert (notice["data"]["guard"], notice["data"]["count"]) == ("stale_payment_feed", 1)
        assert "+Inf" in await metrics(service)

        # A record two hours old: still silent, and the reason says since when.
        two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
        await send(kafka_bootstrap, topic, ("x", b"{}"), timestamp_ms=two_hours_ago)
        await wait_for(lambda: service.feed.newest is not None, timeout=30)
        await send(kafka_bootstrap, COMMANDS, (old, suspend(old, "s-old", "sub-a")))
        records = await read_after(
            kafka_bootstrap, start, until(everyone, ("access.parked", {}, 2))
        )
        [held] = of(mine(records, {old}), "access.parked")
        assert held["data"]["reason"].startswith(f"no record on {topic} since ")
        assert held["data"]["reason"].endswith("(2 h; the limit is 30 s)")

        # Restores always pass: the silent customer's suspension approved, then restored.
        await send(kafka_bootstrap, DECISIONS, (silent, decision("approve", silent, "s-silent")))
        await read_after(kafka_bootstrap, start, until({silent}, ("access.suspended", {}, 1)))
        await send(kafka_bootstrap, COMMANDS, (silent, restore(silent, "r-silent", "sub-a")))
        await read_after(kafka_bootstrap, start, until({silent}, ("access.restored", {}, 1)))
        assert service.store.builtin_status(silent, "sub-a") == "active"

        # A fresh payment: the next suspension is applied.
        await send(kafka_bootstrap, topic, ("y", b"{}"))
        await wait_for(lambda: service.feed.age(datetime.now(UTC)) < 30, timeout=30)
        await send(kafka_bootstrap, COMMANDS, (fresh, suspend(fresh, "s-fresh", "sub-a")))
        records = await read_after(
            kafka_bootstrap, start, until({fresh}, ("access.suspended", {}, 1))
        )
        assert of(mine(records, {fresh}), "access.parked") == []
        assert service.store.builtin_status(fresh, "sub-a") == "suspended"
        assert service.store.builtin_status(old, "sub-a") is None  # still held
        text = await metrics(service)
        assert (
            f'billstate_payment_feed_age_seconds{{service="access-control",topic="{topic}"}}'
            in text
        )


# -- a restart -----------------------------------------------------------------------------


async def test_held_commands_survive_a_restart_and_approving_after_applies_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = await fresh_topic(kafka_bootstrap, partitions=1)  # empty: silent
    customer = new_customer()
    group = await new_group(kafka_bootstrap)
    settings: dict[str, Any] = {
        "payment_feed_topic": topic,
        "payment_feed_max_age": 3600,
        "brake_cap": 0,
    }
    start = await marks(kafka_bootstrap, EVENTS)
    async with running(kafka_bootstrap, tmp_path, group=group, **settings):
        await send(
            kafka_bootstrap, COMMANDS, (customer, suspend(customer, "s-1", "sub-a", "sub-b"))
        )
        await read_after(
            kafka_bootstrap,
            start,
            until({customer}, ("access.parked", {}, 1), ("access.approval_needed", {}, 1)),
        )
    async with running(kafka_bootstrap, tmp_path, group=group, **settings) as service:
        [held] = service.store.holding(customer)
        assert (held.command_id, held.subscription_ids) == ("s-1", ("sub-a", "sub-b"))
        approve = (customer, decision("approve", customer, "s-1"))
        await send(kafka_bootstrap, DECISIONS, approve, approve)
        await read_after(
            kafka_bootstrap,
            start,
            until({customer}, ("access.unparked", {}, 1), ("access.suspended", {}, 2)),
        )
        await processed(service, 2)
    async with running(kafka_bootstrap, tmp_path, group=group, **settings) as service:
        # After another restart, the same approval once more: nothing.
        await send(kafka_bootstrap, DECISIONS, approve)
        await processed(service, 1)
        assert calls(service, customer) == {"sub-a": 1, "sub-b": 1}
    events = mine(await everything_since(kafka_bootstrap, start), {customer})
    assert [e["event_type"] for e in events] == [
        "access.parked",
        "access.approval_needed",
        "access.unparked",
        "access.suspended",
        "access.suspended",
    ]
