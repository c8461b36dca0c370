"""The collections worker on a real broker: throughput against a bare loop, and payment latency.

`make bench-pipeline` (or `uv run python bench/bench_pipeline.py --help`). Two targets:

1. Throughput. A collections worker sustains at least a quarter of the throughput of a bare aiokafka
   consume-transform-produce loop on the same broker, measured side by side in one run.
   The input is what the collections worker consumes for `history(customers=2000, days=90,
   seed=3)`: the inbound events (clock ticks left out; collections does not read the clock)
   plus the `invoice.aged` events `Replay` generates from the ticks, in order, produced once to
   their catalog topics. The bare loop (one aiokafka consumer and producer in this process:
   `getmany`, `json.loads` + `json.dumps` per record, `send` to an 8-partition bench topic,
   await the sends, commit per batch) and the real collections service (its own process,
   started by `billstate_cli.local.Fleet`) then each read exactly that range under a fresh
   consumer group committed at its start. The worker runs once with WARNING logging (the
   figure) and once with INFO (one log line per message, for comparison).

2. Latency. With a caught-up worker, S customers are brought to `suspended` (their
   customer.upserted, invoice.issued and the invoice.aged events `Replay` produces for them,
   verified by the access.suspend commands on access.commands.v1). Then for D seconds events
   are produced at a steady R events/s on a monotonic schedule: S payments, each paying one
   suspended customer's invoice in full, spread evenly, and filler events for other
   customers (a fresh generated history's inbound + invoice.aged events). A consumer on
   access.commands.v1 in this process timestamps each access.restore; latency = its arrival
   minus the send time of that customer's payment (one process, one monotonic clock).

Broker: KAFKA_BOOTSTRAP_SERVERS if set; otherwise the project's local broker
(`billstate_devkit.localkafka`, BILLSTATE_CACHE_DIR / BILLSTATE_KAFKA_PORT honoured), started
and stopped by the bench unless it was already running. Do not point the bench at a cluster
where services run under their default consumer groups: they would consume its events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust_floor import MODES, Floor
from harness import (
    DLQ_TOPICS,
    INPUT_TOPICS,
    POLICY,
    ROOT,
    Kafka,
    Offsets,
    Record,
    Worker,
    apply_catalog,
    count,
    cpu_seconds,
    load,
    proc_status,
    produce,
    run_bench,
    say,
)

from billstate_cli.local import Service
from billstate_cli.replay import Replay
from billstate_cli.simulation import history
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes as encoded
from billstate_shared.domain.policy import Policy
from billstate_shared.policy_file import load_policy
from billstate_shared.topics import (
    ACCESS_COMMANDS,
    CUSTOMER_PARTITIONS,
    DUE_DATES,
    EVENTS,
    NOTICE_REQUESTS,
    STATE,
    topic_for,
)

OUTPUT_TOPICS = (EVENTS.name, ACCESS_COMMANDS.name, NOTICE_REQUESTS.name, STATE.name)
TARGET_RATIO = 0.25  # issue 15: the worker at INFO, a quarter of the bare loop
TARGET_P99_MS = 100.0
BARE_BATCH = 500  # records per getmany in the bare loop: Kafka's default max.poll.records


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


# ---- input -------------------------------------------------------------------------------


def collections_input(
    events: Iterable[dict[str, Any]], replay: Replay
) -> tuple[list[Record], list[Any]]:
    """What the collections worker consumes for these inbound events, in order: the inbound
    events (without clock ticks) and the invoice.aged events the replay generates; plus the
    replay's decisions (for checks)."""
    records: list[Record] = []
    decided: list[Any] = []
    for event in events:
        raw = dumps(event)
        if event["event_type"] != "clock.tick":
            records.append(
                (topic_for(event["event_type"]).name, event["customer_id"].encode(), raw)
            )
        for produced in replay.feed(decode(raw)):
            if produced.event_type == "invoice.aged":
                records.append((DUE_DATES.name, produced.customer_id.encode(), encoded(produced)))
            else:
                decided.append(produced)
    return records, decided


def renamed(events: Iterable[dict[str, Any]], suffix: str) -> Iterator[dict[str, Any]]:
    for event in events:
        if event["customer_id"] != "*":
            event["customer_id"] += suffix
            event["event_id"] += suffix
        yield event


