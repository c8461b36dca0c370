"""A throttling Partner Center against the whole service on a real broker: a command that
cannot finish within its time budget is parked, the partition moves on, staff are told, and
the parked command is applied exactly once when the provider has recovered.

The provider is the real Partner Center adapter (built from the settings, mapping file and
all) talking to the Partner Center test server, whose 429s carry `Retry-After: 60`. The
service's wall clock is the real one plus an offset the test moves forward, so "60 seconds
later" takes no minute.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_devkit.events import access_command
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_shared.topic_admin import start_group_at_end
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, APPROVALS

pytestmark = pytest.mark.broker

COMMANDS = ACCESS_COMMANDS.name
EVENTS = ACCESS_EVENTS.name
DLQ = ACCESS_COMMANDS.dlq
TOKEN = SecretStr("throttling-test-token")
AUTH = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}
BUDGET = 1.5  # seconds per command; waits are at most 1 s (RETRY_MAX_DELAY)


def guid() -> str:
    return str(uuid.uuid4())


class Clock:
    """The wall clock, `offset` seconds ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)


def suspend(customer: str, command_id: str, *subs: str) -> bytes:
    return access_command(
        "suspend", customer, command_id, subs, at=datetime(2027, 1, 11, tzinfo=UTC)
    )


async def produce(bootstrap: str, customer: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(COMMANDS, value=value, key=customer.encode())
    finally:
        await producer.stop()


async def marks(bootstrap: str) -> dict[TopicPartition, int]:
    return {**await end_offsets(bootstrap, EVENTS), **await end_offsets(bootstrap, DLQ)}


def events(records: list[ConsumerRecord], customer: str, event_type: str) -> list[dict[str, Any]]:
    mine = [
        json.loads(r.value) for r in records if r.key == customer.encode() and r.topic == EVENTS
    ]
    return [e for e in mine if e["event_type"] == event_type]


def count(customer: str, event_type: str, n: int) -> Callable[[list[ConsumerRecord]], bool]:
    return lambda records: len(events(records, customer, event_type)) >= n


async def http(service: AccessControl, method: str, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{service.port}{path}", headers=AUTH) as answer,
    ):
        assert answer.status == 200, await answer.text()
        if answer.content_type == "application/json":
            return await answer.json()
        return await answer.text()


@asynccontextmanager
async def running(
    bootstrap: str, tmp_path: Path, pc: PartnerCenterServer, customers: dict[str, str], clock: Clock
) -> AsyncIterator[AccessControl]:
    await ensure_catalog(bootstrap)
    group = f"access-control-test-{uuid.uuid4().hex[:12]}"
    await start_group_at_end(bootstrap, group, [COMMANDS, APPROVALS.name])
    mapping = tmp_path / "partner-center.yaml"
    mapping.write_text(
        "customers:\n" + "".join(f"  {c}: {t}\n" for c, t in customers.items()), encoding="utf-8"
    )
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=0,
        http_token=TOKEN,
        consumer_group=group,
        provider="partner_center",
        partner_center_base_url=pc.base_url,
        partner_center_token_url=pc.token_url,
        partner_center_client_id=pc.client_id,
        partner_center_client_secret=SecretStr(pc.client_secret),
        partner_center_mapping_file=mapping,
        partner_center_timeout=5.0,
        retry_attempts=5,
        retry_base_delay=0.05,
        retry_max_delay=1.0,
        command_budget=BUDGET,
        park_poll_interval=0.1,
        reconcile_interval=0,
        payment_feed_max_age=0,  # not about the guards (test_guards_broker.py is)
    )
    service = AccessControl(settings, clock=clock)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or task.done(), timeout=60)
        assert not task.done(), "the consumer loop ended during start-up"
        yield service
    finally:
        await service.stop()
        try:
            await asyncio.wait_for(task, timeout=60)
        finally:
            await service.close()


