"""`billstate access pending|approve|reject`: suspensions parked by access-control's guards.

`pending` reads access.events.v1 from its beginning to its current end (every partition, no
consumer group, nothing committed) and lists each `access.parked` command that no
`access.unparked` has ended yet. `approve` and `reject` select among those and write one
`access.approve` / `access.reject` per selected command to access.approvals.v1, keyed by its
customer, with the event id `approve-<command_id>` / `reject-<command_id>`: a repeated run
sends the same ids, which access-control applies once. Like `billstate dlq redrive`, they
only print what they would send unless given `--send`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from billstate_cli.commands.dlq import DlqError, read_letters
from billstate_cli.commands.send import (
    SendError,
    SettingsError,
    add_bootstrap,
    aligned,
    kafka_of,
    produce,
    report_failure,
    safe,
)
from billstate_shared.contracts import AccessParked, encode
from billstate_shared.errors import Refused
from billstate_shared.operator.approvals import (
    EVENT_TYPE,
    OPTION_OF,
    Parked,
    Pending,
    Verb,
    age,
    build_decision,
    open_parked,
)
from billstate_shared.operator.letters import Outgoing
from billstate_shared.topics import ACCESS_EVENTS, APPROVALS

# What is pending and the decisions are built in billstate_shared.operator (the console too).
__all__ = [
    "EVENT_TYPE",
    "OPTION_OF",
    "NothingSelected",
    "Parked",
    "Pending",
    "Verb",
    "age",
    "as_json",
    "build_decision",
    "open_parked",
    "plan_decisions",
    "select",
    "table",
]

# Cells of the table's subscriptions column before "+N more".
SHOWN_SUBSCRIPTIONS = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    access = sub.add_parser(
        "access", help="suspensions parked by access-control's guards: list, approve, reject"
    )
    actions = access.add_subparsers(dest="action", required=True, metavar="ACTION")

    pending = actions.add_parser(
        "pending",
        help="list the parked suspensions waiting for a decision (reads only)",
        description=(
            "Reads access.events.v1 from its beginning to its current end without a consumer "
            "group and lists every access.parked command no access.unparked has ended: "
            "customer, command, subscriptions, guard, when it was parked, its age and the "
            "guard's reason. --json prints one JSON object per command."
        ),
    )
    pending.add_argument("--json", action="store_true", help="one JSON object per command")
    add_bootstrap(pending)
    pending.set_defaults(func=_pending)

    verbs: tuple[tuple[Verb, str], ...] = (
        ("approve", "apply the selected parked suspensions"),
        ("reject", "drop the selected parked suspensions; the customers stay as they are"),
    )
    for verb, effect in verbs:
        parser = actions.add_parser(
            verb,
            help=f"{effect} (dry run by default)",
            description=(
                f"Selects parked suspensions (as `billstate access pending` lists them) and "
                f"writes one {EVENT_TYPE[verb]} per selected command to {APPROVALS.name}, "
                f"keyed by its customer, with the event id {verb}-<command_id>: running the "
                "same command again sends the same events, which access-control applies "
                "once. A selection that matches no pending command is an error and nothing "
                "is sent. Only --send produces."
            ),
        )
        chosen = parser.add_mutually_exclusive_group(required=True)
        chosen.add_argument("--all", action="store_true", help="every pending command")
        chosen.add_argument(
            "--customer",
            dest="customers",
            action="append",
            metavar="ID",
            help="the pending commands of this customer (repeatable)",
        )
        chosen.add_argument(
            "--command",
            dest="commands",
            action="append",
            metavar="ID",
            help="this pending command (repeatable)",
        )
        parser.add_argument(
            "--by", required=True, metavar="NAME", help="operator id, not an e-mail"
        )
        parser.add_argument("--reason", required=True, metavar="TEXT", help="why, for the record")
        parser.add_argument("--send", action="store_true", help="produce (default: dry run)")
        add_bootstrap(parser)
        parser.set_defaults(func=_decide, verb=verb)


# ---- what is pending ------------------------------------------------------------------------


def _subscriptions(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOWN_SUBSCRIPTIONS])
    more = len(ids) - SHOWN_SUBSCRIPTIONS
    return f"{shown} (+{more} more)" if more > 0 else shown


COLUMNS = ("customer", "command", "subscriptions", "guard", "parked at", "age", "reason")


def table(parked: Sequence[Parked], now: datetime) -> list[str]:
    """Aligned rows, the reason last and unpadded; every cell masked (no e-mail addresses,
    no control characters)."""
    rows = [
        [
            p.customer_id,
            p.command_id,
            _subscriptions(p.event.data.subscription_ids),
            p.event.data.guard,
            p.event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ"),
            age(p.event.occurred_at, now),
            p.event.data.reason,
        ]
        for p in parked
    ]
    return aligned(COLUMNS, rows)


def as_json(p: Parked, now: datetime) -> str:
    d = p.event.data
    doc: dict[str, Any] = {
        "customer_id": p.customer_id,
        "command_id": d.command_id,
        "subscription_ids": d.subscription_ids,
        "provider": d.provider,
        "guard": d.guard,
        "reason": d.reason,
        "parked_at": p.event.occurred_at.isoformat(),
        "age_seconds": max(0, int((now - p.event.occurred_at).total_seconds())),
        "event_id": p.event.event_id,
        "partition": p.partition,
        "offset": p.offset,
    }
    return json.dumps(doc, ensure_ascii=False)


def _now() -> datetime:
    # For display (ages) and occurred_at, the time the operator acted; nothing decides by it.
    return datetime.now(UTC).replace(microsecond=0)


def _load(args: argparse.Namespace, command: str) -> Pending | int:
    """What is pending now, or an exit code after saying what is wrong."""
    try:
        records = asyncio.run(read_letters(kafka_of(args), ACCESS_EVENTS.name))
    except SettingsError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except DlqError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 1
    pending = open_parked(records)
    if pending.unreadable:
        print(
            f"{command}: {pending.unreadable} record(s) on {ACCESS_EVENTS.name} do not decode"
            " and were passed by (see the topic's readers' DLQ)",
            file=sys.stderr,
        )
    return pending


def _pending(args: argparse.Namespace) -> int:
    loaded = _load(args, "billstate access pending")
    if isinstance(loaded, int):
        return loaded
    try:
        _show(loaded, args.json)
    except BrokenPipeError:
        # The reader went away (`| head`): what it wanted was printed; no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _show(loaded: Pending, as_lines: bool) -> None:  # noqa: FBT001
    now = _now()
    if as_lines:
        for p in loaded.parked:
            print(as_json(p, now), flush=True)
        return
    if not loaded.parked:
        print(f"no parked suspensions pending on {ACCESS_EVENTS.name}", flush=True)
        return
    print("\n".join(table(loaded.parked, now)))
    customers = len({p.customer_id for p in loaded.parked})
    print(
        f"{len(loaded.parked)} parked suspension(s) pending for {customers} customer(s); "
        "decide with `billstate access approve` or `billstate access reject`",
        flush=True,
    )


# ---- deciding -------------------------------------------------------------------------------


class NothingSelected(Refused):
    """A selection that matches no pending command: which option, and what it asked for."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(option, reason, event_type=None)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.reason))


