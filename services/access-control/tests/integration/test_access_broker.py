"""access-control on a real broker: commands in, access events and dead letters out.

Every test runs its own service instance in-process, with its own data dir and a fresh
consumer group that starts at the current end of access.commands.v1 (so it neither reads
history nor steals another test's records), and uses customer ids of its own. Output is
read from offsets marked before the test produced anything, filtered by the customer key.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from billstate_access_control.config import Settings
from billstate_access_control.domain import Access
from billstate_access_control.entrypoints.service import AccessControl
from billstate_access_control.providers import Change, Provider, ProviderError
from billstate_devkit.events import access_command
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_shared.contracts import (
    decode,
    encode,
)
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topic_admin import start_group_at_end
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS
from billstate_shared.topics import APPROVALS as APPROVALS_TOPIC

pytestmark = pytest.mark.broker

COMMANDS = ACCESS_COMMANDS.name
EVENTS = ACCESS_EVENTS.name
DLQ = ACCESS_COMMANDS.dlq
AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
TOKEN = SecretStr("access-control-test-token")
AUTH = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}


# -- fake providers (plain classes: the service's own code paths run unchanged) -----------


class Flaky:
    """Fails `failures` times per subscription with a retryable error, then succeeds."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}
        self.state: dict[str, str] = {}

    async def apply(self, change: Change) -> None:
        subscription_id = change.subscription_id
        self.calls[subscription_id] = self.calls.get(subscription_id, 0) + 1
        if self.calls[subscription_id] <= self.failures:
            raise ProviderError(f"HTTP 503 (call {self.calls[subscription_id]})", retryable=True)
        self.state[subscription_id] = change.desired

    async def observe(self, customer_id: str, subscription_id: str) -> Access | None:
        return self.state.get(subscription_id)  # type: ignore[return-value]

    async def close(self) -> None:
        return None


class Down(Flaky):
    """A provider that never gets a change through."""

    name = "down"

    def __init__(self) -> None:
        super().__init__(failures=10**9)


# -- helpers ---------------------------------------------------------------------------


def new_customer() -> str:
    return f"ac-{uuid.uuid4().hex[:12]}"


def command(
    kind: str, customer: str, command_id: str, *subs: str, sequence: int | None = None
) -> bytes:
    suspend = kind == "suspend"
    value = access_command(
        kind,
        customer,
        command_id,
        subs,
        reason="overdue" if suspend else "paid",
        stage="suspended" if suspend else "current",
        at=AT,
    )
    if sequence is None:
        return value
    # As collections stamps it: the customer's command sequence (the devkit builder predates it).
    envelope = json.loads(value)
    envelope["data"]["sequence"] = sequence
    return encode(decode(json.dumps(envelope).encode()))


async def produce(bootstrap: str, customer: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(COMMANDS, value=value, key=customer.encode())
    finally:
        await producer.stop()


async def marks(bootstrap: str, *topics: str) -> dict[TopicPartition, int]:
    start: dict[TopicPartition, int] = {}
    for topic in topics:
        start.update(await end_offsets(bootstrap, topic))
    return start


def of(records: list[ConsumerRecord], customer: str, topic: str) -> list[ConsumerRecord]:
    return [r for r in records if r.key == customer.encode() and r.topic == topic]


def events(records: list[ConsumerRecord], customer: str, event_type: str) -> list[dict[str, Any]]:
    found = [json.loads(r.value) for r in of(records, customer, EVENTS)]
    return [e for e in found if e["event_type"] == event_type]


def count(customer: str, event_type: str, n: int) -> Callable[[list[ConsumerRecord]], bool]:
    return lambda records: len(events(records, customer, event_type)) >= n


@asynccontextmanager
async def running(
    bootstrap: str,
    data_dir: Path,
    provider: Provider | None = None,
    group: str | None = None,
    **overrides: Any,
) -> AsyncIterator[AccessControl]:
    """An access-control service, started, assigned its partitions, and stopped after;
    `overrides` are settings."""
    await ensure_catalog(bootstrap)
    if group is None:
        group = f"access-control-test-{uuid.uuid4().hex[:12]}"
        await start_group_at_end(bootstrap, group, [COMMANDS, APPROVALS_TOPIC.name])
    # Not about the guards (test_guards_broker.py is): no payment feed to watch.
    defaults: dict[str, Any] = {"http_token": TOKEN, "payment_feed_max_age": 0}
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        data_dir=data_dir,
        http_host="127.0.0.1",
        http_port=0,
        consumer_group=group,
        retry_attempts=4,
        retry_base_delay=0.01,
        **(defaults | overrides),
    )
    service = AccessControl(settings, provider=provider)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or task.done(), timeout=30)
        yield service
    finally:
        await service.stop()
        try:
            await asyncio.wait_for(task, timeout=30)
        finally:
            await service.close()


