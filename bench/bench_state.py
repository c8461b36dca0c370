"""The collections worker with N customers in state: peak memory, and time back after restarts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from harness import (
    DLQ_TOPICS,
    INPUT_TOPICS,
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
    tree_mib,
)

from billstate_devkit import localkafka
from billstate_shared.runtime.faustkit import acked_table, make_app
from billstate_shared.topics import (
    CUSTOMER_PARTITIONS,
    CUSTOMERS,
    DUE_DATES,
    EVENTS,
    INVOICES,
    STATE,
)

TARGET_RSS_MIB = 2048.0
TARGET_BACK_S = 60.0
COMPACTION_WAIT = 180.0  # seconds the bench gives the broker's log cleaner (--clone-from)
ISSUED_ON = date(2026, 4, 1)
DUE_ON = ISSUED_ON + timedelta(days=30)
KINDS = ("sigterm", "sigkill", "fresh")


# ---- input -------------------------------------------------------------------------------


def customer_id(tag: str, i: int) -> str:
    return f"st{tag}-{i:07d}"


def amount(i: int) -> str:
    return f"{100 + i % 900}.00"


def customer_records(tag: str, first: int, last: int) -> Iterator[Record]:
    """customer.upserted then invoice.issued for customers [first, last), due 2026-05-01.

    Formatted directly rather than through the pydantic models: building two million models
    would make the bench's own producer the slowest part. The shapes are the contract's
    (the worker dead-letters anything else, and the bench counts dead letters).
    """
    for i in range(first, last):
        cid = customer_id(tag, i)
        key = cid.encode()
        sub = f"SUB-{cid}-1"
        yield (
            CUSTOMERS.name,
            key,
            (
                f'{{"event_id":"{cid}-upserted-1","event_type":"customer.upserted",'
                f'"schema_version":1,"occurred_at":"{ISSUED_ON}T08:00:00+08:00",'
                f'"customer_id":"{cid}","data":{{"name":"Customer {i}","locale":"en",'
                f'"billing_email":"ap@{cid}.example",'
                f'"partner_contact_email":"am01@partner.example","tags":[],'
                f'"subscription_ids":["{sub}"]}}}}'
            ).encode(),
        )
        yield (
            INVOICES.name,
            key,
            (
                f'{{"event_id":"INV-{cid}-1-issued","event_type":"invoice.issued",'
                f'"schema_version":1,"occurred_at":"{ISSUED_ON}T08:30:00+08:00",'
                f'"customer_id":"{cid}","data":{{"invoice_id":"INV-{cid}-1","currency":"USD",'
                f'"amount":"{amount(i)}","issued_on":"{ISSUED_ON}","due_on":"{DUE_ON}",'
                f'"subscription_ids":["{sub}"]}}}}'
            ).encode(),
        )


def marker(tag: str, i: int, clones: int = 0) -> Record:
    """invoice.aged, one day past due, for a loaded customer's invoice. With the customer's
    book in state it enters `overdue` (a collections.stage_entered output); on an empty book
    it does nothing but change the book, so the output proves state and processing both.
    A cloned book (`--clone-from`) holds its source's amount."""
    cid = customer_id(tag, i)
    source = i % clones if clones else i
    as_of = DUE_ON + timedelta(days=1)
    value = json.dumps({
        "event_id": f"INV-{cid}-1-aged-{as_of}", "event_type": "invoice.aged",
        "schema_version": 1, "occurred_at": f"{as_of}T09:00:00+08:00", "customer_id": cid,
        "data": {"invoice_id": f"INV-{cid}-1", "due_on": str(DUE_ON), "as_of": str(as_of),
                 "days_past_due": 1, "outstanding": {"amount": amount(source), "currency": "USD"},
                 "subscription_ids": [f"SUB-{cid}-1"]},
    })  # fmt: skip
    return DUE_DATES.name, cid.encode(), value.encode()