def select(
    pending: Sequence[Parked],
    *,
    every: bool = False,
    customers: Sequence[str] = (),
    commands: Sequence[str] = (),
) -> list[Parked]:
    """The pending commands the operator asked for, in pending order. Every customer and
    every command asked for must match at least one pending command, else NothingSelected
    names those that do not (so a typo sends nothing rather than part of what was meant)."""
    if every:
        if not pending:
            raise NothingSelected(
                "--all", f"no parked suspension is pending on {ACCESS_EVENTS.name}"
            )
        return list(pending)
    if customers:
        known = {p.customer_id for p in pending}
        missing = [c for c in dict.fromkeys(customers) if c not in known]
        if missing:
            raise NothingSelected(
                "--customer", f"no parked suspension pending for {_names(missing)}"
            )
        return [p for p in pending if p.customer_id in set(customers)]
    if commands:
        known = {p.command_id for p in pending}
        missing = [c for c in dict.fromkeys(commands) if c not in known]
        if missing:
            raise NothingSelected(
                "--command", f"no parked suspension pending with id {_names(missing)}"
            )
        return [p for p in pending if p.command_id in set(commands)]
    raise NothingSelected("--all, --customer or --command", "one of them is required")


def _names(items: Sequence[str]) -> str:
    return ", ".join(safe(i[:128]) for i in items)


