"""The four services on a real broker: lifecycle, equivalence with replay, DLQs, duplicates."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from billstate_cli.drive import Driver, tick_event
from billstate_cli.simulation import history
from billstate_devkit.kafka import end_offsets, read_after
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import CLOCK, CONTROL, COSTS, CUSTOMERS, INVOICES, PAYMENTS

from .conftest import ROOT, Pipeline, final_states, load_jsonl, renamed, replayed

pytestmark = pytest.mark.broker

DECIDED = ("collections.stage_entered", "access.suspend", "access.restore", "notice.requested")


def ids_by_customer(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for event in events:
        if event["event_type"] in DECIDED:
            found.setdefault(event["customer_id"], []).append(event["event_id"])
    return {c: sorted(ids) for c, ids in found.items()}


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (blocking: run it in a thread)."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status), answer.read().decode()


def at_least(count: int) -> Callable[[list[Any]], bool]:
    """`read_after`'s condition: `count` records or more."""
    return lambda records: len(records) >= count


async def test_one_customer_lifecycle_end_to_end(pipeline: Pipeline) -> None:
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-e2e")
    customer = "contoso-e2e"
    await pipeline.start()
    payment = next(i for i, e in enumerate(events) if e["event_type"] == "payment.received")

    await pipeline.drive(events[:payment])
    await pipeline.settle()
    suspended = pipeline.access(customer)["subscriptions"]
    assert suspended, "access-control knows the customer's subscriptions"
    assert {s["applied"] for s in suspended} == {"suspended"}

    await pipeline.drive(events[payment:])
    await pipeline.settle()
    restored = pipeline.access(customer)["subscriptions"]
    assert {s["applied"] for s in restored} == {"active"}
    assert {s["subscription_id"] for s in restored} == {s["subscription_id"] for s in suspended}

    outcome = await pipeline.outcome()
    stages = [
        e["data"]["stage"]
        for e in outcome.topics["collections.events.v1"]
        if e["customer_id"] == customer
    ]
    assert stages == ["overdue", "final_notice", "suspended", "current"]
    notices = [
        e for e in outcome.topics["notifications.requests.v1"] if e["customer_id"] == customer
    ]
    kinds = Counter(n["data"]["kind"] for n in notices)
    assert kinds["reminder"] == 2
    assert kinds["restored"] == 1
    delivered = {
        d["data"]["notice_id"]
        for d in outcome.topics["notifications.deliveries.v1"]
        if d["event_type"] == "notice.delivered"
    }
    assert {n["data"]["notice_id"] for n in notices} <= delivered
    applied = Counter(
        e["event_type"] for e in outcome.topics["access.events.v1"] if e["customer_id"] == customer
    )
    assert applied["access.suspended"] == len(suspended)
    assert applied["access.restored"] == len(suspended)
    for service in pipeline.fleet.services:
        # /startupz: the kubelet's start-up probe; a faust worker answers once it restored.
        for probe in ("/startupz", "/healthz", "/readyz"):
            status, _ = await asyncio.to_thread(http_get, service.url(probe))
            assert status == 200, (service.name, probe)
        _, metrics = await asyncio.to_thread(http_get, service.url("/metrics"))
        for name in ("billstate_messages_processed_total", "billstate_consumer_lag"):
            assert name in metrics, (service.name, name)


async def test_services_decide_exactly_what_replay_decides(pipeline: Pipeline) -> None:
    events = list(renamed(history(200, 75, seed=11), f"-{uuid.uuid4().hex[:6]}"))
    await pipeline.start(("invoicing", "collections"))
    await pipeline.drive(events)
    outcome = await pipeline.outcome()
    ours = ids_by_customer(outcome.decisions())
    theirs = ids_by_customer(replayed(events))
    assert sum(len(v) for v in theirs.values()) > 500
    assert any(e["event_type"] == "access.suspend" for e in outcome.decisions())
    assert ours == theirs


