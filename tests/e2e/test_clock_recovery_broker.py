"""The runbook for a clock tick from the future, on a real broker with the four services.

A tick dated 2099 gets through (invoicing runs with its guard's skew set huge): customers with
an open invoice climb a stage with a suspension date in 2099, some are suspended early, and
the real ticks after it change nothing. Then the runbook: stop invoicing and collections,
`billstate recover rebuild`, start them again with empty data directories and the guard on.
Afterwards the books, the decisions and the applied access equal `billstate replay` of the
history without the bad tick, and a second bad tick is dead-lettered by the guard.

One customer makes more decisions in the frozen days than the replay does (the bad tick
suspends all three subscriptions, two payments bring two back), so its rebuilt book has made
fewer decisions than access-control has seen sequences for: the recovery numbers the commands
on above those, and access-control applies the suspension the recovery sends and the restore
after the last payment instead of refusing them as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import itertools
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterable
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
from billstate_cli.summary import RunRecords, ends_now, read_all
from billstate_devkit.kafka import end_offsets, read_after
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import ACCESS_COMMANDS, CLOCK

from .conftest import POLICY, Pipeline, final_states, renamed, replayed

pytestmark = pytest.mark.broker

DECIDED = ("collections.stage_entered", "access.suspend", "access.restore", "notice.requested")
HUGE_SKEW = str(200 * 365 * 24 * 3600)  # seconds: a guard that lets anything through
BAD_AT = datetime(2099, 1, 1, tzinfo=UTC)
PIPELINE = ("invoicing", "collections")


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def paying_through_the_freeze(customer: str) -> list[dict[str, Any]]:
    """Three subscriptions, each billed by its own invoice due 2026-02-18: final_notice from
    2026-03-04. The 2099 tick (after 03-07) suspends all three (sequence 3); paying A on 03-09
    and B on 03-10 brings them back (4 and 5). Without the bad tick, the payments change no
    stage and C is suspended on 03-11 (the replay's sequence 3); paying C on 03-15, after the
    recovery, restores it (the replay's 4). Both are below the 5 access-control has seen."""
    subs = {x: f"SUB-{customer}-{x}" for x in "ABC"}
    events: list[dict[str, Any]] = [
        {"event_id": f"{customer}-upserted", "event_type": "customer.upserted",
         "schema_version": 1, "occurred_at": "2026-01-01T00:05:00+08:00",
         "customer_id": customer,
         "data": {"name": "Sequence Ltd", "locale": "en",
                  "billing_email": "ap@sequence.example",
                  "partner_contact_email": "am@partner.example", "tags": [],
                  "subscription_ids": list(subs.values())}},
    ]  # fmt: skip
    for x, sub in subs.items():
        events.append(
            {"event_id": f"INV-{customer}-{x}-issued", "event_type": "invoice.issued",
             "schema_version": 1, "occurred_at": "2026-01-19T10:00:00+08:00",
             "customer_id": customer,
             "data": {"invoice_id": f"INV-{customer}-{x}", "currency": "USD", "amount": "100.00",
                      "issued_on": "2026-01-19", "due_on": "2026-02-18",
                      "subscription_ids": [sub]}}
        )  # fmt: skip
    for x, day in (("A", 9), ("B", 10), ("C", 15)):
        events.append(
            {"event_id": f"PAY-{customer}-{x}-received", "event_type": "payment.received",
             "schema_version": 1, "occurred_at": f"2026-03-{day:02d}T12:00:00+08:00",
             "customer_id": customer,
             "data": {"payment_id": f"PAY-{customer}-{x}", "currency": "USD",
                      "amount": "100.00", "invoice_id": f"INV-{customer}-{x}"}}
        )  # fmt: skip
    return events


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


async def follow_the_runbook(pipeline: Pipeline, since: datetime, tmp_path: Path) -> str:
    """Stop invoicing and collections, rebuild (refused while they run), start them again
    with empty data directories and the guard on. What the dry run said."""
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

    code, dry, err = await asyncio.to_thread(run_cli, argv)  # the dry run
    assert code == 0, err
    assert "ticks refused (more than 10 minutes ahead of their record's time): 1" in dry
    assert "dry run: nothing written" in dry
    assert "restore commands for subscriptions a refused tick suspended: 0" not in dry

    code, out, err = await asyncio.to_thread(run_cli, [*argv, "--yes"])
    assert code == 0, (out, err)
    assert "rebuilt:" in out

    for name in PIPELINE:
        shutil.rmtree(tmp_path / name)
    pipeline.fleet.extra_env["BILLSTATE_INVOICING_CLOCK_SKEW"] = "600"
    await pipeline.restart(PIPELINE)
    return dry


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


async def assert_sequences_go_on(
    pipeline: Pipeline,
    outcome: RunRecords,
    good: list[dict[str, Any]],
    dead_letters: list[dict[str, Any]],
    payer: str,
) -> None:
    """Every command of the run newer than the one before it for its customer; each the
    replay's but for its sequence; none refused as stale; the payer's last restore applied."""
    suffix = payer.removeprefix("cust-seq")
    commands = {e["event_id"]: e for e in outcome.topics[ACCESS_COMMANDS.name]}  # first copy
    numbers: dict[str, list[int]] = {}
    for command in commands.values():
        if command["customer_id"].endswith(suffix):
            numbers.setdefault(command["customer_id"], []).append(command["data"]["sequence"])
    for customer, sequences in numbers.items():
        assert sequences == sorted(set(sequences)), (customer, sequences)
    theirs = [e for e in replayed(good) if e["event_type"] in ACCESS_COMMANDS.event_types]
    for command in theirs:
        ours = commands[command["event_id"]]
        assert ours["data"].pop("sequence") >= command["data"].pop("sequence")
        assert ours == command, "only the sequence may differ from the replay's"
    assert [e for e in dead_letters if e["customer_id"].endswith(suffix)] == []

    payers = [c for c in theirs if c["customer_id"] == payer]
    assert [c["event_type"] for c in payers] == ["access.suspend", "access.restore"]
    assert numbers[payer][-2:] == [6, 7], numbers[payer]  # 3, 4, 5 from the frozen days
    restored = [
        e
        for e in outcome.topics["access.events.v1"]
        if e["event_type"] == "access.restored"
        and e["data"]["command_id"] == payers[-1]["data"]["command_id"]
    ]
    assert {e["data"]["subscription_id"] for e in restored} == {f"SUB-{payer}-C"}
    access = await asyncio.to_thread(pipeline.access, payer)
    assert access["sequence"] == 7, access


async def test_the_runbook_brings_the_books_back_to_the_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    suffix = f"-rc{uuid.uuid4().hex[:6]}"
    payer = f"cust-seq{suffix}"
    events = list(
        heapq.merge(
            renamed(history(24, 80, seed=5), suffix), paying_through_the_freeze(payer), key=at
        )
    )
    before, poisoned, after = split_after_ticks(events, 66, 72)
    since = datetime.now(UTC) - timedelta(seconds=1)
    pipeline = Pipeline(
        kafka_bootstrap, tmp_path, extra={"BILLSTATE_INVOICING_CLOCK_SKEW": HUGE_SKEW}
    )
    try:
        dlq_since = await ends_now(kafka_bootstrap, (ACCESS_COMMANDS.dlq,))
        await pipeline.start()
        await pipeline.drive(before)
        await pipeline.drive([tick_event(BAD_AT)])
        await pipeline.drive(poisoned)
        await pipeline.settle()
        wrong, early = await see_the_poison(pipeline, before + poisoned)

        dry = await follow_the_runbook(pipeline, since, tmp_path)
        assert f"  {payer}: highest out 5; the rebuilt book has made 3 decisions," in dry
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
        letters = await read_all(kafka_bootstrap, [ACCESS_COMMANDS.dlq], dlq_since)
        await assert_sequences_go_on(pipeline, outcome, good, letters[ACCESS_COMMANDS.dlq], payer)
    finally:
        pipeline.fleet.stop()
