"""`billstate demo`: the four services on a real broker, a simulated history, and what happened."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

from billstate_cli.drive import Driver, drive
from billstate_cli.local import SERVICES, Fleet
from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import Replay
from billstate_cli.simulation import DEFAULT_START, history
from billstate_cli.summary import RunRecords, summary
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.settings import ServiceSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="start the services locally, drive a simulated history through Kafka, summarise",
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--days", type=int, default=61)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--policy", type=Path, default=Path("policies/standard.yaml"))
    parser.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--workdir", type=Path, default=Path(".cache/run"))
    parser.add_argument(
        "--services",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        default=SERVICES,
        help="which services to start (default: all four)",
    )
    parser.set_defaults(func=_run)


def _say(text: str) -> None:
    print(text, flush=True)


def _run(args: argparse.Namespace) -> int:
    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    bootstrap = args.bootstrap or ServiceSettings().kafka_bootstrap_servers
    events = list(history(args.customers, args.days, args.seed, args.start, policy.timezone))
    fleet = Fleet(
        args.workdir,
        bootstrap,
        args.policy.resolve(),
        extra_env={
            "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_COLLECTIONS_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_NOTIFICATIONS_OUTBOX_DIR": str((args.workdir / "outbox").resolve()),
        },
    )
    # The services' state from an earlier run would not match a fresh broker.
    shutil.rmtree(args.workdir, ignore_errors=True)
    started = time.monotonic()
    try:
        _say(f"starting {', '.join(args.services)} (logs in {args.workdir}/)")
        fleet.start(args.services)
        fleet.wait_ready()
        _say(f"{len(args.services)} services ready after {time.monotonic() - started:.0f}s")

        def progress(driver: Driver, event: dict[str, Any]) -> None:
            if event["event_type"] == "clock.tick" and driver.ticks % 5 == 0:
                _say(f"  day {driver.ticks:>3}/{args.days} ({event['occurred_at'][:10]}):"
                     f" {driver.sent:,} billing events sent")  # fmt: skip

        _say(f"simulating {args.customers} customers over {args.days} days (seed {args.seed}) ...")
        pipeline = tuple(s for s in args.services if s in ("invoicing", "collections"))
        asyncio.run(drive(bootstrap, events, progress, pipeline))
        downstream = tuple(s for s in args.services if s in ("access-control", "notifications"))
        asyncio.run(_settle(bootstrap, downstream))
        _say(f"simulation done after {time.monotonic() - started:.0f}s; reading the topics ...")
        records = RunRecords.read(bootstrap)
        replay = Replay(policy)
        records.replayed = [
            {"event_type": o.event_type, "event_id": o.event_id, "customer_id": o.customer_id,
             "data": _data(o)}
            for e in events for o in replay.feed(decode_event(e))
        ]  # fmt: skip
    finally:
        fleet.stop()
        _say("services stopped")
    header = (
        f"billstate run: {args.customers} customers, {args.days} days from {args.start}"
        f" (seed {args.seed}), policy {policy.name} v{policy.version}, time zone {policy.timezone}"
    )
    _say("")
    _say(summary(records, header))
    _say(f"logs: {args.workdir}/*.log; delivered notices: {args.workdir}/outbox/")
    return 0


async def _settle(bootstrap: str, groups: tuple[str, ...]) -> None:
    async with Driver(bootstrap, groups=groups) as driver:
        await driver.settle()


def decode_event(event: dict[str, Any]) -> Any:
    import json

    return decode(json.dumps(event).encode())


def _data(output: Any) -> dict[str, Any]:
    import json

    raw = to_bytes(output)
    data: dict[str, Any] = json.loads(raw)["data"]
    return data