async def produce_customers(bootstrap: str, tag: str, customers: int) -> tuple[int, float]:
    """Write every customer's two records; return (records, seconds)."""

    def progress(sent: int, seconds: float) -> None:
        if sent % 400_000 == 0:
            say(f"       {sent:,} records ({sent / seconds:,.0f}/s)")

    # Batching and linger carry the rate; no compression: on loopback it costs CPU the
    # producer is short of and saves nothing (and lz4/zstd are not installed).
    return await produce(
        bootstrap,
        customer_records(tag, 0, customers),
        linger_ms=20,
        batch_bytes=512 * 1024,
        flush_every=20_000,
        progress=progress,
    )


# ---- cloned books (--clone-from) ---------------------------------------------------------


async def changelog_values(bootstrap: str, topic: str) -> tuple[dict[bytes, bytes], int]:
    """The newest value of every key in `topic`, read from its start to its current end,
    and how many records that took (fewer than the end offsets once compaction ran)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(CUSTOMER_PARTITIONS)]  # the table's
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        ends = {tp: o for tp, o in (await reader.end_offsets(parts)).items() if o > 0}
        values: dict[bytes, bytes] = {}
        read = 0
        while ends:
            for tp, records in (await reader.getmany(timeout_ms=500)).items():
                read += len(records)
                for record in records:
                    if record.key is not None and record.value is not None:
                        values[record.key] = record.value
                if await reader.position(tp) >= ends.get(tp, 0):
                    ends.pop(tp, None)
        return values, read
    finally:
        await reader.stop()


def cloned_books(
    tag: str, topic: str, values: dict[bytes, bytes], *, sources: int, customers: int, writes: int
) -> Iterator[Record]:
    """Books for customers [sources, customers), each its source's (`i % sources`) value with
    the customer id swapped, all written `writes` times over (as the load writes each book
    once per input record), so compaction has versions to drop. The ids have one width, so
    a length-prefixed value stays whole; the default partitioner puts each key where the
    worker's own write would go."""
    for i in (i for _ in range(writes) for i in range(sources, customers)):
        src, cid = customer_id(tag, i % sources).encode(), customer_id(tag, i).encode()
        value = values[src]
        if src not in value:
            raise RuntimeError(f"the book of {src.decode()} does not name its customer: "
                               "--clone-from cannot rename it")  # fmt: skip
        yield topic, cid, value.replace(src, cid)


async def clone_books(
    bootstrap: str, tag: str, topic: str, *, sources: int, customers: int, writes: int
) -> tuple[int, float, float]:
    """Write the cloned books to the changelog; return (records, seconds, mean value bytes)."""
    values, _ = await changelog_values(bootstrap, topic)
    mean = sum(map(len, values.values())) / len(values) if values else 0.0
    sent, seconds = await produce(
        bootstrap,
        cloned_books(tag, topic, values, sources=sources, customers=customers, writes=writes),
        linger_ms=20,
        batch_bytes=512 * 1024,
        flush_every=20_000,
    )
    return sent, seconds, mean


async def compacted(bootstrap: str, topic: str, limit: float) -> float | None:
    """Wait until the local broker's log cleaner has cleaned every partition of `topic` once
    (its cleaner-offset-checkpoint names them all); return the seconds waited, or None for a
    broker we cannot see or past `limit`."""
    layout = localkafka.Layout.from_env()
    if bootstrap != layout.bootstrap:
        return None
    checkpoint = layout.data / "cleaner-offset-checkpoint"
    began = time.monotonic()
    while time.monotonic() - began < limit:
        lines = checkpoint.read_text().splitlines()[2:] if checkpoint.exists() else []
        if sum(line.split()[0] == topic for line in lines if line.strip()) >= CUSTOMER_PARTITIONS:
            return time.monotonic() - began
        await asyncio.sleep(1.0)
    return None


def table_changelog_config(work: Path) -> dict[str, str]:
    """The topic configs the worker's table declares for its changelog (`acked_table`)."""
    app = make_app("bench-config", "127.0.0.1:1", work / "config")
    table = acked_table(app, "books", partitions=CUSTOMER_PARTITIONS)
    return {key: str(value) for key, value in (table.changelog_topic.config or {}).items()}


# ---- profile hook (BENCH_STATE_PROFILE) --------------------------------------------------

