"""How fast the console's store ingests a rebuild of a simulated history, in events/s.

`billstate simulate`, then what the running system would publish of it: replay's decisions
(stage changes, notices), a `collections.state` record after every change of a customer's
book (as the collections worker publishes it), and the actuators' answers. Applied through
`Store.apply`, one transaction per event, to a fresh SQLite file, topic by topic as a
rebuild reads them. Run: `uv run python services/console/tests/ingest_rate.py --customers
300 --days 180`.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from billstate_cli.replay import Replay
from billstate_collections.domain.book_state import dump_book
from billstate_collections.domain.engine import step
from billstate_collections.domain.snapshot import state_record
from billstate_console.store import Store
from billstate_invoicing.domain.aging import record
from billstate_shared.contracts import (
    AccessSuspend,
    AccessSuspended,
    AccessSuspendedData,
    ClockTick,
    Event,
    NoticeDelivered,
    NoticeDeliveredData,
    NoticeRequested,
    decode,
)
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "policies/standard.yaml"
BIN = Path(sys.executable).parent / "billstate"
OBSERVED = {"collections.stage_entered", "notice.requested"}


def simulate(customers: int, days: int, seed: int, out: Path) -> list[Event]:
    subprocess.run(  # noqa: S603  (our own command, fixed argv)
        [str(BIN), "simulate", "--customers", str(customers), "--days", str(days),
         "--seed", str(seed), "--out", str(out)],
        check=True,
    )  # fmt: skip
    return [decode(line) for line in out.read_text().splitlines() if line.strip()]


def published(inputs: list[Event]) -> list[Event]:
    """What the console would read: the inputs, replay's decisions, a state record after
    every change of a book, each suspension applied and each notice delivered."""
    policy = load_policy(POLICY)
    replay = Replay(policy)
    out: list[Event] = [e for e in inputs if e.customer_id != "*"]

    def run(book_id: str, event: object) -> None:
        book = replay.book(book_id)
        before = dump_book(book, policy)
        decided = step(book, event, policy)  # type: ignore[arg-type]
        out.extend(
            d.model() if hasattr(d, "model") else d  # type: ignore[misc]
            for d in decided
            if d.event_type in OBSERVED or d.event_type == "access.suspend"
        )
        if dump_book(book, policy) != before:
            at = event.occurred_at  # type: ignore[attr-defined]
            out.append(state_record(book, policy, at).model())

    for event in inputs:
        if isinstance(event, ClockTick):
            for aged in replay.aging.tick(event.occurred_at, replay.registers.get):
                run(aged.customer_id, aged)
            continue
        run(event.customer_id, event)
        record(replay.aging, replay.registers[event.customer_id], event)
    answers: list[Event] = []
    for e in out:
        later = e.occurred_at + timedelta(minutes=1)
        if isinstance(e, AccessSuspend):
            answers += [
                AccessSuspended(
                    event_id=f"applied-{e.event_id}-{sub}", event_type="access.suspended",
                    occurred_at=later, customer_id=e.customer_id,
                    data=AccessSuspendedData(
                        command_id=e.data.command_id, subscription_id=sub, provider="builtin"
                    ),
                )
                for sub in e.data.subscription_ids
            ]  # fmt: skip
        if isinstance(e, NoticeRequested):
            answers.append(
                NoticeDelivered(
                    event_id=f"delivered-{e.data.notice_id}", event_type="notice.delivered",
                    occurred_at=later, customer_id=e.customer_id,
                    data=NoticeDeliveredData(
                        notice_id=e.data.notice_id, channel="outbox", attempts=1
                    ),
                )
            )  # fmt: skip
    return [e for e in out if e.event_type != "access.suspend"] + answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    parser.add_argument(
        "--synchronous", choices=("FULL", "NORMAL", "OFF"), help="override SQLite's setting"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        events = published(simulate(args.customers, args.days, args.seed, Path(tmp) / "s.jsonl"))
        # A rebuild reads topic by topic; in a topic, in time order.
        events.sort(key=lambda e: (e.event_type.split(".")[0], e.occurred_at))
        counts = Counter(e.event_type for e in events)
        store = Store(f"sqlite:///{tmp}/console.sqlite3")
        if args.synchronous:
            store.db.execute(f"PRAGMA synchronous={args.synchronous}")
        profile = cProfile.Profile() if args.profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        for event in events:
            store.apply(event)
        if profile is not None:
            profile.disable()
        took, used = time.perf_counter() - started, time.process_time() - cpu
        store.close()
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    # The CPU time is this process's own: the figure to compare on a busy host.
    print(
        f"{len(events)} events in {took:.1f} s ({len(events) / took:,.0f} events/s),"
        f" {used:.1f} s of CPU ({len(events) / used:,.0f} events/s of CPU)"
    )
    print(", ".join(f"{t} {n}" for t, n in counts.most_common()))


if __name__ == "__main__":
    main()