def filler(policy: Policy, needed: int, customers: int, days: int, seed: int) -> list[Record]:
    """Other customers' traffic: fresh histories (customer ids suffixed) until `needed`."""
    records: list[Record] = []
    while len(records) < needed:
        events = renamed(history(customers, days, seed=seed), f"-f{seed}")
        more, _ = collections_input(events, Replay(policy))
        records.extend(more)
        seed += 1
    return records[:needed]


@dataclass
class Suspended:
    """S customers, each with one unpaid invoice aged into `suspended`, and their payments."""

    upserts: list[Record]
    invoices: list[Record]
    aged: list[Record]
    payments: dict[str, Record]  # customer -> payment.received paying the invoice in full
    suspends: int  # access.suspend commands replay decides for them
    restores: int  # access.restore commands replay decides for the payments


def suspended_customers(policy: Policy, count: int, tag: str) -> Suspended:
    zone = ZoneInfo(policy.timezone)
    issued_on = date(2026, 4, 1)
    due_on = issued_on + timedelta(days=30)
    last_tick = due_on + timedelta(days=25)  # the standard policy suspends at 21 days past due

    def at(day: date, hour: int, minute: int = 0) -> str:
        return datetime.combine(day, dtime(hour, minute), tzinfo=zone).isoformat()

    upserts, invoices, payments = [], [], {}
    for i in range(1, count + 1):
        cid = f"lat{tag}-{i:05d}"
        subs = [f"SUB-{cid}-1", f"SUB-{cid}-2"]
        amount = f"{100 + i}.00"
        upserts.append({
            "event_id": f"{cid}-upserted-1", "event_type": "customer.upserted",
            "schema_version": 1, "occurred_at": at(issued_on, 8), "customer_id": cid,
            "data": {"name": f"Latency Customer {i}", "locale": "en",
                     "billing_email": f"ap@{cid}.example",
                     "partner_contact_email": "am01@partner.example", "tags": [],
                     "subscription_ids": subs},
        })  # fmt: skip
        invoices.append({
            "event_id": f"INV-{cid}-1-issued", "event_type": "invoice.issued",
            "schema_version": 1, "occurred_at": at(issued_on, 8, 30), "customer_id": cid,
            "data": {"invoice_id": f"INV-{cid}-1", "currency": "USD", "amount": amount,
                     "issued_on": issued_on.isoformat(), "due_on": due_on.isoformat(),
                     "subscription_ids": subs},
        })  # fmt: skip
        payments[cid] = {
            "event_id": f"PAY-{cid}-1-received", "event_type": "payment.received",
            "schema_version": 1, "occurred_at": at(last_tick + timedelta(days=1), 10),
            "customer_id": cid,
            "data": {"payment_id": f"PAY-{cid}-1", "currency": "USD", "amount": amount,
                     "invoice_id": f"INV-{cid}-1"},
        }  # fmt: skip
    ticks = [
        {"event_id": f"tick-{d.isoformat()}", "event_type": "clock.tick", "schema_version": 1,
         "occurred_at": at(d, 9), "customer_id": "*", "data": {}}
        for d in (issued_on + timedelta(days=n) for n in range((last_tick - issued_on).days + 1))
    ]  # fmt: skip
    replay = Replay(policy)
    up_records, _ = collections_input(upserts, replay)
    inv_records, _ = collections_input(invoices, replay)
    aged_records, decided = collections_input(ticks, replay)
    suspends = sum(1 for d in decided if d.event_type == "access.suspend")
    pay_records, after = collections_input(payments.values(), replay)
    restores = sum(1 for d in after if d.event_type == "access.restore")
    return Suspended(
        upserts=up_records,
        invoices=inv_records,
        aged=aged_records,
        payments={r[1].decode(): r for r in pay_records},
        suspends=suspends,
        restores=restores,
    )


# ---- 1a: the bare loop -------------------------------------------------------------------


@dataclass
class BareResult:
    records: int
    seconds: float
    batches: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


