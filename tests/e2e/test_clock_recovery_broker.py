"""The runbook for a clock tick from the future, on a real broker with the four services.

A tick dated 2099 gets through (invoicing runs with its guard's skew set huge): customers with
an open invoice climb a stage with a suspension date in 2099, some are suspended early, and
the real ticks after it change nothing. Then the runbook: stop invoicing and collections,
`billstate recover rebuild`, start them again with empty data directories and the guard on.
Afterwards the books, the decisions and the applied access equal `billstate replay` of the
history without the bad tick, and a second bad tick is dead-lettered by the guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.commands.recover import members
from billstate_cli.commands.send import Kafka
from billstate_cli.drive import tick_event
from billstate_cli.local import Fleet
from billstate_cli.main import main
from billstate_cli.simulation import history
from billstate_devkit.kafka import end_offsets, read_after
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import CLOCK

from .conftest import POLICY, Pipeline, final_states, replayed

pytestmark = pytest.mark.broker

DECIDED = ("collections.stage_entered", "access.suspend", "access.restore", "notice.requested")
HUGE_SKEW = str(200 * 365 * 24 * 3600)  # seconds: a guard that lets anything through
BAD_AT = datetime(2099, 1, 1, tzinfo=UTC)
PIPELINE = ("invoicing", "collections")


def renamed(events: Iterable[dict[str, Any]], suffix: str) -> Iterator[dict[str, Any]]:
    for event in events:
        if event["customer_id"] != "*":
            event["customer_id"] += suffix
            event["event_id"] += suffix
        yield event


def split_after_ticks(events: list[dict[str, Any]], *counts: int) -> list[list[dict[str, Any]]]:
    """The history cut after the n-th tick, for each n in `counts`."""
    ticks = [i for i, e in enumerate(events) if e["event_type"] == "clock.tick"]
    cuts = [0, *(ticks[n - 1] + 1 for n in counts), len(events)]
    return [events[a:b] for a, b in itertools.pairwise(cuts)]


def decision_ids(events: Iterable[dict[str, Any]]) -> set[str]:
    return {e["event_id"] for e in events if e["event_type"] in DECIDED}


def stop(fleet: Fleet, names: tuple[str, ...]) -> None:
    """SIGTERM some services (a clean stop: they commit and leave their groups) and wait."""
    for name in names:
        service = fleet.get(name)
        assert service.process is not None
        os.killpg(service.process.pid, signal.SIGTERM)
        service.process.wait(60)
        fleet.services.remove(service)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


async def see_the_poison(
    pipeline: Pipeline, history_so_far: list[dict[str, Any]]
) -> tuple[set[str], list[dict[str, Any]]]:
    """What the operator sees: 2099 dates, early suspensions, and nothing moving since. The
    false decisions' ids, and the false suspensions."""
    seen = await pipeline.outcome()
    states = seen.latest_states()
    in_2099 = [c for c, s in states.items() if (s["as_of"] or "").startswith("2099")]
    assert len(in_2099) >= 3, states
    wrong = decision_ids(seen.decisions()) - decision_ids(replayed(history_so_far))
    notices = [
        e
        for e in seen.topics["notifications.requests.v1"]
        if e["event_id"] in wrong and (e["data"]["facts"].get("suspension_on") or "") > "2098"
    ]
    assert notices, "final notices announcing a suspension in 2099"
    early = [
        e
        for e in seen.topics["access.commands.v1"]
        if e["event_id"] in wrong and e["event_type"] == "access.suspend"
    ]
    assert early, "suspensions decided from the 2099 tick"
    return wrong, early


def rebuild_argv(pipeline: Pipeline, since: datetime) -> list[str]:
    """`billstate recover rebuild` for this run's groups and history (a dry run)."""
    return [
        "recover", "rebuild", "--policy", str(POLICY), "--since", since.isoformat(),
        "--bootstrap", pipeline.bootstrap,
        *(f"--group={service}={group}" for service, group in pipeline.pipeline_groups().items()),
    ]  # fmt: skip


