"""`billstate dlq list|redrive`: read a dead-letter topic; send its records back to their source."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from billstate_cli.commands.send import (
    SendError,
    SettingsError,
    add_bootstrap,
    aligned,
    kafka_of,
    produce,
    report_failure,
)
from billstate_shared.operator.letters import (
    DLQ_NAMES,
    REDRIVE_HEADER,
    DlqError,
    Letter,
    Outgoing,
    newest_sequences,
    read_letters,
    select,
    stale_reason,
)
from billstate_shared.operator.letters import plan_redrive as letters_plan
from billstate_shared.topics import ACCESS_COMMANDS

# Reading letters and planning a re-drive live in billstate_shared.operator (the console too).
__all__ = [
    "DLQ_NAMES",
    "REDRIVE_HEADER",
    "DlqError",
    "Letter",
    "Plan",
    "as_json",
    "newest_sequences",
    "plan_redrive",
    "read_letters",
    "select",
    "stale_reason",
    "table",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter topics: list, re-drive")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        help="show the dead letters of a DLQ topic (reads only, commits nothing)",
        description=(
            "Reads TOPIC from its beginning to its current end without a consumer group, "
            "and shows each dead letter's position, customer key and billstate.dlq.* headers. "
            "The table masks e-mail addresses; --json prints the original values as they "
            "are, addresses included."
        ),
    )
    _selection(listing)
    listing.add_argument("--limit", type=_positive, metavar="N", help="only the N most recent")
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per dead letter, value included"
    )
    listing.set_defaults(func=_list)

    redrive = actions.add_parser(
        "redrive",
        help="send dead letters' original values back to their source topic (dry run by default)",
        description=(
            "Re-produces the selected dead letters' original values, unchanged, to the topic "
            "named in their billstate.dlq.topic header, keyed by customer_id, in DLQ order. "
            "A value the services would refuse again is not sent (fix it and use `billstate "
            "send`); a second copy of an event_id is skipped. An access command older than "
            "the newest command for its customer on access.commands.v1 (a lower "
            "data.sequence) is stale and skipped: access-control would refuse it. Only "
            "--send produces."
        ),
    )
    _selection(redrive)
    redrive.add_argument(
        "--offset",
        dest="offsets",
        type=_position,
        nargs="+",
        action="extend",
        metavar="P:O",
        help="only the dead letters at these DLQ partition:offset positions",
    )
    redrive.add_argument("--send", action="store_true", help="produce (default: dry run)")
    redrive.add_argument(
        "--force-stale",
        action="store_true",
        help="send stale access commands too (access-control refuses them again unless it "
        "has accepted no newer command for the customer)",
    )
    redrive.set_defaults(func=_redrive)


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", metavar="TOPIC.dlq", help="a dead-letter topic of the catalog")
    parser.add_argument("--customer", metavar="ID", help="only this customer's dead letters")
    parser.add_argument(
        "--field", metavar="FIELD", help="only dead letters whose billstate.dlq.field is FIELD"
    )
    add_bootstrap(parser)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _position(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:OFFSET, e.g. 3:17")
    return int(match.group(1)), int(match.group(2))


# ---- reading --------------------------------------------------------------------------------


def _load(args: argparse.Namespace, command: str) -> list[Letter] | int:
    """The topic's letters, or an exit code after saying what is wrong."""
    if args.topic not in DLQ_NAMES:
        print(
            f"{command}: {args.topic} is not a dead-letter topic of the catalog; one of: "
            + ", ".join(DLQ_NAMES),
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(read_letters(kafka_of(args), args.topic))
    except SettingsError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except DlqError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 1


# ---- list -----------------------------------------------------------------------------------

COLUMNS = ("at", "customer", "source", "service", "event_type", "field", "reason")


def table(letters: Sequence[Letter]) -> list[str]:
    """Aligned rows; every cell masked (no e-mail addresses, no control characters)."""
    rows = [
        [
            x.at,
            x.key_text if x.key_text is not None else "-",
            x.source(),
            x.headers.get("service", "-"),
            x.headers.get("event_type") or "-",
            x.headers.get("field", "-"),
            x.headers.get("reason", "-"),
        ]
        for x in letters
    ]
    return aligned(COLUMNS, rows)


def as_json(topic: str, letter: Letter) -> str:
    doc = {
        "topic": topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "timestamp": letter.timestamp,
        "key": letter.key_text,
        "dlq": letter.headers,
        "value": letter.parsed(),
    }
    return json.dumps(doc, ensure_ascii=False)


def _list(args: argparse.Namespace) -> int:
    loaded = _load(args, "billstate dlq list")
    if isinstance(loaded, int):
        return loaded
    chosen = select(loaded, args.customer, args.field)
    if args.limit is not None and len(chosen) > args.limit:
        by_time = sorted(chosen, key=lambda x: (x.timestamp, x.partition, x.offset))
        newest = {(x.partition, x.offset) for x in by_time[-args.limit :]}
        chosen = [x for x in chosen if (x.partition, x.offset) in newest]
    if args.json:
        for letter in chosen:
            print(as_json(args.topic, letter))
        return 0
    if chosen:
        print("\n".join(table(chosen)))
    if not loaded:
        print(f"no dead letters in {args.topic}")
        return 0
    filtered = args.customer is not None or args.field is not None or args.limit is not None
    of = f" of {len(loaded)}" if filtered else ""
    print(f"{len(chosen)} dead letter(s){of} in {args.topic}")
    return 0


# ---- redrive --------------------------------------------------------------------------------


def plan_redrive(
    topic: str,
    letters: Sequence[Letter],
    newest: Mapping[str, int] | None = None,
    *,
    force_stale: bool = False,
) -> Plan:
    """billstate_shared.operator.letters.plan_redrive, its records as this CLI produces them."""
    plan = letters_plan(topic, letters, newest, force_stale=force_stale)
    items = [Outgoing(i.origin, i.topic, i.event, i.value, i.headers) for i in plan.items]
    return Plan(items, plan.refused, plan.duplicates, plan.stale)


@dataclass
class Plan:
    """What a re-drive would do with each selected letter."""

    items: list[Outgoing]
    refused: list[str]  # "DLQ:P:O: field: reason"
    duplicates: list[str]
    stale: list[str] = field(default_factory=list)  # access commands older than the newest


def _plan(args: argparse.Namespace, chosen: Sequence[Letter], command: str) -> Plan | int:
    """The plan for access commands: stale ones (older than the newest command of their
    customer on access.commands.v1) are marked; or an exit code if the topic is unreadable."""
    customers = {c for c in (x.customer() for x in chosen) if c is not None}
    try:
        newest = asyncio.run(newest_sequences(kafka_of(args), customers))
    except DlqError as err:
        print(f"{command}: cannot tell stale commands: {err}; nothing sent", file=sys.stderr)
        return 1
    return plan_redrive(args.topic, chosen, newest, force_stale=args.force_stale)


def _chosen(args: argparse.Namespace, command: str) -> list[Letter] | int:
    """The letters the arguments select; or an exit status after saying what is wrong (2
    for an --offset not in the DLQ)."""
    loaded = _load(args, command)
    if isinstance(loaded, int):
        return loaded
    positions = args.offsets or []
    present = {(x.partition, x.offset) for x in loaded}
    absent = [f"{p}:{o}" for p, o in positions if (p, o) not in present]
    if absent:
        print(f"{command}: --offset {', '.join(absent)}: no such record in {args.topic}",
              file=sys.stderr)  # fmt: skip
        return 2
    return select(loaded, args.customer, args.field, positions)


def _report(args: argparse.Namespace, plan: Plan, commands: bool) -> str:  # noqa: FBT001
    """Print what is refused, duplicated or stale; the counts for the summary line."""
    for line in plan.refused:
        print(line, file=sys.stderr)
    for line in plan.duplicates:
        print(line)
    for line in plan.stale:
        print(line)
    counts = f"{len(plan.refused)} refused, {len(plan.duplicates)} duplicate(s)"
    if commands:
        counts += f", {len(plan.stale)} stale" + (" (sent anyway)" if args.force_stale else "")
    return counts


def _redrive(args: argparse.Namespace) -> int:
    command = "billstate dlq redrive"
    chosen = _chosen(args, command)
    if isinstance(chosen, int):
        return chosen
    commands = args.topic == ACCESS_COMMANDS.dlq
    plan = _plan(args, chosen, command) if commands else plan_redrive(args.topic, chosen)
    if isinstance(plan, int):
        return plan
    counts = _report(args, plan, commands)
    code = 1 if plan.refused else 0
    if not args.send:
        for item in plan.items:
            print(f"would send {item.origin}: {item.describe()}")
        print(
            f"dry run: {len(chosen)} selected in {args.topic}: {len(plan.items)} to send,"
            f" {counts}; add --send to produce"
        )
        return code
    try:
        delivered = asyncio.run(produce(kafka_of(args), plan.items)) if plan.items else []
    except SettingsError as err:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return 2
    except SendError as err:
        report_failure(command, err, len(plan.items))
        return 1
    for d in delivered:
        print(
            f"sent {d.item.origin}: {d.item.describe()} partition {d.partition} offset {d.offset}"
        )
    print(f"{len(chosen)} selected in {args.topic}: {len(delivered)} sent, {counts}")
    return code