async def get(
    service: AccessControl, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{service.port}{path}", headers=AUTH if headers is None else headers
        ) as response,
    ):
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else None
        return response.status, body, text


def by_subscription(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["subscription_id"]: s for s in body["subscriptions"]}


# -- tests -----------------------------------------------------------------------------


async def test_suspend_then_restore(kafka_bootstrap: str, tmp_path: Path) -> None:
    customer = new_customer()
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS)
        await produce(
            kafka_bootstrap, customer, command("suspend", customer, "s-1", "sub-a", "sub-b")
        )
        records = await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 2))
        suspended = events(records, customer, "access.suspended")
        assert sorted(e["data"]["subscription_id"] for e in suspended) == ["sub-a", "sub-b"]
        assert {e["data"]["provider"] for e in suspended} == {"builtin"}
        assert {e["data"]["command_id"] for e in suspended} == {"s-1"}

        status, body, _ = await get(service, f"/customers/{customer}/access")
        assert status == 200
        assert body["customer_id"] == customer
        subs = by_subscription(body)
        assert set(subs) == {"sub-a", "sub-b"}
        assert subs["sub-a"] == {
            "subscription_id": "sub-a",
            "desired": "suspended",
            "applied": "suspended",
            "command_id": "s-1",
            "provider": "builtin",
            "calls": 1,
        }

        start = await marks(kafka_bootstrap, EVENTS)
        await produce(
            kafka_bootstrap, customer, command("restore", customer, "r-1", "sub-a", "sub-b")
        )
        records = await read_after(kafka_bootstrap, start, count(customer, "access.restored", 2))
        restored = events(records, customer, "access.restored")
        assert sorted(e["data"]["subscription_id"] for e in restored) == ["sub-a", "sub-b"]
        assert all(decode(json.dumps(e)).event_type == "access.restored" for e in restored)

        _, body, _ = await get(service, f"/customers/{customer}/access")
        for sub in by_subscription(body).values():
            assert (sub["desired"], sub["applied"], sub["command_id"], sub["calls"]) == (
                "active",
                "active",
                "r-1",
                2,
            )


async def test_a_duplicate_command_calls_the_provider_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    customer = new_customer()
    raw = command("suspend", customer, "dup-1", "sub-a", "sub-b")
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS)
        await produce(kafka_bootstrap, customer, raw, raw)
        # The duplicate is announced again under the same event ids, with no provider call.
        records = await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 4))
        suspended = events(records, customer, "access.suspended")
        assert len({e["event_id"] for e in suspended}) == 2
        _, body, _ = await get(service, f"/customers/{customer}/access")
        assert {s["subscription_id"]: s["calls"] for s in body["subscriptions"]} == {
            "sub-a": 1,
            "sub-b": 1,
        }


async def test_state_survives_a_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    customer = new_customer()
    raw = command("suspend", customer, "keep-1", "sub-a")
    group = f"access-control-test-{uuid.uuid4().hex[:12]}"
    await ensure_catalog(kafka_bootstrap)
    await start_group_at_end(kafka_bootstrap, group, [COMMANDS, APPROVALS_TOPIC.name])
    start = await marks(kafka_bootstrap, EVENTS)
    async with running(kafka_bootstrap, tmp_path, group=group):
        await produce(kafka_bootstrap, customer, raw)
        await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 1))
    async with running(kafka_bootstrap, tmp_path, group=group) as service:
        await produce(
            kafka_bootstrap, customer, raw, command("restore", customer, "keep-2", "sub-b")
        )
        await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 2))
        await wait_for(lambda: service.progress.processed >= 2, timeout=30)
        _, body, _ = await get(service, f"/customers/{customer}/access")
        subs = by_subscription(body)
        assert (subs["sub-a"]["applied"], subs["sub-a"]["calls"]) == ("suspended", 1)
        assert (subs["sub-b"]["applied"], subs["sub-b"]["calls"]) == ("active", 0)


