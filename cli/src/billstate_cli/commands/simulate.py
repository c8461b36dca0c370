"""`billstate simulate`: a realistic, deterministic billing history as inbound events."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="the JSONL file to write (required: only file output for now; Kafka comes later)",
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
