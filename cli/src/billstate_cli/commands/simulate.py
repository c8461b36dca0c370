"""`billstate simulate`: a realistic, deterministic billing history as inbound events."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billstate_cli.drive import Driver, drive
from billstate_cli.simulation import DEFAULT_START, DEFAULT_TIMEZONE, history, write_jsonl


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "simulate",
        help="generate a realistic billing history (customers, invoices, payments, clock)",
        description="Writes the inbound events of a simulated CSP reseller: customers, monthly "
        "and annual invoices, payments on time, late, in parts or never (then written off), "
        "chargebacks, failed payments, credit notes, disputes, promises to pay, and one clock "
        "tick per day at 09:00 local time; in time order, one envelope per line, ready for "
        "`billstate replay`. The same arguments always give the same bytes.",
    )
    parser.add_argument("--customers", type=_positive, required=True, metavar="N")
    parser.add_argument("--days", type=_positive, required=True, metavar="D")
    parser.add_argument("--seed", type=int, required=True, metavar="S")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=DEFAULT_START,
        metavar="YYYY-MM-DD",
        help=f"the first simulated day (default {DEFAULT_START.isoformat()})",
    )
    parser.add_argument(
        "--timezone",
        type=_zone,
        default=DEFAULT_TIMEZONE,
        help="the business time zone of the ticks and dates; match the policy's "
        f"(default {DEFAULT_TIMEZONE})",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, metavar="FILE.jsonl", help="write a JSONL file")
    target.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="write to the inbound topics of this Kafka cluster, paced so the services have "
        "caught up before each tick (the run then equals `billstate replay` of the file)",
    )
    parser.set_defaults(func=_run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {text!r}: expected an IANA zone name such as Asia/Taipei"
        ) from None
    return text


def _run(args: argparse.Namespace) -> int:
    if args.bootstrap:
        return _to_kafka(args)
    try:
        events = history(args.customers, args.days, args.seed, args.start, args.timezone)
        count = write_jsonl(args.out, events)
    except OSError as err:
        print(f"cannot write {args.out}: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {count:,} events ({args.customers:,} customers, {args.days:,} days from "
        f"{args.start.isoformat()}, seed {args.seed}) to {args.out}",
        file=sys.stderr,
    )
    return 0


def _to_kafka(args: argparse.Namespace) -> int:
    events = history(args.customers, args.days, args.seed, args.start, args.timezone)

    def report(driver: Driver, event: dict[str, object]) -> None:
        if event["event_type"] == "clock.tick":
            day = str(event["occurred_at"])[:10]
            print(
                f"day {driver.ticks:>4}/{args.days} {day}: {driver.sent:,} events sent", flush=True
            )

    driver = asyncio.run(drive(args.bootstrap, events, report))
    print(f"sent {driver.sent:,} events and {driver.ticks} ticks to {args.bootstrap}")
    return 0