async def test_a_flaky_provider_succeeds_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    customer = new_customer()
    provider = Flaky(failures=2)
    async with running(kafka_bootstrap, tmp_path, provider=provider):
        start = await marks(kafka_bootstrap, EVENTS, DLQ)
        await produce(
            kafka_bootstrap,
            customer,
            command("suspend", customer, "flaky-1", "sub-a"),
            # A fence on the same partition: once its event is out, so is everything before.
            command("suspend", customer, "fence-1", "fence"),
        )

        def fenced(records: list[ConsumerRecord]) -> bool:
            done = events(records, customer, "access.suspended")
            return any(e["data"]["subscription_id"] == "fence" for e in done)

        records = await read_after(kafka_bootstrap, start, fenced)
        mine = [json.loads(r.value) for r in of(records, customer, EVENTS)]
        assert [(e["event_type"], e["data"]["subscription_id"]) for e in mine] == [
            ("access.suspended", "sub-a"),
            ("access.suspended", "fence"),
        ]
        assert mine[0]["data"]["provider"] == "flaky"
        assert of(records, customer, DLQ) == []
        assert provider.calls == {"sub-a": 3, "fence": 3}


async def test_a_provider_that_always_fails(kafka_bootstrap: str, tmp_path: Path) -> None:
    customer = new_customer()
    raw = command("suspend", customer, "down-1", "sub-a")
    async with running(kafka_bootstrap, tmp_path, provider=Down()) as service:
        start = await marks(kafka_bootstrap, EVENTS, DLQ)
        await produce(kafka_bootstrap, customer, raw)

        def both(records: list[ConsumerRecord]) -> bool:
            return bool(events(records, customer, "access.failed")) and bool(
                of(records, customer, DLQ)
            )

        records = await read_after(kafka_bootstrap, start, both)
        [failed] = events(records, customer, "access.failed")
        assert failed["data"] == {
            "command_id": "down-1",
            "subscription_id": "sub-a",
            "provider": "down",
            "attempts": 4,
            "error": "HTTP 503 (call 4)",
            "exchanges": [],  # a fake provider notes none
        }
        [letter] = of(records, customer, DLQ)
        assert letter.value == raw
        headers = read_headers(letter.headers)
        assert headers["topic"] == COMMANDS
        assert headers["service"] == "access-control"
        assert headers["event_type"] == "access.suspend"
        assert headers["field"] == "data.subscription_ids"
        assert "sub-a" in headers["reason"]
        assert "HTTP 503" in headers["reason"]
        assert int(headers["partition"]) == letter.partition  # DLQ is co-partitioned
        _, body, _ = await get(service, f"/customers/{customer}/access")
        sub = by_subscription(body)["sub-a"]
        assert (sub["desired"], sub["applied"]) == ("suspended", "active")


async def test_bad_records_are_dead_lettered_and_the_stream_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    customer = new_customer()
    garbage = b"\xff\xfe not json"
    unknown = json.dumps(
        {
            "event_id": "evt-x",
            "event_type": "access.frobnicate",
            "schema_version": 1,
            "occurred_at": "2027-01-11T09:00:00+00:00",
            "customer_id": customer,
            "data": {},
        }
    ).encode()
    not_a_command = json.dumps(
        {
            "event_id": "evt-v",
            "event_type": "invoice.voided",
            "schema_version": 1,
            "occurred_at": "2027-01-11T09:00:00+00:00",
            "customer_id": customer,
            "data": {"invoice_id": "inv-1", "reason": "duplicate"},
        }
    ).encode()
    valid = command("suspend", customer, "ok-1", "sub-a")
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS, DLQ)
        await produce(kafka_bootstrap, customer, garbage, unknown, not_a_command, valid)

        def done(records: list[ConsumerRecord]) -> bool:
            return len(of(records, customer, DLQ)) >= 3 and bool(
                events(records, customer, "access.suspended")
            )

        records = await read_after(kafka_bootstrap, start, done)
        letters = of(records, customer, DLQ)
        assert [r.value for r in letters] == [garbage, unknown, not_a_command]
        reasons = [read_headers(r.headers) for r in letters]
        assert [h["field"] for h in reasons] == ["$", "event_type", "event_type"]
        assert "UTF-8" in reasons[0]["reason"]
        assert "unknown event type" in reasons[1]["reason"]
        assert "not an access command" in reasons[2]["reason"]
        assert reasons[2]["event_type"] == ""
        offsets = [int(h["offset"]) for h in reasons]
        assert offsets == sorted(offsets)
        _, body, _ = await get(service, f"/customers/{customer}/access")
        assert by_subscription(body)["sub-a"]["applied"] == "suspended"