def plan_decisions(
    verb: Verb, chosen: Sequence[Parked], by: str, reason: str, now: datetime
) -> list[Outgoing]:
    """One record per selected command, all of one verb: a run approves or rejects, never
    both, so no command gets two contrary decisions from one run. Each to access.approvals.v1,
    keyed by the command's customer."""
    items = []
    for p in chosen:
        event = build_decision(verb, p, by, reason, now)
        items.append(Outgoing(p.at, APPROVALS.name, event, encode(event)))
    return items


def _probe(verb: Verb, by: str, reason: str, now: datetime) -> None:
    """--by and --reason checked before Kafka is read: a typo costs no round trip."""
    probe = AccessParked.model_validate(
        {
            "event_id": "probe",
            "event_type": "access.parked",
            "occurred_at": now,
            "customer_id": "probe",
            "data": {
                "command_id": "probe",
                "subscription_ids": ["probe"],
                "provider": "probe",
                "guard": "brake",
                "reason": "probe",
            },
        }
    )
    build_decision(verb, Parked(probe, 0, 0), by, reason, now)


def _describe(item: Outgoing, parked: Parked) -> str:
    e = item.event
    subs = len(parked.event.data.subscription_ids)
    return (
        f"{e.event_type} {e.event_id} for customer {e.customer_id} (command"
        f" {parked.command_id}, {subs} subscription(s), {parked.event.data.guard})"
    )


def _decide(args: argparse.Namespace) -> int:
    verb: Verb = args.verb
    command = f"billstate access {verb}"
    now = _now()
    try:
        _probe(verb, args.by, args.reason, now)
    except Refused as err:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return 2
    loaded = _load(args, command)
    if isinstance(loaded, int):
        return loaded
    try:
        chosen = select(
            loaded.parked,
            every=args.all,
            customers=args.customers or (),
            commands=args.commands or (),
        )
        items = plan_decisions(verb, chosen, args.by, args.reason, now)
    except Refused as err:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return 2
    of = {p.at: p for p in chosen}
    if not args.send:
        for item in items:
            print(f"would send {_describe(item, of[item.origin])} to {APPROVALS.name}")
        print(
            f"dry run: {len(items)} of {len(loaded.parked)} pending selected; add --send to produce"
        )
        return 0
    return _send(command, verb, items, of, args=args, pending=len(loaded.parked))


def _send(
    command: str,
    verb: Verb,
    items: list[Outgoing],
    of: dict[str, Parked],
    *,
    args: argparse.Namespace,
    pending: int,
) -> int:
    try:
        delivered = asyncio.run(produce(kafka_of(args), items))
    except SettingsError as err:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return 2
    except SendError as err:
        report_failure(command, err, len(items))
        return 1
    for d in delivered:
        print(
            f"sent {_describe(d.item, of[d.item.origin])} to {APPROVALS.name}"
            f" partition {d.partition} offset {d.offset}"
        )
    print(
        f"{len(delivered)} {EVENT_TYPE[verb]} sent for {len(delivered)} of {pending} pending;"
        " access-control applies each once (`billstate access pending` shows what is still"
        " waiting)"
    )
    return 0
