"""`billstate dlq list|redrive`: read a dead-letter topic; send its records back to their source."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from billstate_cli.commands.send import (
    Kafka,
    Outgoing,
    Seen,
    SendError,
    SettingsError,
    add_bootstrap,
    aligned,
    check,
    kafka_of,
    produce,
    report_failure,
    safe,
)
from billstate_shared.contracts import AccessRestore, AccessSuspend, ContractError, decode
from billstate_shared.errors import ExternalError
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import ACCESS_COMMANDS, DLQ_TOPICS

# Marks a re-driven record on its source topic, for whoever traces it later; services ignore it.
REDRIVE_HEADER = "billstate.redrive.source"

DLQ_NAMES = tuple(t.name for t in DLQ_TOPICS)


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


@dataclass(frozen=True)
class Letter:
    """One record of a dead-letter topic."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def at(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    def parsed(self) -> Any:
        """The value as JSON when it is JSON, else as text (None for an empty value)."""
        if self.value is None:
            return None
        text = self.value.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def customer(self) -> str | None:
        """The key, or, when the key was the problem, the value's customer_id."""
        value = self.parsed()
        if isinstance(value, dict) and isinstance(value.get("customer_id"), str):
            return str(value["customer_id"])
        return self.key_text

    def source(self) -> str:
        h = self.headers
        if "topic" not in h:
            return "-"
        return f"{h['topic']}:{h.get('partition', '?')}:{h.get('offset', '?')}"


class DlqError(ExternalError):
    """The topic cannot be read; the message says why."""


async def read_letters(kafka: Kafka, topic: str, idle_timeout: float = 30.0) -> list[Letter]:
    """Every record from the beginning to the end the topic has now; no group, no commits."""
    bootstrap = kafka.bootstrap
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        # A dead letter written in an aborted transaction was never really written.
        isolation_level="read_committed",
        **kafka.options(),
    )
    try:
        await consumer.start()
    except KafkaError as err:
        await consumer.stop()
        raise DlqError(f"cannot reach Kafka at {bootstrap}: {err}") from None
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            raise DlqError(f"no topic {topic} on {bootstrap}")
        letters = await _read_to_end(consumer, topic, partitions, idle_timeout)
    except KafkaError as err:
        raise DlqError(f"reading {topic} on {bootstrap} failed: {err}") from None
    finally:
        await consumer.stop()
    letters.sort(key=lambda x: (x.partition, x.offset))
    return letters


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, asking the broker again if the cached metadata has none."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # aiokafka has no public way to refresh a consumer's metadata.
        await consumer._client.force_metadata_update()  # noqa: SLF001
        partitions = consumer.partitions_for_topic(topic)
    return set(partitions or ())


async def _read_to_end(
    consumer: AIOKafkaConsumer, topic: str, partitions: set[int], idle_timeout: float
) -> list[Letter]:
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, begins[tp])
    letters: list[Letter] = []
    pending = {tp for tp in tps if ends[tp] > begins[tp]}
    deadline = time.monotonic() + idle_timeout
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for tp, records in batch.items():
            # What arrives while we read is not in this view.
            letters.extend(_letter(r) for r in records if r.offset < ends[tp])
            deadline = time.monotonic() + idle_timeout
        # The position, not the last record: transaction markers occupy offsets too.
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if pending and time.monotonic() > deadline:
            raise DlqError(f"{topic}: no progress reading for {idle_timeout:.0f}s")
    return letters


def _letter(record: Any) -> Letter:
    return Letter(
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        read_headers(record.headers),
    )


def select(
    letters: Sequence[Letter],
    customer: str | None = None,
    field: str | None = None,
    positions: Sequence[tuple[int, int]] = (),
) -> list[Letter]:
    """The letters matching every filter given, in DLQ order."""
    wanted = set(positions)
    return [
        x
        for x in letters
        if (customer is None or customer in (x.key_text, x.customer()))
        and (field is None or x.headers.get("field") == field)
        and (not wanted or (x.partition, x.offset) in wanted)
    ]


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


@dataclass
class Plan:
    """What a re-drive would do with each selected letter."""

    items: list[Outgoing]
    refused: list[str]  # "DLQ:P:O: field: reason"
    duplicates: list[str]
    stale: list[str] = field(default_factory=list)  # access commands older than the newest


def stale_reason(event: Any, newest: Mapping[str, int]) -> str | None:
    """Why an access command is stale: its sequence is lower than the newest command's for
    its customer on access.commands.v1 (access-control refuses such a command). None for
    another event, a command without a sequence, or a customer with none on the topic."""
    if not isinstance(event, AccessSuspend | AccessRestore) or event.data.sequence is None:
        return None
    latest = newest.get(event.customer_id)
    if latest is None or event.data.sequence >= latest:
        return None
    return (
        f"{event.event_type} {event.data.command_id}: stale: sequence {event.data.sequence}"
        f" is older than {latest}, the newest command for {event.customer_id} on"
        f" {ACCESS_COMMANDS.name}"
    )


def plan_redrive(
    topic: str,
    letters: Sequence[Letter],
    newest: Mapping[str, int] | None = None,
    *,
    force_stale: bool = False,
) -> Plan:
    """Check each letter as the services will when it comes back; refuse what they would.

    `newest` is the highest command sequence per customer on access.commands.v1: an access
    command below it is stale, skipped (or, with `force_stale`, sent and said so)."""
    source_topic = topic.removesuffix(".dlq")
    plan = Plan([], [], [])
    seen = Seen()
    for x in letters:
        origin = f"{topic}:{x.at}"
        source = x.headers.get("topic")
        if source is None:
            plan.refused.append(f"{origin}: headers: no billstate.dlq.topic, not a dead letter")
            continue
        if source != source_topic:
            plan.refused.append(
                f"{origin}: headers: billstate.dlq.topic is {safe(source)}, not {source_topic}"
            )
            continue
        if x.value is None:
            plan.refused.append(f"{origin}: $: an empty value (tombstone) is not an event")
            continue
        try:
            event = check(x.value, expected_topic=source)
        except ContractError as err:
            plan.refused.append(f"{origin}: {err.field}: {err.reason}")
            continue
        first = seen.first_copy(event, x.at)
        if first is not None:
            same = "" if first[1] else " (a different value: the services apply only the first)"
            plan.duplicates.append(
                f"duplicate {x.at}: event_id {event.event_id} as at {first[0]}, skipped{same}"
            )
            continue
        why = stale_reason(event, newest or {})
        if why is not None:
            plan.stale.append(f"stale {x.at}: {why}; {'sent anyway' if force_stale else 'skipped'}")
            if not force_stale:
                continue
        headers = ((REDRIVE_HEADER, origin.encode()),)
        plan.items.append(Outgoing(x.at, source, event, x.value, headers))
    return plan


async def newest_sequences(kafka: Kafka, customers: Collection[str]) -> dict[str, int]:
    """The highest `data.sequence` per customer among the commands on access.commands.v1
    now (what access-control has been sent; it refuses a new command older than those it
    accepted). Only `customers` are looked at; a record that does not decode is passed by."""
    wanted = {c.encode() for c in customers}
    newest: dict[str, int] = {}
    if not wanted:
        return newest
    for record in await read_letters(kafka, ACCESS_COMMANDS.name):
        if record.key not in wanted or record.value is None:
            continue
        try:
            event = decode(record.value)
        except ContractError:
            continue
        if isinstance(event, AccessSuspend | AccessRestore) and event.data.sequence is not None:
            customer = event.customer_id
            newest[customer] = max(newest.get(customer, event.data.sequence), event.data.sequence)
    return newest


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