async def follow_the_runbook(pipeline: Pipeline, since: datetime, tmp_path: Path) -> None:
    """Stop invoicing and collections, rebuild (refused while they run), start them again
    with empty data directories and the guard on."""
    groups = pipeline.pipeline_groups()
    argv = rebuild_argv(pipeline, since)
    code, out, err = await asyncio.to_thread(run_cli, [*argv, "--yes"])
    assert code == 1, (out, err)
    assert "has active members" in err

    stop(pipeline.fleet, PIPELINE)
    kafka, deadline = Kafka(pipeline.bootstrap), time.monotonic() + 90
    while any((await members(kafka, list(groups.values()))).values()):
        assert time.monotonic() < deadline, "the stopped workers never left their groups"
        await asyncio.sleep(0.2)  # polling the condition above

    code, out, err = await asyncio.to_thread(run_cli, argv)  # the dry run
    assert code == 0, err
    assert "ticks refused (more than 10 minutes ahead of their record's time): 1" in out
    assert "dry run: nothing written" in out
    assert "restore commands for subscriptions a refused tick suspended: 0" not in out

    code, out, err = await asyncio.to_thread(run_cli, [*argv, "--yes"])
    assert code == 0, (out, err)
    assert "rebuilt:" in out

    for name in PIPELINE:
        shutil.rmtree(tmp_path / name)
    pipeline.fleet.extra_env["BILLSTATE_INVOICING_CLOCK_SKEW"] = "600"
    await pipeline.restart(PIPELINE)


async def drive_with_a_second_bad_tick(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    """Business goes on; a second bad tick is dead-lettered by the guard."""
    dlq_start = await end_offsets(pipeline.bootstrap, CLOCK.dlq)
    await pipeline.drive(events[: len(events) // 2])
    await pipeline.drive([tick_event(BAD_AT + timedelta(days=1))])
    await pipeline.drive(events[len(events) // 2 :])
    await pipeline.settle()
    letters = await read_after(
        pipeline.bootstrap, dlq_start, lambda found: len(found) >= CLOCK.partitions, timeout=60
    )
    for letter in letters:
        headers = read_headers(letter.headers)
        assert headers["service"] == "invoicing"
        assert headers["field"] == "occurred_at"
        assert headers["reason"].startswith("clock tick 2099-01-02T00:00:00Z is ")
        assert "days ahead of its record's time" in headers["reason"]


async def test_the_runbook_brings_the_books_back_to_the_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    suffix = f"-rc{uuid.uuid4().hex[:6]}"
    events = list(renamed(history(24, 80, seed=5), suffix))
    before, poisoned, after = split_after_ticks(events, 66, 72)
    since = datetime.now(UTC) - timedelta(seconds=1)
    pipeline = Pipeline(
        kafka_bootstrap, tmp_path, extra={"BILLSTATE_INVOICING_CLOCK_SKEW": HUGE_SKEW}
    )
    try:
        await pipeline.start()
        await pipeline.drive(before)
        await pipeline.drive([tick_event(BAD_AT)])
        await pipeline.drive(poisoned)
        await pipeline.settle()
        wrong, early = await see_the_poison(pipeline, before + poisoned)

        await follow_the_runbook(pipeline, since, tmp_path)
        await drive_with_a_second_bad_tick(pipeline, after)

        # The books and the decisions are the replay's of the history without the bad ticks.
        good = before + poisoned + after
        outcome = await pipeline.outcome()
        theirs = final_states(good)
        assert {c: s for c, s in outcome.latest_states().items() if c in theirs} == theirs
        decided = decision_ids(outcome.decisions())
        should = decision_ids(replayed(good))
        assert should <= decided
        restores = {
            e["event_id"]
            for e in outcome.topics["access.commands.v1"]
            if e["data"]["reason"].startswith("Recovery:")
        }
        assert restores, f"the recovery restored what the bad tick suspended: {early}"
        assert decided - should <= wrong | restores, "no false decision after the recovery"
        # What the provider was last told per subscription (access.events.v1, in order per
        # customer) is what the rebuilt books hold suspended.
        applied: dict[str, dict[str, str]] = {}
        for e in outcome.topics["access.events.v1"]:
            if e["event_type"] in ("access.suspended", "access.restored"):
                applied.setdefault(e["customer_id"], {})[e["data"]["subscription_id"]] = e[
                    "event_type"
                ]
        # The rebuild's dry run, again: nothing left to send or restore.
        code, out, err = await asyncio.to_thread(run_cli, rebuild_argv(pipeline, since))
        assert code == 0, err
        assert "decisions to send (the replay makes them, the topics lack them): 0" in out
        assert "restore commands for subscriptions a refused tick suspended: 0" in out
        for customer, state in theirs.items():
            held = {
                s for s, last in applied.get(customer, {}).items() if last == "access.suspended"
            }
            assert held == set(state["suspended_subscription_ids"]), customer
    finally:
        pipeline.fleet.stop()
