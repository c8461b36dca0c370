"""The guards before a suspension, through the whole pipeline on a real broker: invoices and
clock ticks in, the four services as processes, `billstate access approve|reject` as an
operator runs it, and the built-in provider's records of what was applied.

access-control runs with its guards on here (the other e2e tests turn them off): the brake at
a small cap, and the stale-feed guard watching the real billing.payments.v1.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from billstate_cli.drive import tick_event
from billstate_cli.main import main
from billstate_cli.summary import RunRecords
from billstate_shared.domain.ids import make_id
from billstate_shared.topics import APPROVALS

from .conftest import Pipeline

pytestmark = pytest.mark.broker

TAIPEI = "+08:00"  # the standard policy's zone: ticks at 09:00 local
SETTLE = 4.0  # seconds a batch of parked suspensions gathers before its one notice


def guards(cap: int, feed_max_age: float = 0) -> dict[str, str]:
    return {
        "BILLSTATE_ACCESS_CONTROL_BRAKE_CAP": str(cap),
        "BILLSTATE_ACCESS_CONTROL_APPROVAL_SETTLE": str(SETTLE),
        "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_MAX_AGE": str(feed_max_age),
        "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_CHECK_INTERVAL": "0.5",
    }


def envelope(
    event_type: str, customer: str, event_id: str, day: date, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": f"{day.isoformat()}T08:00:00{TAIPEI}",
        "customer_id": customer,
        "data": data,
    }


def customer_with_invoice(customer: str, due: date, subs: int = 1) -> list[dict[str, Any]]:
    """A customer and one unpaid USD invoice due on `due`, issued 30 days before."""
    sub_ids = [f"SUB-{customer}-{n}" for n in range(1, subs + 1)]
    issued = due - timedelta(days=30)
    return [
        envelope("customer.upserted", customer, f"{customer}-v1", issued, {
            "name": f"Guarded {customer}", "locale": "en",
            "billing_email": f"ap@{customer}.example",
            "partner_contact_email": "am@partner.example", "tags": [],
            "subscription_ids": sub_ids,
        }),
        envelope("invoice.issued", customer, f"INV-{customer}-issued", issued, {
            "invoice_id": f"INV-{customer}", "currency": "USD", "amount": "500.00",
            "issued_on": issued.isoformat(), "due_on": due.isoformat(),
            "subscription_ids": sub_ids,
        }),
    ]  # fmt: skip


def ticks(first: date, last: date) -> list[dict[str, Any]]:
    days = (last - first).days + 1
    return [
        tick_event(datetime.fromisoformat(f"{first + timedelta(days=n)}T09:00:00{TAIPEI}"))
        for n in range(days)
    ]


def payment(
    customer: str, payment_id: str, day: date, invoice: str | None = None
) -> dict[str, Any]:
    data = {"payment_id": payment_id, "currency": "USD", "amount": "500.00"}
    if invoice is not None:
        data["invoice_id"] = invoice
    return envelope("payment.received", customer, f"{payment_id}-received", day, data)


def billstate(*argv: str) -> tuple[int, str]:
    """Run `billstate ...` through the CLI's main(), as an operator would; code and output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