async def bare_loop(  # noqa: C901  (one measured loop; pieces would scatter its clock)
    kafka: Kafka, group: str, starts: Offsets, ends: Offsets, out: str
) -> BareResult:
    """Consume [starts, ends), json.loads + json.dumps each record, produce it, commit per batch."""
    await kafka.commit_at(group, starts)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        max_poll_records=BARE_BATCH,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        consumer.assign(list(ends))  # positions come from the group's committed offsets
        remaining = {tp for tp in ends if ends[tp] > starts[tp]}
        for tp in set(ends) - remaining:
            consumer.pause(tp)
        done = batches = 0
        first: float | None = None
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                continue
            if first is None:
                first = time.perf_counter()
            sends = []
            commit: Offsets = {}
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break  # written after the range was recorded: not ours to count
                    value = json.dumps(json.loads(record.value)).encode()
                    sends.append(await producer.send(out, value, key=record.key))
                    commit[tp] = record.offset + 1
            await asyncio.gather(*sends)
            if commit:
                await consumer.commit(commit)
            done += len(sends)
            batches += 1
            for tp, offset in commit.items():
                if offset >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        assert first is not None
        return BareResult(done, time.perf_counter() - first, batches)
    finally:
        await producer.stop()
        await consumer.stop()


# ---- 1b: the collections worker ----------------------------------------------------------


def agent_seconds(service: Service) -> tuple[float, float]:
    """(messages, seconds) the worker's agent body took, from its own /metrics histogram."""
    with urllib.request.urlopen(service.url("/metrics"), timeout=10) as answer:  # noqa: S310  (http on loopback, built here)
        text = answer.read().decode()
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in found:
            if line.startswith(f"billstate_processing_seconds_{kind}"):
                found[kind] = float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


@dataclass
class WorkerResult:
    level: str
    records: int  # records counted in the rate (committed between first and last sample)
    seconds: float  # from the first commit observed to the commit of the last record
    to_ready: float  # process start to /readyz 200
    to_first_commit: float  # process start to the first commit observed
    cpu: float | None  # CPU seconds the process used over the measured window
    peak_mib: float | None
    log_mib: float
    agent_us: float  # mean time in the agent body per message (the worker's own histogram)

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def agent_share(self) -> float:
        """How much of the wall time per message the agent body accounts for."""
        return self.agent_us * self.rate / 1e6


@dataclass
class Drained:
    """A consumer group's drain of the range, as its committed offsets show it."""

    records: int  # records committed between the first sample with progress and the last
    seconds: float  # from that first sample to the one where the range is all committed
    to_first_commit: float  # process start to the first commit observed
    cpu: float | None  # CPU seconds the process used over the measured window


async def drain(
    kafka: Kafka,
    group: str,
    starts: Offsets,
    ends: Offsets,
    *,
    pid: int,
    alive: Callable[[], None],
    spawned: float,
    limit: float,
) -> Drained:
    """Sample `group`'s committed offsets every 50 ms until they reach `ends`. The rate counts
    from the first sample where the lag has dropped (start-up excluded) to the sample where it
    is zero."""
    total = count(starts, ends)
    first: tuple[float, int, float | None] | None = None
    while True:
        alive()
        done = await kafka.committed(group, ends)
        now = time.monotonic()
        progress = sum(min(done[tp], ends[tp]) - starts[tp] for tp in ends)
        if first is None and progress > 0:
            first = (now, progress, cpu_seconds(pid))
        if progress >= total:
            break
        if now - spawned > limit:
            raise TimeoutError(f"{group}: {total - progress} records left")
        await asyncio.sleep(0.05)
    cpu_end = cpu_seconds(pid)
    assert first is not None
    began, progress0, cpu0 = first
    return Drained(
        records=total - progress0,
        seconds=now - began,
        to_first_commit=began - spawned,
        cpu=None if cpu0 is None or cpu_end is None else cpu_end - cpu0,
    )