async def test_bad_messages_on_every_inbound_topic_go_to_the_dlq(pipeline: Pipeline) -> None:
    await pipeline.start(("invoicing", "collections"))
    bad = {
        b"{not json": ("$", "invalid JSON"),
        json.dumps({"event_id": "x1", "event_type": "invoice.paid", "schema_version": 1,
                    "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "dlq-e2e",
                    "data": {}}).encode():
            ("event_type", "unknown"),
        json.dumps({"event_id": "x2", "event_type": "payment.received", "schema_version": 1,
                    "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "dlq-e2e",
                    "data": {"payment_id": "P", "currency": "USD", "amount": 10.5}}).encode():
            ("data.amount", "decimal string"),
    }  # fmt: skip
    topics = [INVOICES, PAYMENTS, COSTS, CUSTOMERS, CLOCK, CONTROL]
    starts = {t.name: await end_offsets(pipeline.bootstrap, t.dlq) for t in topics}
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap)
    await producer.start()
    try:
        for topic in topics:
            for value in bad:
                await producer.send_and_wait(topic.name, value, key=b"dlq-e2e")
    finally:
        await producer.stop()
    # Valid traffic keeps flowing behind the bad records.
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-dlq")
    await pipeline.drive(events)
    outcome = await pipeline.outcome()
    assert any(
        e["customer_id"] == "contoso-dlq" and e["data"]["stage"] == "suspended"
        for e in outcome.topics["collections.events.v1"]
    )
    for topic in topics:
        readers = {"invoicing", "collections"} & set(topic.readers)
        expected = len(bad) * len(readers)
        records = await read_after(
            pipeline.bootstrap, starts[topic.name], at_least(expected), timeout=60
        )
        reasons = [read_headers(r.headers) for r in records]
        assert {r["service"] for r in reasons} == readers, topic.name
        assert {r["field"] for r in reasons} == {f for f, _ in bad.values()}, topic.name
        for header in reasons:
            assert header["topic"] == topic.name
            assert header["reason"]
            assert int(header["offset"]) >= 0
        assert {r.value for r in records} == set(bad)


async def test_every_inbound_event_twice_changes_nothing(pipeline: Pipeline) -> None:
    events = list(renamed(history(40, 75, seed=5), f"-{uuid.uuid4().hex[:6]}"))
    await pipeline.start()
    await pipeline.drive(events, twice=True)
    await pipeline.settle()
    outcome = await pipeline.outcome()
    decisions = outcome.decisions()
    assert ids_by_customer(decisions) == ids_by_customer(replayed(events))
    # one provider call per change: one applied event per (command, subscription)
    applied = Counter(
        (e["data"]["command_id"], e["data"]["subscription_id"])
        for e in outcome.topics["access.events.v1"]
    )
    assert applied
    assert max(applied.values()) == 1
    for customer in {e["customer_id"] for e in decisions if e["event_type"] == "access.suspend"}:
        for sub in pipeline.access(customer)["subscriptions"]:
            assert sub["calls"] == len([1 for (cmd, s) in applied if s == sub["subscription_id"]])
    delivered = Counter(
        d["data"]["notice_id"] for d in outcome.topics["notifications.deliveries.v1"]
    )
    assert max(delivered.values()) == 1


async def test_a_tick_from_the_past_changes_nothing(pipeline: Pipeline) -> None:
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-past")
    await pipeline.start(("invoicing", "collections"))
    await pipeline.drive(events)
    before = ids_by_customer((await pipeline.outcome()).decisions())
    await pipeline.drive([tick_event(datetime.fromisoformat("2026-11-25T01:00:00+00:00"))])
    after = ids_by_customer((await pipeline.outcome()).decisions())
    assert after == before


async def test_collections_killed_mid_run_ends_as_an_undisturbed_run(pipeline: Pipeline) -> None:
    events = list(renamed(history(120, 75, seed=23), f"-{uuid.uuid4().hex[:6]}"))
    await pipeline.start()
    kills: list[int] = []

    def pull_the_plug(driver: Driver) -> None:
        # Right after a tick is written, while collections works through its aged events.
        if driver.ticks in (35, 55):
            pipeline.fleet.kill("collections")
            pipeline.fleet.start(("collections",))
            kills.append(driver.ticks)

    await pipeline.drive(events, after_tick=pull_the_plug)
    await pipeline.settle()
    assert kills == [35, 55]
    outcome = await pipeline.outcome()
    expected = replayed(events)
    # Nothing lost: every decision replay makes was made (a redelivery may repeat one, same id).
    ours = {c: sorted(set(ids)) for c, ids in ids_by_customer(outcome.decisions()).items()}
    assert ours == ids_by_customer(expected)
    # Nothing applied twice: the provider saw each change once.
    applied = Counter(
        (e["data"]["command_id"], e["data"]["subscription_id"])
        for e in outcome.topics["access.events.v1"]
        if e["event_type"] in ("access.suspended", "access.restored")
    )
    commands = [e for e in expected if e["event_type"] in ("access.suspend", "access.restore")]
    assert set(applied) == {
        (c["data"]["command_id"], s) for c in commands for s in c["data"]["subscription_ids"]
    }
    for customer in {c["customer_id"] for c in commands}:
        for sub in pipeline.access(customer)["subscriptions"]:
            assert sub["calls"] == sum(1 for (_, s) in applied if s == sub["subscription_id"])
    # Same state: the last state record of every customer equals replay's final book.
    final = final_states(events)
    assert {c: s for c, s in outcome.latest_states().items() if c in final} == final
