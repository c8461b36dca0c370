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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from billstate_cli.commands.dlq import DlqError, Letter, read_letters
from billstate_cli.commands.hold import OptionRefused
from billstate_cli.commands.send import (
    Outgoing,
    SendError,
    SettingsError,
    add_bootstrap,
    aligned,
    kafka_of,
    produce,
    report_failure,
    safe,
)
from billstate_shared.contracts import (
    AccessApprove,
    AccessParked,
    AccessReject,
    AccessUnparked,
    ContractError,
    decode,
    encode,
)
from billstate_shared.errors import Refused
from billstate_shared.topics import ACCESS_EVENTS, APPROVALS

Verb = Literal["approve", "reject"]
EVENT_TYPE: dict[Verb, str] = {"approve": "access.approve", "reject": "access.reject"}

# The contract's field paths, as the options an operator typed.
OPTION_OF = {"data.by": "--by", "data.reason": "--reason", "customer_id": "--customer"}

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


@dataclass(frozen=True)
class Parked:
    """One parked suspension still waiting, and where its access.parked record is."""

    event: AccessParked
    partition: int
    offset: int

    @property
    def customer_id(self) -> str:
        return self.event.customer_id

    @property
    def command_id(self) -> str:
        return self.event.data.command_id

    @property
    def at(self) -> str:
        return f"{ACCESS_EVENTS.name}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Pending:
    """The open parked suspensions, oldest first; `unreadable`: records passed by."""

    parked: list[Parked]
    unreadable: int = 0


# Cheap test before decoding: access.events.v1 holds every applied change for 90 days.
_MARKERS = (b"access.parked", b"access.unparked")


def open_parked(records: Sequence[Letter]) -> Pending:
    """`access.parked` minus those an `access.unparked` ended (same command_id), in the order
    they were parked (occurred_at, then customer and command). A command parked twice (a
    redelivery) counts once, at its first record. A record that does not decode is counted
    in `unreadable` and passed by: it is neither a parking nor its end."""
    parked: dict[str, Parked] = {}
    ended: set[str] = set()
    unreadable = 0
    for record in records:
        value = record.value
        if value is None or not any(m in value for m in _MARKERS):
            continue
        try:
            event = decode(value)
        except ContractError:
            unreadable += 1
            continue
        if isinstance(event, AccessParked):
            parked.setdefault(event.data.command_id, Parked(event, record.partition, record.offset))
        elif isinstance(event, AccessUnparked):
            ended.add(event.data.command_id)
    still = [p for cid, p in parked.items() if cid not in ended]
    still.sort(key=lambda p: (p.event.occurred_at, p.customer_id, p.command_id))
    return Pending(still, unreadable)


def age(since: datetime, now: datetime) -> str:
    """`45m`, `3h 05m`, `2d 04h`: how long a command has been parked (0m if in the future)."""
    minutes = max(0, int((now - since).total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


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


def _operator_rules(by: str, reason: str) -> None:
    # Beyond the contract (Label, Text): what an operator types into an audit trail.
    if not by.strip():
        raise OptionRefused("--by", "must name the operator")
    if "@" in by:
        # Topics are kept for a year and read widely; an e-mail address is personal data.
        raise OptionRefused("--by", "must be an operator id, not an e-mail address")
    if not reason.strip():
        raise OptionRefused("--reason", "must say why")


def build_decision(
    verb: Verb, parked: Parked, by: str, reason: str, now: datetime
) -> AccessApprove | AccessReject:
    """The checked `access.approve` / `access.reject` for one parked command, keyed (by its
    envelope's customer_id) like the parked command; raises OptionRefused naming the option
    the contract refused (`--by (data.by)`, `--reason (data.reason)`)."""
    _operator_rules(by, reason)
    envelope = {
        "event_id": f"{verb}-{parked.command_id}",
        "event_type": EVENT_TYPE[verb],
        "schema_version": 1,
        "occurred_at": now.isoformat(),
        "customer_id": parked.customer_id,
        "data": {"command_id": parked.command_id, "by": by, "reason": reason},
    }
    try:
        event = decode(json.dumps(envelope, ensure_ascii=False))
    except ContractError as err:
        option = OPTION_OF.get(err.field, f"command {parked.command_id}")
        raise OptionRefused(option, err.reason, err.field) from None
    assert isinstance(event, AccessApprove | AccessReject)
    return event


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
