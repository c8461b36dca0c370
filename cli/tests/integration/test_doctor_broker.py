"""`billstate doctor` on a real broker against the five services as processes: healthy, a
clock gone quiet, and collections stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from billstate_cli.commands.doctor import CUSTOMER
from billstate_cli.drive import Driver, start_at_end, tick_event
from billstate_cli.local import CONSOLE, SERVICES, Fleet
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.topics import INVOICES, NOTICE_REQUESTS, PAYMENTS

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[3]
BILLSTATE = Path(sys.executable).parent / "billstate"
POLICY = ROOT / "policies" / "standard.yaml"


class Install:
    """The services under fresh consumer groups of this module, and the doctor's flags."""

    def __init__(self, bootstrap: str, root: Path) -> None:
        self.bootstrap = bootstrap
        suffix = uuid.uuid4().hex[:8]
        self.groups = {s: f"{s}-doctor-{suffix}" for s in (*SERVICES, CONSOLE)}
        env = {
            "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_COLLECTIONS_COMMIT_INTERVAL": "0.1",
            # The payments topic of a test broker is mostly quiet: no stale-feed parking.
            "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_MAX_AGE": "0",
        }
        for service, group in self.groups.items():
            env[f"BILLSTATE_{service.replace('-', '_').upper()}_CONSUMER_GROUP"] = group
        self.fleet = Fleet(root, bootstrap, POLICY, extra_env=env)

    def doctor(self, *flags: str) -> tuple[int, list[str]]:
        given = [f"--group={s}={g}" for s, g in self.groups.items()]
        done = subprocess.run(
            [str(BILLSTATE), "doctor", "--bootstrap", self.bootstrap, *given, *flags],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        return done.returncode, done.stdout.splitlines()

    async def console_group(self, timeout: float = 60.0) -> str:  # noqa: ASYNC109  (polling)
        """The console's group: its configured name and its store's generation."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                found = [
                    g[0]
                    for g in await admin.list_consumer_groups()
                    if g[0].startswith(self.groups[CONSOLE] + "-")
                ]
                if found:
                    return str(found[0])
                assert time.monotonic() < deadline, "the console's group never appeared"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def start(self) -> None:
        await ensure_catalog(self.bootstrap)
        await start_at_end(self.bootstrap, {s: self.groups[s] for s in SERVICES})
        self.fleet.start((*SERVICES, CONSOLE))
        await asyncio.to_thread(self.fleet.wait_ready)
        # The console reads every topic from the start: wait until it caught up, and tick.
        groups = {s: self.groups[s] for s in SERVICES} | {CONSOLE: await self.console_group()}
        async with Driver(self.bootstrap, groups) as driver:
            await driver.send(tick_event(datetime.now(UTC)))
            await driver.settle()

    def stop(self, name: str, timeout: float = 60.0) -> None:
        """SIGTERM one service: it leaves its group, as a scaled-down workload does."""
        service = self.fleet.get(name)
        assert service.process is not None
        os.killpg(service.process.pid, signal.SIGTERM)
        service.process.wait(timeout)
        self.fleet.services.remove(service)


@pytest.fixture(scope="module")
def install(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    run = Install(kafka_bootstrap, tmp_path_factory.mktemp("doctor"))
    try:
        asyncio.run(run.start())
        yield run
    finally:
        run.fleet.stop()


async def _written(bootstrap: str, start: dict[TopicPartition, int]) -> list[ConsumerRecord]:
    """Every record after `start` up to where the partitions end now."""
    ends: dict[TopicPartition, int] = {}
    for topic in {tp.topic for tp in start}:
        ends |= await end_offsets(bootstrap, topic)
    count = sum(ends[tp] - offset for tp, offset in start.items())
    return await read_after(bootstrap, start, lambda records: len(records) >= count)


def test_a_healthy_install_is_all_ok(install: Install) -> None:
    watched = (PAYMENTS.name, NOTICE_REQUESTS.name, INVOICES.name)
    start = {
        tp: o for t in watched for tp, o in asyncio.run(end_offsets(install.bootstrap, t)).items()
    }
    # A customer of this module: its first run writes the records, the second repeats them.
    customer = f"{CUSTOMER}-{install.groups['invoicing'][-8:]}"
    code, lines = install.doctor("--customer", customer, "--timeout", "90")
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "OK    topics",
        *(f"OK    group {s}" for s in (*SERVICES, CONSOLE)),
        "OK    clock",
        "OK    round-trip",
    ]
    # Again the same day: the same records, duplicates, and the same verdict.
    code, lines = install.doctor("--customer", customer, "--timeout", "90")
    assert code == 0, lines
    written = asyncio.run(_written(install.bootstrap, start))
    ours = [r for r in written if r.key == customer.encode()]
    # An invoice and its void, twice; no payment (access-control's stale-feed guard reads
    # the payments topic), and nobody is sent a notice.
    assert [r.topic for r in ours] == [INVOICES.name] * 4
    assert not [r for r in written if r.topic == PAYMENTS.name]
    assert not [r for r in written if r.topic == NOTICE_REQUESTS.name and r.key == ours[0].key]


def test_a_clock_gone_quiet_fails_its_line(install: Install) -> None:
    code, lines = install.doctor("--no-round-trip", "--max-clock-age", "1s")
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1, lines
    assert failed[0].startswith("FAIL  clock: the clock has not ticked since ")
    assert "is the clock workload running?" in failed[0]


def test_collections_stopped_names_its_group_and_the_round_trip(install: Install) -> None:
    install.stop("collections")
    group = install.groups["collections"]
    code, lines = install.doctor("--customer", f"{CUSTOMER}-down", "--timeout", "10")
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 2, lines
    assert failed[0] == (
        f"FAIL  group collections: consumer group {group} has no members: is the collections"
        " workload running? (kubectl get pods -l app.kubernetes.io/name=collections)"
    )
    assert failed[1].startswith(f"FAIL  round-trip: collections (group {group}) did not read")
    assert "within 10s (timed out)" in failed[1]
