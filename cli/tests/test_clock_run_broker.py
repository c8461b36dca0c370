"""`billstate clock run` on a real broker: a tick on every partition per interval, until
stopped with Ctrl-C (SIGINT), which ends it cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition

from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import decode
from billstate_shared.topics import CLOCK

pytestmark = pytest.mark.broker

BILLSTATE = Path(sys.executable).parent / "billstate"


async def test_run_ticks_every_partition_each_interval_until_interrupted(
    kafka_bootstrap: str,
) -> None:
    await ensure_catalog(kafka_bootstrap)
    start = await end_offsets(kafka_bootstrap, CLOCK.name)
    proc = await asyncio.create_subprocess_exec(
        BILLSTATE,
        *["clock", "run", "--every", "1s", "--bootstrap", kafka_bootstrap],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        said = [(await proc.stdout.readline()).decode() for _ in range(2)]
        records = await read_after(
            kafka_bootstrap, start, lambda found: len(found) >= 2 * CLOCK.partitions, timeout=60
        )
    finally:
        proc.send_signal(signal.SIGINT)
        out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=60)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, err
    assert "clock stopped" in err
    assert "Traceback" not in err

    # Each line it printed is a tick it sent, to every partition.
    sent = [datetime.fromisoformat(line.split()[1]) for line in said]
    assert all(line.startswith("tick ") for line in said)
    first_two = [r for r in records if decode(r.value).occurred_at in sent]
    assert len(first_two) == 2 * CLOCK.partitions
    for at in sent:
        partitions = {
            TopicPartition(r.topic, r.partition)
            for r in first_two
            if decode(r.value).occurred_at == at
        }
        assert partitions == set(start)
    # One interval apart, give or take the time a send takes.
    gap = (sent[1] - sent[0]).total_seconds()
    assert 1.0 <= gap < 10.0
    assert all(line.startswith("tick ") for line in out.splitlines())