async def poll(
    read: Callable[[], Awaitable[RunRecords]],
    check: Callable[[RunRecords], bool],
    timeout: float = 60.0,  # noqa: ASYNC109  (a deadline for a condition, not a cancellation)
) -> RunRecords:
    """Read the run's outputs until `check` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await read()
        if check(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.25)


def access_events(found: RunRecords, customers: set[str], kind: str) -> list[dict[str, Any]]:
    return [
        e
        for e in found.topics["access.events.v1"]
        if e["event_type"] == kind and e["customer_id"] in customers
    ]


def notices_for(found: RunRecords, customers: set[str]) -> list[dict[str, Any]]:
    """The approval_needed batches naming only these customers."""
    return [
        e
        for e in found.topics["access.events.v1"]
        if e["event_type"] == "access.approval_needed"
        and set(e["data"]["customer_ids"]) <= customers
    ]


def delivered(found: RunRecords) -> set[str]:
    return {
        d["data"]["notice_id"]
        for d in found.topics["notifications.deliveries.v1"]
        if d["event_type"] == "notice.delivered"
    }


def feed_age(pipeline: Pipeline) -> float:
    """access-control's own view of the payments topic's silence (its metric), in seconds."""
    url = pipeline.fleet.get("access-control").url("/metrics")
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(r"^billstate_payment_feed_age_seconds\{[^}]*\} (\S+)$", text, re.MULTILINE)
    assert match is not None, "the feed age metric is there while the guard is on"
    return float(match.group(1))


async def until_feed(pipeline: Pipeline, check: Callable[[float], bool], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check(await asyncio.to_thread(feed_age, pipeline)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"payment feed age not as expected within {timeout}s")
        await asyncio.sleep(0.25)


def provider_view(pipeline: Pipeline, customer: str) -> list[dict[str, Any]]:
    subs: list[dict[str, Any]] = pipeline.access(customer)["subscriptions"]
    return subs


# -- (a) the brake: 3 applied, 7 parked, one notice; approve applies them once ----------------


async def test_the_brake_parks_past_the_cap_and_approve_applies_each_once(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    pipeline = Pipeline(kafka_bootstrap, tmp_path, guards(cap=3))
    try:
        run = uuid.uuid4().hex[:6]
        customers = [f"brake-{run}-{n:02d}" for n in range(10)]
        ours = set(customers)
        due = date(2026, 1, 31)  # 21 days past due on 2026-02-21: all suspended that day
        events = [e for c in customers for e in customer_with_invoice(c, due, subs=2)]
        await pipeline.start()
        await pipeline.drive([*events, *ticks(date(2026, 1, 30), date(2026, 2, 22))])
        await pipeline.settle()

        found = await poll(pipeline.outcome, lambda f: len(notices_for(f, ours)) >= 1)
        suspends = [
            c
            for c in found.topics["access.commands.v1"]
            if c["event_type"] == "access.suspend" and c["customer_id"] in ours
        ]
        assert len(suspends) == 10, "collections decided ten suspensions"
        suspended = {e["customer_id"] for e in access_events(found, ours, "access.suspended")}
        parked = access_events(found, ours, "access.parked")
        assert len(suspended) == 3
        assert len(parked) == 7
        assert {p["customer_id"] for p in parked} == ours - suspended
        assert {p["data"]["guard"] for p in parked} == {"brake"}
        assert all("the cap is 3" in p["data"]["reason"] for p in parked)
        for customer in ours - suspended:
            assert all(s["applied"] == "active" for s in provider_view(pipeline, customer))
        # One staff notice for the batch, delivered.
        notices = notices_for(found, ours)
        assert len(notices) == 1
        assert notices[0]["data"]["count"] == 7
        assert notices[0]["data"]["guard"] == "brake"
        notice_id = make_id("ntc", "approval_needed", notices[0]["data"]["batch_id"])
        await poll(pipeline.outcome, lambda f: notice_id in delivered(f))

        code, said = await asyncio.to_thread(
            billstate, "access", "approve", "--all", "--by", "e2e-operator",
            "--reason", "checked with the account managers", "--send",
            "--bootstrap", kafka_bootstrap,
        )  # fmt: skip
        assert code == 0, said
        parked_ids = {p["data"]["command_id"] for p in parked}
        assert all(f"approve-{c}" in said for c in parked_ids)

        def approved(f: RunRecords) -> bool:
            ended = access_events(f, ours, "access.unparked")
            return len(ended) == 7 and len(access_events(f, ours, "access.suspended")) == 20

        found = await poll(pipeline.outcome, approved)
        ended = access_events(found, ours, "access.unparked")
        assert {e["data"]["outcome"] for e in ended} == {"approved"}
        assert {e["data"]["by"] for e in ended} == {"e2e-operator"}
        for customer in customers:
            subs = provider_view(pipeline, customer)
            assert len(subs) == 2
            assert all(s["applied"] == "suspended" and s["calls"] == 1 for s in subs), subs

        await approving_again_changes_nothing(pipeline, customers, parked_ids)
    finally:
        pipeline.fleet.stop()


async def approving_again_changes_nothing(
    pipeline: Pipeline, customers: list[str], parked_ids: set[str]
) -> None:
    """Approving again changes nothing: nothing of ours is pending any more, and the same
    decisions delivered again (as after a crash) apply nothing twice."""
    ours = set(customers)
    kafka_bootstrap = pipeline.bootstrap
    code, said = await asyncio.to_thread(
        billstate, "access", "approve", "--all", "--by", "e2e-operator",
        "--reason", "again", "--send", "--bootstrap", kafka_bootstrap,
    )  # fmt: skip
    # 2: nothing pending at all; 0: only other runs' leftovers were (this broker is shared).
    assert code in (0, 2), said
    assert not any(c in said for c in parked_ids)
    approvals = await pipeline_approvals(kafka_bootstrap, parked_ids)
    assert len(approvals) == len(parked_ids)
    await resend(kafka_bootstrap, approvals)
    await pipeline.settle()
    found = await pipeline.outcome()
    assert len(access_events(found, ours, "access.suspended")) == 20
    assert len(access_events(found, ours, "access.unparked")) == 7
    for customer in customers:
        assert all(s["calls"] == 1 for s in provider_view(pipeline, customer))


async def pipeline_approvals(bootstrap: str, command_ids: set[str]) -> list[tuple[bytes, bytes]]:
    """The access.approve records sent for these commands (key, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(APPROVALS.name, p) for p in range(APPROVALS.partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[tuple[bytes, bytes]] = []
        left = {tp for tp, end in ends.items() if end > 0}
        while left:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if (
                        r.key is not None
                        and r.value is not None
                        and any(c.encode() in r.value for c in command_ids)
                    ):
                        found.append((r.key, r.value))
                    if r.offset + 1 >= ends[tp]:
                        left.discard(tp)
        return found
    finally:
        await consumer.stop()


async def resend(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(APPROVALS.name, value, key=key)
    finally:
        await producer.stop()


# -- (b) a customer parked who then pays is never suspended ---------------------------------


async def test_a_customer_who_pays_while_parked_is_never_suspended(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    pipeline = Pipeline(kafka_bootstrap, tmp_path, guards(cap=1))
    try:
        run = uuid.uuid4().hex[:6]
        first, payer = f"first-{run}", f"payer-{run}"
        # `first` is suspended a day earlier and fills the cap; `payer` is parked.
        events = [
            *customer_with_invoice(first, date(2026, 1, 30)),
            *customer_with_invoice(payer, date(2026, 1, 31)),
        ]
        await pipeline.start()
        await pipeline.drive([*events, *ticks(date(2026, 1, 29), date(2026, 2, 21))])
        found = await poll(
            pipeline.outcome, lambda f: bool(access_events(f, {payer}, "access.parked"))
        )
        applied = access_events(found, {first, payer}, "access.suspended")
        assert {e["customer_id"] for e in applied} == {first}
        command_id = access_events(found, {payer}, "access.parked")[0]["data"]["command_id"]

        # The customer pays; collections restores; the restore cancels the parked suspension.
        await pipeline.drive(
            [payment(payer, f"PAY-{payer}", date(2026, 2, 22), f"INV-{payer}"),
             *ticks(date(2026, 2, 22), date(2026, 2, 23))]
        )  # fmt: skip
        await pipeline.settle()
        found = await poll(
            pipeline.outcome, lambda f: bool(access_events(f, {payer}, "access.unparked"))
        )
        assert any(
            c["event_type"] == "access.restore" and c["customer_id"] == payer
            for c in found.topics["access.commands.v1"]
        )
        ended = access_events(found, {payer}, "access.unparked")
        assert [(e["data"]["command_id"], e["data"]["outcome"]) for e in ended] == [
            (command_id, "cancelled")
        ]
        assert not access_events(found, {payer}, "access.suspended")
        assert all(
            s["applied"] == "active" and s["calls"] == 0 for s in provider_view(pipeline, payer)
        )
        code, said = await asyncio.to_thread(
            billstate, "access", "pending", "--json", "--bootstrap", kafka_bootstrap
        )
        assert code == 0
        assert command_id not in said
    finally:
        pipeline.fleet.stop()


# -- (c) a silent payment feed parks suspensions; restores pass ------------------------------


FEED_LIMIT = 8.0  # seconds without a record on billing.payments.v1


async def test_a_silent_payment_feed_parks_suspensions_and_lets_restores_through(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    pipeline = Pipeline(kafka_bootstrap, tmp_path, guards(cap=0, feed_max_age=FEED_LIMIT))
    try:
        run = uuid.uuid4().hex[:6]
        early, late = f"early-{run}", f"late-{run}"
        events = [
            *customer_with_invoice(early, date(2026, 1, 30)),
            *customer_with_invoice(late, date(2026, 1, 31)),
        ]
        await pipeline.start()
        await pipeline.drive([*events, *ticks(date(2026, 1, 29), date(2026, 2, 19))])
        # The feed speaks (any record counts): `early` is suspended while it is fresh.
        await pipeline.drive([payment(f"feed-{run}", f"PAY-feed-{run}", date(2026, 2, 19))])
        await until_feed(pipeline, lambda age: age < FEED_LIMIT / 2, timeout=30)
        await pipeline.drive(ticks(date(2026, 2, 20), date(2026, 2, 20)))
        await pipeline.settle()
        found = await poll(
            pipeline.outcome, lambda f: bool(access_events(f, {early}, "access.suspended"))
        )
        assert not access_events(found, {early}, "access.parked")

        # Then the feed goes silent past the limit: `late`'s suspension is parked, and the
        # restore for `early` (its invoice voided: no payment record) goes through.
        await until_feed(pipeline, lambda age: age > FEED_LIMIT + 1, timeout=60)
        void = envelope("invoice.voided", early, f"INV-{early}-voided", date(2026, 2, 21),
                        {"invoice_id": f"INV-{early}", "reason": "billing error"})  # fmt: skip
        await pipeline.drive([*ticks(date(2026, 2, 21), date(2026, 2, 21)), void])
        await pipeline.settle()
        found = await poll(
            pipeline.outcome,
            lambda f: (
                bool(access_events(f, {late}, "access.parked"))
                and bool(access_events(f, {early}, "access.restored"))
                and bool(notices_for(f, {late}))
            ),
        )
        parked = access_events(found, {late}, "access.parked")
        assert [p["data"]["guard"] for p in parked] == ["stale_payment_feed"]
        assert "billing.payments.v1" in parked[0]["data"]["reason"]
        assert not access_events(found, {late}, "access.suspended")
        assert all(s["applied"] == "active" for s in provider_view(pipeline, late))
        assert all(s["applied"] == "active" for s in provider_view(pipeline, early))
        assert [n["data"]["guard"] for n in notices_for(found, {late})] == ["stale_payment_feed"]

        # The operator rejects it: nothing is applied, and nothing is left pending.
        code, said = await asyncio.to_thread(
            billstate, "access", "reject", "--customer", late, "--by", "e2e-operator",
            "--reason", "the feed is down, not the customer", "--send",
            "--bootstrap", kafka_bootstrap,
        )  # fmt: skip
        assert code == 0, said
        found = await poll(
            pipeline.outcome, lambda f: bool(access_events(f, {late}, "access.unparked"))
        )
        assert [e["data"]["outcome"] for e in access_events(found, {late}, "access.unparked")] == [
            "rejected"
        ]
        await pipeline.settle()
        assert all(
            s["applied"] == "active" and s["calls"] == 0 for s in provider_view(pipeline, late)
        )
    finally:
        pipeline.fleet.stop()