async def worker_run(
    kafka: Kafka, worker: Worker, starts: Offsets, ends: Offsets, limit: float = 900.0
) -> WorkerResult:
    """Start the worker under a group committed at `starts` and time its drain of the range."""
    await kafka.commit_at(worker.group, starts)
    spawned = time.monotonic()
    worker.start()
    service = worker.service
    ready_at: list[float] = []

    async def watch_ready() -> None:
        while not await asyncio.to_thread(service.ready):  # noqa: ASYNC110  (polls another process over HTTP)
            await asyncio.sleep(0.05)
        ready_at.append(time.monotonic())

    ready_task = asyncio.create_task(watch_ready())
    try:
        drained = await drain(
            kafka, worker.group, starts, ends,
            pid=worker.pid, alive=worker.check_alive, spawned=spawned, limit=limit,
        )  # fmt: skip
        await asyncio.wait_for(ready_task, 30)
        messages, in_agent = await asyncio.to_thread(agent_seconds, service)
    finally:
        ready_task.cancel()
    return WorkerResult(
        level=worker.level,
        records=drained.records,
        seconds=drained.seconds,
        to_ready=ready_at[0] - spawned,
        to_first_commit=drained.to_first_commit,
        cpu=drained.cpu,
        peak_mib=proc_status(worker.pid).get("VmHWM"),
        log_mib=service.log.stat().st_size / 2**20 if service.log.exists() else 0.0,
        agent_us=in_agent / messages * 1e6 if messages else 0.0,
    )


# ---- 1c: faust's floor -------------------------------------------------------------------


@dataclass
class FloorResult:
    mode: str
    drained: Drained
    peak_mib: float | None
    written: int  # records the floor wrote to its output topic

    @property
    def rate(self) -> float:
        return self.drained.records / self.drained.seconds


FLOOR_NAMES = {"nothing": "faust, do-nothing agent", "produce": "faust, decode + produce one"}


async def floor_run(
    kafka: Kafka, floor: Floor, starts: Offsets, ends: Offsets, limit: float = 900.0
) -> FloorResult:
    """A faust floor process (bench/faust_floor.py) over the range, timed as the worker is."""
    await kafka.commit_at(floor.group, starts)
    before = await kafka.ends([floor.out])
    spawned = time.monotonic()
    floor.start()
    try:
        drained = await drain(
            kafka, floor.group, starts, ends,
            pid=floor.pid, alive=floor.check_alive, spawned=spawned, limit=limit,
        )  # fmt: skip
        peak = proc_status(floor.pid).get("VmHWM")
    finally:
        floor.stop()
    # Read after the stop: every write acknowledged before its offset committed is counted.
    result = FloorResult(floor.mode, drained, peak, count(before, await kafka.ends([floor.out])))
    cpu = f", {drained.cpu:.1f} CPU s" if drained.cpu is not None else ""
    say(f"{FLOOR_NAMES[floor.mode]}: {drained.records:,} records in {drained.seconds:.2f} s{cpu}"
        f" = {result.rate:,.0f} events/s; first commit {drained.to_first_commit:.1f} s"
        f" after start; wrote {result.written:,} records")  # fmt: skip
    return result


# ---- 2: payment -> restore latency -------------------------------------------------------


@dataclass
class LatencyResult:
    sent: int
    payments: int
    send_seconds: float
    max_slip_ms: float  # worst delay of a send behind its slot on the schedule
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    max_lag: int = 0  # worst records-behind of the worker sampled during the run
    drain_seconds: float = 0.0  # after the last send, until the worker committed everything
    dlq: int = 0
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (send s, latency ms)
    lag_samples: list[tuple[float, int]] = field(default_factory=list)  # (s, records behind)

    def windows(self, width: float = 10.0) -> list[str]:
        """Latency and worker lag per `width` seconds of the run (by send time)."""
        end = max([t for t, _ in self.timeline] + [t for t, _ in self.lag_samples], default=0)
        lines = []
        for k in range(math.ceil((end + 1e-9) / width)):
            lo, hi = k * width, (k + 1) * width
            lat = [v for t, v in self.timeline if lo <= t < hi]
            lag = [v for t, v in self.lag_samples if lo <= t < hi]
            lines.append(
                f"{lo:5.0f}-{hi:<4.0f}s  payments {len(lat):>4}  p50 {ms(lat, 50):>8}"
                f"  max {max(lat, default=0):8.1f} ms   worker lag max {max(lag, default=0):>7,}"
            )
        return lines

    @property
    def achieved(self) -> float:
        return (self.sent - 1) / self.send_seconds if self.send_seconds > 0 else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def read_commands(kafka: Kafka, since: Offsets, kind: str, prefix: str) -> set[str]:
    """Customers (with `prefix`) that got an `access.<kind>` command after `since`."""
    ends = await kafka.ends([ACCESS_COMMANDS.name])
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: set[str] = set()
    try:
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, since.get(tp, 0))
        remaining = {tp for tp in ends if ends[tp] > since.get(tp, 0)}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    event = json.loads(record.value)
                    if event["event_type"] == f"access.{kind}" and event["customer_id"].startswith(
                        prefix
                    ):
                        found.add(event["customer_id"])
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


