"""What the Kafka benchmarks share: the broker, bookkeeping clients, a producer loop, the
collections worker as a process, and /proc readings (bench_pipeline.py, bench_state.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from billstate_cli.local import Fleet, Service
from billstate_collections.entrypoints.worker import INPUTS
from billstate_devkit import localkafka
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CUSTOMER_PARTITIONS

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "standard.yaml"
INPUT_TOPICS = tuple(t.name for t in INPUTS)
DLQ_TOPICS = tuple(t.dlq for t in INPUTS)

Record = tuple[str, bytes, bytes]  # topic, key, value
Offsets = dict[TopicPartition, int]


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def load() -> str:
    """The host's load average, for the figures' context."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def tps(topics: Iterable[str], partitions: int = CUSTOMER_PARTITIONS) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics for p in range(partitions)]


def count(starts: Offsets, ends: Offsets) -> int:
    return sum(ends[tp] - starts[tp] for tp in ends)


# ---- the broker and the bench's bookkeeping ----------------------------------------------


class Broker:
    """KAFKA_BOOTSTRAP_SERVERS, or the local broker (stopped at the end if started here)."""

    def __init__(self) -> None:
        self.layout: localkafka.Layout | None = None
        self.started = False

    def __enter__(self) -> str:
        given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if given:
            say(f"broker: {given} (KAFKA_BOOTSTRAP_SERVERS)")
            return given
        self.layout = localkafka.Layout.from_env()
        running = localkafka.status(self.layout)["state"] == "running"
        bootstrap = localkafka.up(self.layout)
        self.started = not running
        say(f"broker: local Kafka at {bootstrap}" + (" (started here)" if self.started else ""))
        return bootstrap

    def __exit__(self, *exc: object) -> None:
        if self.started and self.layout is not None:
            localkafka.down(self.layout)
            say("broker: stopped")


def run_bench(
    name: str,
    run: Callable[[argparse.Namespace, str], Coroutine[Any, Any, int]],
    args: argparse.Namespace,
) -> int:
    """`run(args, bootstrap)` against the broker, then how long the whole bench took."""
    began = time.monotonic()
    with Broker() as bootstrap:
        status = asyncio.run(run(args, bootstrap))
    say(f"{name} took {time.monotonic() - began:.0f} s")
    return status


async def apply_catalog(bootstrap: str) -> None:
    """Create the catalog's topics that are missing, and say what was found."""
    applied = await apply_topics(bootstrap)
    say(f"topics: {len(applied.created)} created, {len(applied.unchanged)} unchanged"
        + (f", {len(applied.drift)} drifted" if applied.drift else ""))  # fmt: skip