# Loaded by every worker process the bench starts (through PYTHONPATH): cProfile over the
# whole process, written when it exits (a SIGTERM stop exits normally).
SITECUSTOMIZE = """\
import atexit, cProfile, os
_out = os.environ.get("BENCH_STATE_PROFILE")
if _out:
    _profile = cProfile.Profile()
    _profile.enable()
    atexit.register(lambda: _profile.dump_stats(f"{_out}/worker-{os.getpid()}.prof"))
"""


def profile_hook(work: Path) -> str | None:
    """With BENCH_STATE_PROFILE set to a dir, make the workers started from now on load the
    hook; return the dir the profiles go to."""
    out = os.environ.get("BENCH_STATE_PROFILE")
    if not out:
        return None
    hook = work / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    Path(out).mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_STATE_PROFILE"] = str(Path(out).resolve())
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(hook), os.environ.get("PYTHONPATH")])
    )
    return os.environ["BENCH_STATE_PROFILE"]


# ---- sizes -------------------------------------------------------------------------------


def topic_mib(bootstrap: str, topic: str) -> float | None:
    """The topic's size in the local broker's log dirs; None for a broker we cannot see."""
    layout = localkafka.Layout.from_env()
    if bootstrap != layout.bootstrap or not layout.data.is_dir():
        return None
    return sum(tree_mib(p) for p in layout.data.glob(f"{topic}-*") if p.is_dir())


# ---- the worker --------------------------------------------------------------------------


@dataclass
class Memory:
    """RSS samples of the worker processes, and the highest VmHWM any of them reported."""

    peak_rss: float = 0.0
    peak_hwm: float = 0.0

    def sample(self, pid: int) -> dict[str, float]:
        found = proc_status(pid)
        self.peak_rss = max(self.peak_rss, found.get("VmRSS", 0.0))
        self.peak_hwm = max(self.peak_hwm, found.get("VmHWM", 0.0))
        return found


@dataclass
class LoadResult:
    records: int
    seconds: float  # first commit observed to everything committed
    to_first_commit: float
    cpu: float | None
    peak_rss: float
    peak_hwm: float
    data_mib: float = 0.0
    changelog_records: int = 0
    changelog_mib: float | None = None
    dead_letters: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def load_state(
    kafka: Kafka, worker: Worker, starts: Offsets, ends: Offsets, limit: float
) -> LoadResult:
    """Start the worker at `starts`, sample RSS every 0.25 s and the group's committed offsets
    every second, until everything up to `ends` is committed."""
    total = count(starts, ends)
    await kafka.commit_at(worker.group, starts)
    memory = Memory()
    spawned = time.monotonic()
    worker.start()
    pid = worker.pid
    first: tuple[float, int, float | None] | None = None
    last_report = spawned
    last_done = 0
    while True:
        worker.check_alive()
        done = total - await kafka.lag(worker.group, ends)
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done, cpu_seconds(pid))
        if done >= total:
            break
        if now - last_report >= 30:
            mem = memory.sample(pid)
            say(f"    {now - spawned:6.0f} s  {done:>10,} / {total:,} committed"
                f"  ({(done - last_done) / (now - last_report):,.0f}/s)"
                f"  VmRSS {mem.get('VmRSS', 0):,.0f} MiB  load {load()}")  # fmt: skip
            last_report, last_done = now, done
        if now - spawned > limit:
            raise TimeoutError(f"{total - done:,} records left after {limit:.0f} s")
        for _ in range(4):
            memory.sample(pid)
            await asyncio.sleep(0.25)
    memory.sample(pid)
    cpu_end = cpu_seconds(pid)
    assert first is not None
    began, done0, cpu0 = first
    return LoadResult(
        records=total - done0,
        seconds=now - began,
        to_first_commit=began - spawned,
        cpu=None if cpu0 is None or cpu_end is None else cpu_end - cpu0,
        peak_rss=memory.peak_rss,
        peak_hwm=memory.peak_hwm,
    )


# ---- restarts ----------------------------------------------------------------------------