async def latency_run(  # noqa: C901, PLR0915  (one measured run, read top to bottom; pieces would scatter its clock)
    kafka: Kafka,
    worker: Worker,
    *,
    payments: dict[str, Record],
    filler_records: list[Record],
    rate: float,
    duration: float,
) -> LatencyResult:
    total = int(rate * duration)
    every = total / len(payments)
    # The schedule: slot i at t0 + i / rate; payment j takes slot round((j + 0.5) * every).
    pay_slots = {round((j + 0.5) * every): cid for j, cid in enumerate(payments)}
    dlq_before = await kafka.ends(DLQ_TOPICS)
    commands_since = await kafka.ends([ACCESS_COMMANDS.name])

    sent_at: dict[str, float] = {}
    arrived_at: dict[str, float] = {}
    stop = asyncio.Event()

    listener = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await listener.start()
    listener.assign(list(commands_since))
    for tp, offset in commands_since.items():
        listener.seek(tp, offset)
    for tp in commands_since:
        await listener.position(tp)

    async def listen() -> None:
        while not stop.is_set():
            batch = await listener.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    cid = event["customer_id"]
                    if event["event_type"] == "access.restore" and cid in payments:
                        arrived_at.setdefault(cid, now)

    lags: list[tuple[float, int]] = []
    t0 = time.monotonic() + 0.5  # the schedule's origin

    async def watch_lag() -> None:
        while not stop.is_set():
            ends = await kafka.ends(INPUT_TOPICS)
            lags.append((time.monotonic() - t0, await kafka.lag(worker.group, ends)))
            await asyncio.sleep(1.0)

    listening = asyncio.create_task(listen())
    watching = asyncio.create_task(watch_lag())
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    pending = []
    slip = 0.0
    fill = iter(filler_records)
    try:
        first_send = last_send = t0
        for i in range(total):
            slot = t0 + i / rate
            now = time.monotonic()
            if now < slot:
                await asyncio.sleep(slot - now)
                now = time.monotonic()
            slip = max(slip, now - slot)
            cid = pay_slots.get(i)
            if cid is not None:
                topic, key, value = payments[cid]
                sent_at[cid] = time.monotonic()
            else:
                topic, key, value = next(fill)
            pending.append(await producer.send(topic, value, key=key))
            if i == 0:
                first_send = now
            last_send = now
        await asyncio.gather(*pending)  # every send acknowledged
        finished = time.monotonic()
        await kafka.settle(worker.group, limit=300)
        drained = time.monotonic() - finished
        deadline = time.monotonic() + 30
        while len(arrived_at) < len(payments) and time.monotonic() < deadline:  # noqa: ASYNC110  (a bounded wait; an Event per arrival would cost the measured path)
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await producer.stop()
        await asyncio.gather(listening, watching, return_exceptions=True)
        await listener.stop()
    dlq_after = await kafka.ends(DLQ_TOPICS)
    latencies = [(arrived_at[c] - sent_at[c]) * 1000 for c in sent_at if c in arrived_at]
    return LatencyResult(
        sent=total,
        payments=len(pay_slots),
        send_seconds=last_send - first_send,
        max_slip_ms=slip * 1000,
        latencies_ms=latencies,
        missing=len(sent_at) - len(latencies),
        max_lag=max((lag for _, lag in lags), default=0),
        drain_seconds=drained,
        dlq=count(dlq_before, dlq_after),
        timeline=[(sent_at[c] - t0, (arrived_at[c] - sent_at[c]) * 1000) for c in arrived_at],
        lag_samples=lags,
    )


# ---- the run -----------------------------------------------------------------------------


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}" if values else "-"