async def test_health_readiness_and_metrics(kafka_bootstrap: str, tmp_path: Path) -> None:
    customer = new_customer()
    async with running(kafka_bootstrap, tmp_path) as service:
        for path in ("/healthz", "/readyz"):
            status, body, _ = await get(service, path)
            assert (status, body["ok"]) == (200, True), body
        start = await marks(kafka_bootstrap, EVENTS)
        await produce(kafka_bootstrap, customer, command("suspend", customer, "m-1", "sub-a"))
        await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 1))
        await wait_for(lambda: service.progress.processed >= 1, timeout=30)
        status, _, text = await get(service, "/metrics")
        assert status == 200
        assert (
            'billstate_messages_processed_total{service="access-control",'
            'topic="access.commands.v1"} 1.0'
        ) in text
        assert "billstate_messages_produced_total" in text
        status, body, _ = await get(service, "/customers/not%20valid/access")
        assert status == 400


async def test_a_second_worker_joining_loses_and_repeats_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A rebalance waits for the batch in hand: its outputs are flushed and its offsets
    committed before the partitions move, so nothing is lost and nothing is done twice."""
    customers = [new_customer() for _ in range(24)]
    group = f"access-control-test-{uuid.uuid4().hex[:12]}"
    await ensure_catalog(kafka_bootstrap)
    await start_group_at_end(kafka_bootstrap, group, [COMMANDS, APPROVALS_TOPIC.name])
    start = await marks(kafka_bootstrap, EVENTS)
    async with AsyncExitStack() as workers:
        first = await workers.enter_async_context(
            running(kafka_bootstrap, tmp_path / "a", group=group)
        )
        both: list[AccessControl] = [first]
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for n, customer in enumerate(customers):
                value = command("suspend", customer, f"rb-{customer}", "sub-a")
                await producer.send_and_wait(COMMANDS, value=value, key=customer.encode())
                if n == 8:  # the group rebalances while records keep coming
                    both.append(
                        await workers.enter_async_context(
                            running(kafka_bootstrap, tmp_path / "b", group=group)
                        )
                    )
        finally:
            await producer.stop()

        wanted = {c.encode() for c in customers}
        records = await read_after(
            kafka_bootstrap, start, lambda rs: wanted <= {r.key for r in rs}, timeout=60
        )
        await wait_for(lambda: sum(w.progress.processed for w in both) >= len(customers))
        assert len([r for r in records if r.key in wanted]) == len(customers)
        assert sum(w.progress.processed for w in both) == len(customers)
        assert all(w.loop.consumer.assignment() for w in both)


async def post(
    service: AccessControl, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{service.port}{path}", headers=AUTH if headers is None else headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_the_reconciler_reports_a_hand_made_change_as_drift_and_puts_it_back(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    customer = new_customer()
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS)
        await produce(
            kafka_bootstrap, customer, command("suspend", customer, "rc-1", "sub-a", "sub-b")
        )
        await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 2))

        service.store.builtin_apply(customer, "sub-a", "active")  # reactivated by hand
        start = await marks(kafka_bootstrap, EVENTS)
        status, found = await post(service, "/reconcile")
        assert status == 200
        assert (found["checked"], found["drift"], found["reapplied"]) == (2, 1, 1)

        def drift_and_fix(records: list[ConsumerRecord]) -> bool:
            return bool(events(records, customer, "access.drift")) and bool(
                events(records, customer, "access.suspended")
            )

        records = await read_after(kafka_bootstrap, start, drift_and_fix)
        (drift,) = events(records, customer, "access.drift")
        assert drift["data"] == {
            "subscription_id": "sub-a",
            "provider": "builtin",
            "desired": "suspended",
            "observed": "active",
            "exchanges": [],  # the built-in provider makes no requests
        }
        (fixed,) = events(records, customer, "access.suspended")
        assert fixed["data"]["subscription_id"] == "sub-a"
        _, body, _ = await get(service, f"/customers/{customer}/access")
        assert by_subscription(body)["sub-a"]["applied"] == "suspended"

        _, again = await post(service, "/reconcile")
        assert (again["in_sync"], again["drift"]) == (2, 0)


async def test_the_routes_that_read_or_change_need_the_token(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Probes and metrics are open; the customer view and /reconcile answer 401 without the
    bearer token or with another one; with no token configured they are off (403)."""
    wrong = {"Authorization": "Bearer not-the-token"}
    async with running(kafka_bootstrap, tmp_path / "with") as service:
        for path in ("/healthz", "/readyz", "/metrics"):
            status, _, _ = await get(service, path, headers={})
            assert status == 200, path
        for headers in ({}, wrong, {"Authorization": TOKEN.get_secret_value()}):
            status, body, _ = await get(service, "/customers/contoso/access", headers=headers)
            assert (status, body) == (401, {"error": "a bearer token is required"})
            status, _ = await post(service, "/reconcile", headers=headers)
            assert status == 401
        status, body, _ = await get(service, "/customers/contoso/access")
        assert (status, body["subscriptions"]) == (200, [])
        status, found = await post(service, "/reconcile")
        assert (status, found["checked"]) == (200, 0)
    async with running(kafka_bootstrap, tmp_path / "without", http_token=None) as service:
        status, _, _ = await get(service, "/healthz", headers={})
        assert status == 200
        for headers in ({}, AUTH):
            status, body, _ = await get(service, "/customers/contoso/access", headers=headers)
            assert status == 403
            assert "disabled" in body["error"]
            status, _ = await post(service, "/reconcile", headers=headers)
            assert status == 403