@dataclass
class RestartResult:
    kind: str
    customer: str
    stop_seconds: float  # signal to exit
    stop_note: str = ""
    to_ready: float | None = None  # process start to the first /readyz 200
    to_marker: float | None = None  # process start to the marker's stage_entered seen
    state_only: bool = False  # the marker changed the book but entered no stage: state lost
    peak_rss: float = 0.0
    data_mib: float = 0.0
    cpu: float | None = None  # the new process's CPU seconds until back (host load aside)
    recovered: int = 0  # changelog records the new process had to read

    @property
    def back(self) -> float | None:
        """Back to processing: /readyz 200 and the marker's output seen, whichever is later."""
        if self.to_ready is None or self.to_marker is None:
            return None
        return max(self.to_ready, self.to_marker)


async def restart(  # noqa: C901, PLR0912  (one timed restart, read top to bottom)
    kafka: Kafka,
    worker: Worker,
    kind: str,
    *,
    tag: str,
    index: int,
    limit: float,
    changelog: str,
    clones: int = 0,
) -> RestartResult:
    """Stop the caught-up worker (SIGTERM, SIGKILL, or SIGTERM and a fresh data dir), write a
    marker for customer `index` while it is down, start it and time it back to processing."""
    cid = customer_id(tag, index)
    sig = signal.SIGKILL if kind == "sigkill" else signal.SIGTERM
    stopped = worker.stop(sig)
    result = RestartResult(kind, cid, stopped, worker.stop_note)
    if kind == "fresh":
        # A new data dir: the table can only come back from its changelog topic.
        worker.root = worker.root.with_name(worker.root.name + "-fresh")
    watched = [EVENTS.name, STATE.name]
    since = await kafka.ends(watched)
    if kind == "fresh":
        result.recovered = (await changelog_values(kafka.bootstrap, changelog))[1]
    listener = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await listener.start()
    try:
        listener.assign(list(since))
        for tp, offset in since.items():
            listener.seek(tp, offset)
        await produce(kafka.bootstrap, [marker(tag, index, clones)])
        memory = Memory()
        spawned = time.monotonic()
        worker.start()
        service, pid = worker.service, worker.pid
        while result.back is None:
            worker.check_alive()
            memory.sample(pid)
            now = time.monotonic()
            if now - spawned > limit:
                break
            if result.to_ready is None and await asyncio.to_thread(service.ready):
                result.to_ready = time.monotonic() - spawned
            batch = await listener.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    if record.key != cid.encode():
                        continue
                    event_type = json.loads(record.value)["event_type"]
                    if event_type == "collections.stage_entered" and result.to_marker is None:
                        result.to_marker = time.monotonic() - spawned
                    elif event_type == "collections.state":
                        result.state_only = True
        result.cpu = cpu_seconds(pid)
        if result.to_marker is not None:
            result.state_only = False
        result.peak_rss = max(memory.peak_rss, memory.peak_hwm)
        result.data_mib = tree_mib(worker.root / "collections")
    finally:
        await listener.stop()
    return result


# ---- the run -----------------------------------------------------------------------------