async def run(args: argparse.Namespace, bootstrap: str) -> int:  # noqa: C901, PLR0915  (one measured run, read top to bottom; pieces would scatter its clock)
    policy = load_policy(POLICY)
    tag = uuid.uuid4().hex[:8]
    kafka = Kafka(bootstrap)
    work = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{tag}-"))
    bare_out = f"bench.pipeline-{tag}.bare-out"
    floor_out = f"bench.pipeline-{tag}.floor-out"
    groups = {
        "bare": f"bench-{tag}-bare",
        "WARNING": f"bench-{tag}-collections-warning",
        "INFO": f"bench-{tag}-collections-info",
        **{mode: f"bench-{tag}-floor-{mode}" for mode in MODES},
    }
    workers: list[Worker] = []
    load_at_start = load()
    await apply_catalog(bootstrap)
    await kafka.start()
    try:
        await kafka.create_topic(bare_out, CUSTOMER_PARTITIONS)
        await kafka.create_topic(floor_out, CUSTOMER_PARTITIONS)

        # -- input
        began = time.perf_counter()
        events = history(args.customers, args.days, seed=args.seed)
        records, _ = collections_input(events, Replay(policy))
        say(f"input: history(customers={args.customers}, days={args.days}, seed={args.seed})"
            f" -> {len(records):,} collections input records"
            f" ({time.perf_counter() - began:.1f} s to generate and replay)")  # fmt: skip
        starts = await kafka.ends(INPUT_TOPICS)
        _, seconds = await produce(bootstrap, records)
        ends = await kafka.ends(INPUT_TOPICS)
        n = count(starts, ends)
        say(
            f"       produced in {seconds:.1f} s; N = {n:,} records in the recorded range"
            + ("" if n == len(records) else f" (others wrote {n - len(records):,} meanwhile)")
        )

        # -- bare loop
        bare = await bare_loop(kafka, groups["bare"], starts, ends, bare_out)
        say(f"bare loop: {bare.records:,} records in {bare.seconds:.2f} s"
            f" ({bare.batches} batches) = {bare.rate:,.0f} events/s")  # fmt: skip

        # -- faust's floor: the same range through a faust agent that does (almost) nothing
        modes = [] if args.skip_floor else list(MODES)
        floors = [
            await floor_run(kafka, Floor(mode, work / groups[mode], bootstrap, groups[mode],
                                         list(INPUT_TOPICS), floor_out), starts, ends)
            for mode in modes
        ]  # fmt: skip

        # -- the worker, INFO then WARNING (kept running for the latency run)
        results: dict[str, WorkerResult] = {}
        for level in ([] if args.skip_info else ["INFO"]) + ["WARNING"]:
            worker = Worker(work / groups[level], bootstrap, groups[level], level)
            workers.append(worker)
            result = await worker_run(kafka, worker, starts, ends)
            results[level] = result
            cpu = f", {result.cpu:.1f} CPU s" if result.cpu is not None else ""
            say(f"collections worker ({level}): {result.records:,} records in"
                f" {result.seconds:.2f} s{cpu} = {result.rate:,.0f} events/s;"
                f" ready {result.to_ready:.1f} s and first commit {result.to_first_commit:.1f} s"
                f" after start; log {result.log_mib:.1f} MiB")  # fmt: skip
            say(f"    agent body {result.agent_us:,.0f} us per message (its own histogram)"
                f" = {result.agent_share:.0%} of the {1e6 / result.rate:,.0f} us of wall time"
                " per message; the rest is faust, aiokafka and the event loop")  # fmt: skip
            if level != "WARNING":
                worker.stop()
        worker = workers[-1]

        # -- latency
        result_latency: LatencyResult | None = None
        if args.duration > 0:
            prefix = f"lat{tag}-"
            sus = suspended_customers(policy, args.suspended, tag)
            if sus.suspends != args.suspended or sus.restores != args.suspended:
                raise RuntimeError(
                    f"replay: {sus.suspends} suspends, {sus.restores} restores for"
                    f" {args.suspended} customers; the setup does not do what it should"
                )
            fill = filler(policy, int(args.rate * args.duration), 2000, 90, args.seed + 1)
            since = await kafka.ends([ACCESS_COMMANDS.name])
            prep = time.monotonic()
            for wave in (sus.upserts, sus.invoices, sus.aged):
                await produce(bootstrap, wave)
                await kafka.settle(worker.group)
            suspended = await read_commands(kafka, since, "suspend", prefix)
            say(f"latency setup: {args.suspended} customers, {len(sus.aged):,} invoice.aged"
                f" events; {len(suspended)} access.suspend commands seen"
                f" ({time.monotonic() - prep:.1f} s)")  # fmt: skip
            if len(suspended) != args.suspended:
                raise RuntimeError(f"only {len(suspended)} of {args.suspended} were suspended")
            result_latency = await latency_run(
                kafka,
                worker,
                payments=sus.payments,
                filler_records=fill,
                rate=args.rate,
                duration=args.duration,
            )
            say("latency run, per 10 s of sending:")
            for line in result_latency.windows():
                say("    " + line)
        peak = proc_status(worker.pid).get("VmHWM")
        worker.stop()

        # -- summary
        w = results["WARNING"]
        ratio = w.rate / bare.rate
        say("")
        say("== bench-pipeline summary " + "=" * 50)
        say(f"host                           {os.cpu_count()} CPUs; load average {load_at_start}"
            f" at the start, {load()} now (other work on the host skews every figure)")  # fmt: skip
        say(f"input N                        {n:,} records (collections' input for"
            f" history({args.customers}, {args.days}, seed={args.seed}))")  # fmt: skip
        say(f"bare loop                      {bare.rate:,.0f} events/s")
        for f in floors:
            cpu = (
                f"; {f.drained.cpu / f.drained.records * 1e6:,.0f} CPU us/event"
                if f.drained.cpu
                else ""
            )
            say(f"{FLOOR_NAMES[f.mode]:<30} {f.rate:,.0f} events/s"
                f"  (ratio {f.rate / bare.rate:.2f}{cpu})")  # fmt: skip
        w_cpu = f"; {w.cpu / w.records * 1e6:,.0f} CPU us/event" if w.cpu else ""
        say(f"collections worker (WARNING)   {w.rate:,.0f} events/s"
            f"  (ratio {ratio:.2f}, target >= {TARGET_RATIO}: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}{w_cpu})")  # fmt: skip
        if "INFO" in results:
            i = results["INFO"]
            say(f"collections worker (INFO)      {i.rate:,.0f} events/s"
                f"  (ratio {i.rate / bare.rate:.2f}; {i.log_mib:.1f} MiB of logs)")  # fmt: skip
        if result_latency is not None:
            lat = result_latency.latencies_ms
            p99 = percentile(lat, 99) if lat else float("inf")
            say(f"producer                       {result_latency.sent:,} events in"
                f" {result_latency.send_seconds:.1f} s = {result_latency.achieved:,.0f} events/s"
                f" (asked {args.rate:,.0f}; worst slip behind schedule"
                f" {result_latency.max_slip_ms:.1f} ms)")  # fmt: skip
            say(f"payment -> restore at {args.rate:,.0f}/s   n={len(lat)} p50 {ms(lat, 50)}"
                f"  p95 {ms(lat, 95)}  p99 {ms(lat, 99)}  max {max(lat, default=0):.1f} ms"
                f"  (target p99 < {TARGET_P99_MS:.0f} ms: "
                f"{'met' if p99 < TARGET_P99_MS else 'NOT met'})")  # fmt: skip
            say(f"                               missing restores {result_latency.missing};"
                f" worker lag max {result_latency.max_lag:,} records (1 s samples);"
                f" drained {result_latency.drain_seconds:.1f} s after the last send;"
                f" dead letters {result_latency.dlq}")  # fmt: skip
        peaks = ", ".join(
            f"{r.level} {r.peak_mib:,.0f} MiB" for r in results.values() if r.peak_mib is not None
        )
        say(
            f"worker peak RSS (VmHWM)        {peaks}"
            + (f"; WARNING after the latency run {peak:,.0f} MiB" if peak else "")
        )
        return 0
    finally:
        for worker in workers:
            worker.stop()
        await kafka.close([f"bench-{tag}-", f"bench.pipeline-{tag}."])
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_pipeline.py",
        description="Throughput of the collections worker against a bare aiokafka loop on the "
        "same broker, and payment -> restore latency at a steady rate.",
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--suspended", type=int, default=300, help="customers paid in the run")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s in the latency run")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds; 0 skips it")
    parser.add_argument("--skip-info", action="store_true", help="no INFO-logging worker run")
    parser.add_argument(
        "--skip-floor", action="store_true", help="no faust do-nothing / produce-one runs"
    )
    return run_bench("bench-pipeline", run, parser.parse_args(argv))


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