async def test_a_stale_command_is_refused_without_a_provider_call(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A suspend older (sequence 12) than the restore already applied (15), as a re-drive
    from the DLQ would bring it: dead-lettered with the reason, no provider call, counted."""
    customer = new_customer()
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS, DLQ)
        await produce(
            kafka_bootstrap,
            customer,
            command("suspend", customer, "seq-11", "sub-a", sequence=11),
            command("restore", customer, "seq-15", "sub-a", sequence=15),
            command("suspend", customer, "seq-12", "sub-a", sequence=12),  # stale
            command("suspend", customer, "seq-none", "fence"),  # no sequence: judged as before
        )

        def fenced(records: list[ConsumerRecord]) -> bool:
            done = events(records, customer, "access.suspended")
            return any(e["data"]["subscription_id"] == "fence" for e in done)

        records = await read_after(kafka_bootstrap, start, fenced)
        [letter] = of(records, customer, DLQ)
        headers = read_headers(letter.headers)
        assert headers["reason"] == "stale: sequence 12 is older than 15 already applied"
        assert (headers["field"], headers["event_type"]) == ("data.sequence", "access.suspend")
        assert json.loads(letter.value)["data"]["command_id"] == "seq-12"
        mine = [json.loads(r.value) for r in of(records, customer, EVENTS)]
        assert [(e["event_type"], e["data"]["command_id"]) for e in mine] == [
            ("access.suspended", "seq-11"),
            ("access.restored", "seq-15"),
            ("access.suspended", "seq-none"),
        ]
        status, body, _ = await get(service, f"/customers/{customer}/access")
        assert status == 200
        assert body["sequence"] == 15
        sub = by_subscription(body)["sub-a"]
        assert (sub["desired"], sub["applied"], sub["command_id"], sub["calls"]) == (
            "active",
            "active",
            "seq-15",
            2,  # the suspend and the restore; none for the stale command
        )
        _, _, text = await get(service, "/metrics")
        assert 'billstate_access_stale_commands_total{service="access-control"} 1.0' in text


async def test_the_reconciler_leaves_a_subscription_billstate_never_changed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A restore for a subscription billstate never suspended makes no call; when staff
    suspend it by hand, the reconciler leaves it suspended, and says nothing."""
    customer = new_customer()
    async with running(kafka_bootstrap, tmp_path) as service:
        start = await marks(kafka_bootstrap, EVENTS)
        await produce(kafka_bootstrap, customer, command("restore", customer, "r-0", "sub-a"))
        await wait_for(lambda: service.progress.processed >= 1, timeout=30)
        service.store.builtin_apply(customer, "sub-a", "suspended")  # suspended by hand

        status, found = await post(service, "/reconcile")
        assert status == 200
        assert (found["checked"], found["untouched"], found["drift"], found["reapplied"]) == (
            1,
            1,
            0,
            0,
        )
        assert service.store.builtin_status(customer, "sub-a") == "suspended"
        # A marker through the topic: everything the service wrote for the customer is out.
        await produce(kafka_bootstrap, customer, command("suspend", customer, "s-m", "marker"))
        records = await read_after(kafka_bootstrap, start, count(customer, "access.suspended", 1))
        assert [
            e["data"]["subscription_id"] for e in events(records, customer, "access.suspended")
        ] == ["marker"]
        assert events(records, customer, "access.drift") == []
        assert events(records, customer, "access.restored") == []