def verdict(*, ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def run(args: argparse.Namespace, bootstrap: str) -> int:  # noqa: PLR0915  (one measured run, read top to bottom)
    tag = uuid.uuid4().hex[:6]
    group = f"bench-{tag}-state"
    changelog = f"{group}-books-changelog"
    work = Path(tempfile.mkdtemp(prefix=f"bench-state-{tag}-"))
    kafka = Kafka(bootstrap)
    # WARNING: at INFO the worker writes one log line per message, gigabytes for a million
    # customers; bench-pipeline measures what INFO costs.
    worker = Worker(work / "worker", bootstrap, group, level="WARNING")
    profiles = profile_hook(work)
    load_at_start = load()
    await apply_catalog(bootstrap)
    await kafka.start()
    restarts: list[RestartResult] = []
    try:
        # -- input
        starts = await kafka.ends(INPUT_TOPICS)
        dlq_before = await kafka.ends(DLQ_TOPICS)
        through = args.clone_from or args.customers  # customers the worker loads itself
        say(f"input: {through:,} customers x (customer.upserted + invoice.issued)")
        sent, seconds = await produce_customers(bootstrap, tag, through)
        ends = await kafka.ends(INPUT_TOPICS)
        n = count(starts, ends)
        say(f"       produced {sent:,} records in {seconds:.1f} s = {sent / seconds:,.0f}"
            f" records/s; N = {n:,} in the recorded range"
            + ("" if n == sent else f" (others wrote {n - sent:,} meanwhile)"))  # fmt: skip

        # Created here with the configs the table declares (or, --changelog-defaults, with
        # Kafka's default segments, as a changelog made before it declared them): the worker
        # keeps the configs of a changelog that exists.
        config = {"cleanup.policy": "compact"}
        if not args.changelog_defaults:
            config |= table_changelog_config(work)
        await kafka.admin.create_topics(
            [NewTopic(changelog, CUSTOMER_PARTITIONS, 1, topic_configs=config)]
        )
        say(f"changelog {changelog} created: {config}")

        # -- load the state
        say(f"worker: group {group}, data dir {worker.root / 'collections'}")
        loaded = await load_state(kafka, worker, starts, ends, args.timeout)
        loaded.data_mib = tree_mib(worker.root / "collections")
        loaded.changelog_records = sum((await kafka.ends([changelog])).values())
        loaded.changelog_mib = topic_mib(bootstrap, changelog)
        loaded.dead_letters = count(dlq_before, await kafka.ends(DLQ_TOPICS))
        cpu = f", {loaded.cpu:,.0f} CPU s" if loaded.cpu is not None else ""
        say(f"loaded: {loaded.records:,} records in {loaded.seconds:,.1f} s{cpu}"
            f" = {loaded.rate:,.0f} records/s (first commit {loaded.to_first_commit:.1f} s"
            f" after start); peak VmRSS {loaded.peak_rss:,.0f} MiB,"
            f" VmHWM {loaded.peak_hwm:,.0f} MiB; dead letters {loaded.dead_letters}")  # fmt: skip
        if args.clone_from:
            cloned, took, size = await clone_books(
                bootstrap,
                tag,
                changelog,
                sources=args.clone_from,
                customers=args.customers,
                writes=args.clone_writes,
            )
            loaded.changelog_records = sum((await kafka.ends([changelog])).values())
            loaded.changelog_mib = topic_mib(bootstrap, changelog)
            say(f"cloned: {cloned:,} books ({size:,.0f} bytes each on average) written to"
                f" {changelog} in {took:.1f} s ({cloned / took:,.0f}/s)")  # fmt: skip
            # The cleaner only touches rolled segments: with Kafka's defaults there are none.
            if not args.changelog_defaults:
                waited = await compacted(bootstrap, changelog, COMPACTION_WAIT)
                seen = (
                    f"not seen within {COMPACTION_WAIT:.0f} s (or another broker)"
                    if waited is None
                    else f"every partition cleaned after {waited:.0f} s"
                )
                say(f"        changelog compaction: {seen}")
        cl_mib = "-" if loaded.changelog_mib is None else f"{loaded.changelog_mib:,.0f} MiB"
        say(f"        data dir {loaded.data_mib:,.0f} MiB; changelog {changelog}:"
            f" {loaded.changelog_records:,} records, {cl_mib} on the broker")  # fmt: skip

        # -- restarts, each for a different customer so each marker can enter a stage
        picks = random.Random(tag).sample(range(args.customers), len(args.restarts))
        for kind, index in zip(args.restarts, picks, strict=True):
            await kafka.settle(group, limit=args.restart_timeout)
            r = await restart(
                kafka,
                worker,
                kind,
                tag=tag,
                index=index,
                limit=args.restart_timeout,
                changelog=changelog,
                clones=args.clone_from,
            )
            restarts.append(r)
            say(f"restart {kind}: stopped in {r.stop_seconds:.1f} s"
                + (f" ({r.stop_note})" if r.stop_note else "")
                + f"; readyz 200 after {fmt_s(r.to_ready)}, marker processed after"
                f" {fmt_s(r.to_marker)} (customer {r.customer})"
                + ("; its book was EMPTY (state lost)" if r.state_only else "")
                + f"; peak RSS {r.peak_rss:,.0f} MiB; data dir {r.data_mib:,.0f} MiB"
                + recovery_rate(r))  # fmt: skip
        final_hwm = proc_status(worker.pid).get("VmHWM", 0.0)
        worker.stop()

        # -- summary
        say("")
        say("== bench-state summary " + "=" * 53)
        say(f"host                           {os.cpu_count()} CPUs; load average {load_at_start}"
            f" at the start, {load()} now (other work on the host skews every figure)")  # fmt: skip
        say(f"customers in state             {args.customers:,} (N = {n:,} input records)")
        say(f"producer                       {sent / seconds:,.0f} records/s")
        say(f"worker consume                 {loaded.rate:,.0f} records/s over"
            f" {loaded.seconds:,.0f} s")  # fmt: skip
        peak = max(loaded.peak_hwm, loaded.peak_rss)
        met = verdict(ok=peak < TARGET_RSS_MIB)
        say(f"worker peak RSS (loading)      {peak:,.0f} MiB"
            f"  (target < {TARGET_RSS_MIB:,.0f} MiB: {met})")  # fmt: skip
        say(f"dead letters (loading)         {loaded.dead_letters:,} (each a record the worker"
            " could not process; see the .dlq topics)")  # fmt: skip
        say(f"data dir / changelog           {loaded.data_mib:,.0f} MiB RocksDB;"
            f" {loaded.changelog_records:,} changelog records, {cl_mib}")  # fmt: skip
        for r in restarts:
            back = r.back
            ok = back is not None and back < TARGET_BACK_S
            say(f"restart {r.kind:<8}               back to processing {fmt_s(back)}"
                f" (ready {fmt_s(r.to_ready)}, marker {fmt_s(r.to_marker)});"
                f" target < {TARGET_BACK_S:.0f} s: {verdict(ok=ok)};"
                f" peak RSS {r.peak_rss:,.0f} MiB{recovery_rate(r)}")  # fmt: skip
        if final_hwm:
            say(f"last worker VmHWM              {final_hwm:,.0f} MiB")
        return 0
    finally:
        worker.stop()
        await kafka.close([f"bench-{tag}-"])
        if profiles:
            say(f"worker profiles (cProfile, one per process) in {profiles}")
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def recovery_rate(r: RestartResult) -> str:
    """Changelog records read per second back and per CPU second of the new process: the
    CPU figure holds still while other work shares the host, the wall figure does not."""
    if not r.recovered or r.back is None:
        return ""
    per_cpu = f", {r.recovered / r.cpu:,.0f}/CPU s" if r.cpu else ""
    return f"; recovery {r.recovered:,} records, {r.recovered / r.back:,.0f}/s{per_cpu}"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def kinds(text: str) -> list[str]:
    """--restarts: comma-separated kinds, run in the order given."""
    names = [k.strip() for k in text.split(",") if k.strip()]
    unknown = sorted(set(names) - set(KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown restart kinds: {', '.join(unknown)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_state.py",
        description="N customers in the collections worker's state: peak RSS against 2 GB, and "
        "the time a restarted worker needs to process again, against 60 s.",
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--restarts",
        type=kinds,
        default=list(KINDS),
        help="comma-separated, in order: sigterm, sigkill, fresh (default: all three)",
    )
    parser.add_argument(
        "--clone-from",
        type=int,
        default=0,
        metavar="K",
        help="load only K customers through the worker, then write the other books to the "
        "changelog as renamed copies of theirs: N books to recover in minutes (with "
        "--restarts fresh); 0 (default) loads all N through the worker",
    )
    parser.add_argument(
        "--clone-writes",
        type=int,
        default=2,
        metavar="W",
        help="times each cloned book is written (default 2: the load writes a book once per "
        "input record); compaction may drop all but the last",
    )
    parser.add_argument(
        "--changelog-defaults",
        action="store_true",
        help="create the changelog first with Kafka's default segment configs (compacted, 1 GiB"
        " segments, 7 days), as one created before the worker set its own: a before/after",
    )
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds for the load")
    parser.add_argument("--restart-timeout", type=float, default=900.0, help="seconds each")
    parser.add_argument("--keep", action="store_true", help="keep the worker's data and logs")
    args = parser.parse_args(argv)
    if not 0 <= args.clone_from < args.customers:
        parser.error("--clone-from must be at least 0 and below --customers")
    return run_bench("bench-state", run, args)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