async def test_a_429_storm_parks_the_command_and_the_partition_moves_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    a, b = f"pc-a-{uuid.uuid4().hex[:10]}", f"pc-b-{uuid.uuid4().hex[:10]}"
    tenant_a, tenant_b = guid(), guid()
    sub1, sub2, sub3 = guid(), guid(), guid()
    clock = Clock()
    async with PartnerCenterServer() as pc:
        for tenant, sub in ((tenant_a, sub1), (tenant_a, sub2), (tenant_b, sub3)):
            pc.add_subscription(tenant, sub)
        async with running(kafka_bootstrap, tmp_path, pc, {a: tenant_a, b: tenant_b}, clock) as svc:
            # A token in hand first (one GET), so the budget goes to the storm alone.
            assert await svc.provider.observe(a, sub1) == "active"
            # The storm: Partner Center answers 429, Retry-After 60. Waited out (capped at
            # 30 s, 5 tries, per subscription) this suspend took about 4 minutes and the
            # liveness probe killed the pod; now it has 1.5 s.
            pc.throttle(2, retry_after=60)
            start = await marks(kafka_bootstrap)
            began = time.monotonic()
            await produce(kafka_bootstrap, a, suspend(a, "a-1", sub1, sub2))
            records = await read_after(kafka_bootstrap, start, count(a, "access.failed", 2), 60)
            assert time.monotonic() - began < BUDGET + 10  # parked within its budget

            # Staff hear of it: one access.failed per subscription, saying it is parked.
            told = events(records, a, "access.failed")
            assert sorted(e["data"]["subscription_id"] for e in told) == sorted([sub1, sub2])
            for e in told:
                assert e["data"]["error"].startswith(
                    f"parked: the {BUDGET:g}s time budget ran out after 2 provider call(s);"
                    " last error: Partner Center GET: HTTP 429"
                ), e["data"]["error"]
            assert pc.patches(tenant_a, sub1) == pc.patches(tenant_a, sub2) == 0
            view = await http(svc, "GET", f"/customers/{a}/access")
            (parked,) = view["parked"]
            assert parked["command_id"] == "a-1"
            due = datetime.fromisoformat(parked["next_attempt"])
            assert due - datetime.fromisoformat(parked["parked_at"]) == timedelta(seconds=60)

            # The partition moves on: the next command, another customer's, is applied.
            await produce(kafka_bootstrap, b, suspend(b, "b-1", sub3))
            records = await read_after(kafka_bootstrap, start, count(b, "access.suspended", 1), 60)
            assert pc.subscription(tenant_b, sub3)["status"] == "suspended"
            assert [r for r in records if r.topic == DLQ] == []
            # Not due yet: nothing more was asked of Partner Center for customer a.
            a_calls = len([r for r in pc.requests() if tenant_a in r.path])
            assert a_calls == 3  # the warm-up GET and the two answered 429
            assert await http(svc, "GET", "/healthz") == {"ok": True, "why": "ok"}
            metrics = await http(svc, "GET", "/metrics")
            assert 'billstate_access_parked_commands{service="access-control"} 1.0' in metrics
            assert (
                'billstate_provider_calls_total{outcome="retryable",provider="partner_center",'
                'service="access-control"} 2.0'
            ) in metrics

            # The provider has recovered and the Retry-After has passed: applied, once.
            clock.offset = 61
            records = await read_after(kafka_bootstrap, start, count(a, "access.suspended", 2), 60)
            done = events(records, a, "access.suspended")
            assert sorted(e["data"]["subscription_id"] for e in done) == sorted([sub1, sub2])
            assert {e["data"]["command_id"] for e in done} == {"a-1"}
            await wait_for(lambda: svc.store.parked_count() == 0, timeout=30)
            for sub in (sub1, sub2):
                assert pc.subscription(tenant_a, sub)["status"] == "suspended"
            # Another round and a reconcile pass later: still one PATCH per subscription.
            clock.offset = 3600
            assert await svc.reattempts.run_once() == 0
            found = await http(svc, "POST", "/reconcile")
            assert (found["in_sync"], found["reapplied"], found["parked"]) == (3, 0, 0)
            assert pc.patches(tenant_a, sub1) == pc.patches(tenant_a, sub2) == 1
            view = await http(svc, "GET", f"/customers/{a}/access")
            assert view["parked"] == []
            assert {s["applied"] for s in view["subscriptions"]} == {"suspended"}