class Kafka:
    """One admin client and one offsets consumer for the bench's bookkeeping."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.admin.start()
        await self.offsets.start()

    async def stop(self) -> None:
        await self.offsets.stop()
        await self.admin.close()

    async def close(self, prefixes: Iterable[str]) -> None:
        """Delete the bench's own topics (names starting with `prefixes`), then stop."""
        try:
            dropped = await self.delete_topics(prefixes)
            say(f"cleanup: deleted {len(dropped)} bench topics")
        finally:
            await self.stop()

    async def ends(self, topics: Iterable[str]) -> Offsets:
        found: Offsets = await self.offsets.end_offsets(tps(topics))
        return found

    async def committed(self, group: str, parts: Iterable[TopicPartition]) -> Offsets:
        answer = await self.admin.list_consumer_group_offsets(group)
        return {tp: answer[tp].offset if tp in answer else 0 for tp in parts}

    async def lag(self, group: str, ends: Offsets) -> int:
        """Records up to `ends` the group has not committed yet."""
        done = await self.committed(group, ends)
        return sum(max(ends[tp] - done[tp], 0) for tp in ends)

    async def commit_at(self, group: str, offsets: Offsets) -> None:
        """Give a fresh group its starting offsets (as `start_at_end` does, at any offset)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(offsets))
            await consumer.commit(dict(offsets))
        finally:
            await consumer.stop()

    async def settle(self, group: str, limit: float = 300.0) -> float:
        """Wait until the group committed the current end of the collections inputs."""
        began = time.monotonic()
        ends = await self.ends(INPUT_TOPICS)
        while True:
            behind = await self.lag(group, ends)
            if behind == 0:
                return time.monotonic() - began
            if time.monotonic() - began > limit:
                raise TimeoutError(f"group {group} still {behind} records behind")
            await asyncio.sleep(0.05)

    async def create_topic(self, name: str, partitions: int) -> None:
        await self.admin.create_topics([NewTopic(name, partitions, 1)])

    async def delete_topics(self, prefixes: Iterable[str]) -> list[str]:
        prefixes = tuple(prefixes)
        doomed = [t for t in await self.admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await self.admin.delete_topics(doomed)
        return doomed


async def produce(
    bootstrap: str,
    records: Iterable[Record],
    *,
    linger_ms: int = 5,
    batch_bytes: int | None = None,
    flush_every: int = 5000,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[int, float]:
    """Write records in order (idempotent, acks=all); return (records, seconds).

    The sends are awaited every `flush_every` records; `progress(sent, seconds)` is called then.
    """
    sizes = {} if batch_bytes is None else {"max_batch_size": batch_bytes}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        **sizes,
    )
    await producer.start()
    began = time.perf_counter()
    sent = 0
    try:
        pending = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= flush_every:
                await asyncio.gather(*pending)
                pending.clear()
                if progress is not None:
                    progress(sent, time.perf_counter() - began)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, time.perf_counter() - began


# ---- the collections worker as a process -------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmHWM and VmRSS of a process in MiB (Linux), empty elsewhere."""
    found: dict[str, float] = {}
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    found[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_mib(path: Path) -> float:
    """Bytes on disk under `path` (allocated blocks, as du counts them), in MiB."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # RocksDB deletes files while we walk
                total += (Path(folder) / name).lstat().st_blocks * 512
    return total / 2**20


@dataclass
class Worker:
    """One collections process (`billstate_cli.local.Fleet`, as `billstate` runs it): its own
    consumer group, a data dir and log under `root`, and a log level. Started and stopped
    any number of times; `root` may change in between (a fresh data dir)."""

    root: Path
    bootstrap: str
    group: str
    level: str = "WARNING"
    fleet: Fleet | None = None
    stop_note: str = ""

    @property
    def service(self) -> Service:
        assert self.fleet is not None
        return self.fleet.get("collections")

    @property
    def process(self) -> subprocess.Popen[bytes]:
        process = self.service.process
        assert process is not None
        return process

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        env = {
            "BILLSTATE_COLLECTIONS_CONSUMER_GROUP": self.group,
            "BILLSTATE_COLLECTIONS_LOG_LEVEL": self.level,
        }
        profile = os.environ.get("BENCH_PROFILE_DIR")
        if profile:
            # bench/profile_hook/sitecustomize.py profiles the worker until it exits.
            env["PYTHONPATH"] = str(ROOT / "bench" / "profile_hook")
            env["BILLSTATE_BENCH_PROFILE"] = str(Path(profile) / f"{self.group}.prof")
        self.fleet = Fleet(self.root, self.bootstrap, POLICY, extra_env=env)
        self.fleet.start(("collections",))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.service.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"collections exited; {self.service.log}:\n{tail}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = 60.0) -> float:
        """Send `sig` to the worker's process group; return the seconds until it exited.

        Our own wait (not Fleet.stop's 30 s) so a slow SIGTERM shutdown is seen, not hidden
        behind a SIGKILL; past `grace` it is killed all the same, and `stop_note` says so."""
        if self.fleet is None:
            return 0.0
        process = self.process
        began = time.monotonic()
        self.stop_note = ""
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.stop_note = f"did not exit within {grace:.0f} s of {sig.name}; SIGKILLed"
        self.fleet.services.clear()
        self.fleet = None
        return time.monotonic() - began
