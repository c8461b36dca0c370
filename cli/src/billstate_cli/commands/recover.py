"""`billstate recover rebuild`: invoicing's and collections' state rebuilt from the history,
with the clock guard applied, after a tick from the future got through.

The state is the history replayed: the inbound topics and the clock, in the order of their
Kafka timestamps, through `billstate replay`'s code (the services' own cores), with every tick
that runs more than `--skew` ahead of its record's time left out. What it writes, with `--yes`
and only while neither service's consumer group has a member:

1. each service's table, by its changelog topic: the rebuilt register or book of every
   customer, a tombstone for every other key (a worker started without its data directory
   restores exactly that);
2. the decisions the replay makes after the bad tick that are not on their topics yet (same
   deterministic ids: downstream takes each once), a restore for every subscription still
   suspended by a decision the replay does not make, and each rebuilt customer's
   `collections.state` record;
3. both groups' offsets at the end of the history it read, so the services go on from there.

A rebuilt book can have made fewer decisions than the book it replaces, so its commands'
`sequence` (access-control refuses a new command below the highest it accepted) would fall
below those already out. Each customer's commands therefore continue above the highest
sequence out: the access commands it sends are numbered above it, in order, and the book keeps
a `sequence_base` its later commands add. Only that number then differs from a fresh replay's;
ids do not.

Without `--yes` it only says what it would do. Each step can run again: the same history gives
the same records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.admin import DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request

from billstate_cli.commands.send import Kafka, SettingsError, add_bootstrap, kafka_of
from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import Replay
from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book
from billstate_collections.domain.engine import policy_ref, stage_name
from billstate_collections.domain.snapshot import state_record
from billstate_collections.handlers import ROUTE
from billstate_invoicing.domain.clock import DEFAULT_SKEW, span, tick_refusal
from billstate_invoicing.handlers import dump_register
from billstate_shared.contracts import ClockTick, ContractError, Event, decode
from billstate_shared.contracts.outbound import Outbound, Produced, to_bytes
from billstate_shared.domain.ids import make_id
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import ExternalError, Refused
from billstate_shared.runtime.faustkit import ensure_changelog
from billstate_shared.topics import (
    ACCESS_COMMANDS,
    BY_NAME,
    CLOCK,
    CONTROL,
    COSTS,
    CUSTOMER_PARTITIONS,
    CUSTOMERS,
    EVENTS,
    INVOICES,
    NOTICE_REQUESTS,
    PAYMENTS,
    STATE,
    group_inputs,
)

SERVICES = ("invoicing", "collections")
TABLES = {"invoicing": "registers", "collections": "books"}
# The history the state is a function of, in the order ties are broken in.
HISTORY = (CUSTOMERS.name, INVOICES.name, PAYMENTS.name, COSTS.name, CONTROL.name, CLOCK.name)
DECISIONS = (EVENTS.name, ACCESS_COMMANDS.name, NOTICE_REQUESTS.name)
EXIT_ACTIVE = 1
RECOVERY_REASON = "Recovery: the suspension was decided from a clock tick in the future"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recover = sub.add_parser("recover", help="repair the books after an incident")
    actions = recover.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = actions.add_parser(
        "rebuild",
        help="rebuild invoicing's and collections' state from the history (dry run unless --yes)",
        description=(
            "Replays the inbound topics and the clock in the order of their Kafka timestamps, "
            "leaving out every tick more than --skew ahead of its record's time, and (with "
            "--yes, while both services are stopped) writes the result to their changelog "
            "topics, sends the decisions missing since the bad tick and moves both consumer "
            "groups to the end of the history. Start both services afterwards with empty data "
            "directories."
        ),
    )
    rebuild.add_argument(
        "--service",
        default=",".join(SERVICES),
        help="invoicing,collections (both; the one rebuild needs both stopped)",
    )
    rebuild.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="SERVICE=GROUP",
        help="a service's consumer group when it is not the service name (its CONSUMER_GROUP)",
    )
    rebuild.add_argument("--policy", type=Path, default=Path("policy.yaml"), help="the policy")
    rebuild.add_argument(
        "--skew",
        type=float,
        default=DEFAULT_SKEW.total_seconds(),
        metavar="SECONDS",
        help="how far a tick may run ahead of its record's time (default: 600)",
    )
    rebuild.add_argument(
        "--since",
        type=_moment,
        metavar="TIME",
        help=(
            "read the topics from this record time on, not from their beginning: only on a "
            "cluster whose topics hold other histories before it (a test cluster)"
        ),
    )
    rebuild.add_argument(
        "--daily-ticks",
        action="store_true",
        help=(
            "when retention has removed older clock ticks: a tick at 00:05 (policy time zone)"
            " on every day before the first tick kept; close to what the services saw"
        ),
    )
    rebuild.add_argument("--yes", action="store_true", help="act (default: dry run)")
    add_bootstrap(rebuild)
    rebuild.set_defaults(func=_rebuild)


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return value


# ---- the plan: what the history says the state must be ----------------------------------


@dataclass
class Plan:
    """The rebuilt state and what it takes to get the cluster there."""

    groups: dict[str, str]
    policy: Policy
    read: int = 0
    replayed: int = 0
    skipped: list[str] = field(default_factory=list)  # records the services refused too
    refused: list[tuple[str, str]] = field(default_factory=list)  # (where, reason) per bad tick
    truncated: list[str] = field(default_factory=list)  # history lost to retention
    poison_ms: int | None = None  # the record time of the first bad tick
    books: dict[str, Book] = field(default_factory=dict)
    registers: dict[str, bytes] = field(default_factory=dict)
    states: dict[str, Outbound] = field(default_factory=dict)
    missing: list[Produced] = field(default_factory=list)
    restores: list[Outbound] = field(default_factory=list)
    poisoned: list[dict[str, Any]] = field(default_factory=list)
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    changelog_keys: dict[str, set[bytes]] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)
    before: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest state records
    # Per customer, the highest access-command sequence that can be out (access-control's
    # mark is at most this), and the customers whose sequence the rebuild continues above it.
    marks: dict[str, int] = field(default_factory=dict)
    continued: dict[str, int] = field(default_factory=dict)


def partition_of(key: bytes) -> int:
    """Kafka's default partitioner: where a customer's records, and its table rows, live."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % CUSTOMER_PARTITIONS


def changelog(group: str, service: str) -> str:
    return f"{group}-{TABLES[service]}-changelog"


def inputs_of(service: str) -> list[str]:
    return [t.name for t in group_inputs(service)]


async def make_plan(
    kafka: Kafka,
    policy: Policy,
    groups: dict[str, str],
    skew: timedelta,
    since: datetime | None = None,
    *,
    daily_ticks: bool = False,
) -> Plan:
    plan = Plan(groups, policy)
    plan.members = await members(kafka, list(groups.values()))
    tables = [changelog(g, s) for s, g in groups.items()]
    topics = sorted({*HISTORY, *DECISIONS, STATE.name, *(t for s in groups for t in inputs_of(s))})
    records = await read_topics(kafka, topics, tables, since, plan)
    history = [r for r in records if r.topic in HISTORY]
    plan.read = len(history)
    for name in tables:
        plan.changelog_keys[name] = {r.key for r in records if r.topic == name and r.key}
    events = _history(history, skew, plan)
    if daily_ticks:
        events = _with_daily_ticks(events, policy)
        plan.truncated = [t for t in plan.truncated if not t.startswith(CLOCK.name)]
    caused = _replay(events, policy, plan)
    for r in records:
        if r.topic == STATE.name and (value := _json(r.value)) is not None:
            plan.before[str(value.get("customer_id"))] = value
    _after_the_poison(plan, records, caused, policy)
    plan.marks = high_water(records, changelog(groups["collections"], "collections"))
    plan.missing, plan.restores, plan.continued = continue_sequences(
        plan.books, plan.marks, plan.missing, plan.restores
    )
    return plan


def _replay(
    events: list[tuple[int, Event]], policy: Policy, plan: Plan
) -> list[tuple[int, Produced]]:
    """Replay the history into the plan's books, registers and state records; the decisions,
    each with the record time of the input that caused it."""
    replay = Replay(policy)
    caused: list[tuple[int, Produced]] = []
    last_seen: dict[str, datetime] = {}
    for stamp, event in events:
        try:
            produced = replay.feed(event)
        except Refused as err:  # the services dead-letter it too
            plan.skipped.append(f"{event.event_id}: {err}")
            continue
        plan.replayed += 1
        if event.customer_id != "*":
            last_seen[event.customer_id] = event.occurred_at
        for out in produced:
            last_seen[out.customer_id] = out.occurred_at
            if out.event_type in ROUTE:
                caused.append((stamp, out))
    plan.books = replay.books
    for customer, book in replay.books.items():
        ledger = book.ledger
        register = replay.registers[customer]
        if ledger.invoices or ledger.payments or register.zone is not None:
            plan.registers[customer] = dump_register(register)
        if customer in last_seen:
            plan.states[customer] = state_record(book, policy, last_seen[customer])
    return caused


def _json(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _history(
    records: list[ConsumerRecord[bytes, bytes]], skew: timedelta, plan: Plan
) -> list[tuple[int, Event]]:
    """The events the services accept, in time order; bad ticks noted and left out."""
    order = {name: n for n, name in enumerate(HISTORY)}
    records.sort(key=lambda r: (r.timestamp, order[r.topic], r.partition, r.offset))
    events: list[tuple[int, Event]] = []
    for r in records:
        where = f"{r.topic}:{r.partition}:{r.offset}"
        if r.value is None:
            continue  # a tombstone: the customer master record deleted; the books keep it
        try:
            event = decode(r.value)
        except ContractError as err:
            plan.skipped.append(f"{where}: {err}")
            continue
        key = r.key.decode("utf-8", "replace") if r.key is not None else None
        if isinstance(event, ClockTick):
            if r.partition != 0:
                continue  # every tick is on every partition: one copy is the tick
            record_time = datetime.fromtimestamp(r.timestamp / 1000, UTC)
            refused = tick_refusal(event.occurred_at, record_time, skew)
            if refused is not None:
                plan.refused.append((where, refused.reason))
                if plan.poison_ms is None:
                    plan.poison_ms = r.timestamp
                continue
        elif key != event.customer_id:
            plan.skipped.append(f"{where}: Kafka key is not the customer_id")
            continue
        events.append((r.timestamp, event))
    return events


def _with_daily_ticks(events: list[tuple[int, Event]], policy: Policy) -> list[tuple[int, Event]]:
    """The history with a tick at 00:05 on every day from its first record to the first tick
    it kept (or its last record): the clock topic keeps 7 days, the billing topics a year."""
    if not events:
        return events
    kept = [stamp for stamp, event in events if isinstance(event, ClockTick)]
    first, last = events[0][0], min(kept) if kept else events[-1][0]
    zone = policy.zone
    day = datetime.fromtimestamp(first / 1000, zone).date()
    added: list[tuple[int, Event]] = []
    while True:
        at = datetime.combine(day, time(0, 5), zone)
        stamp = int(at.timestamp() * 1000)
        if stamp >= last:
            break
        tick = {"event_id": f"tick-{at.isoformat()}", "event_type": "clock.tick",
                "schema_version": 1, "occurred_at": at.isoformat(), "customer_id": "*",
                "data": {}}  # fmt: skip
        added.append((stamp, decode(orjson.dumps(tick))))
        day += timedelta(days=1)
    return sorted([*events, *added], key=lambda pair: pair[0])


def _after_the_poison(
    plan: Plan,
    records: list[ConsumerRecord[bytes, bytes]],
    caused: list[tuple[int, Produced]],
    policy: Policy,
) -> None:
    """Decisions made from the bad tick on: on the topics but not in the replay (made from a
    false date: reported, not undone), in the replay but not on the topics (to send), and the
    subscriptions a false decision left suspended (to restore)."""
    if plan.poison_ms is None:
        return
    poison = plan.poison_ms
    decided = {out.event_id for _, out in caused}
    on_topics: set[str] = set()
    commands: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        if r.topic not in DECISIONS or (value := _json(r.value)) is None:
            continue
        event_id = str(value.get("event_id"))
        on_topics.add(event_id)
        if r.topic == ACCESS_COMMANDS.name:
            commands.append(value)
        ours = value.get("data", {}).get("reason") == RECOVERY_REASON  # an earlier rebuild's
        if r.timestamp >= poison and event_id not in decided and not ours:
            plan.poisoned.append(value)
    plan.missing = [
        out for stamp, out in caused if stamp >= poison and out.event_id not in on_topics
    ]
    sent = [json.loads(to_bytes(o)) for o in plan.missing if o.event_type.startswith("access.")]
    false_ids = {str(v.get("event_id")) for v in plan.poisoned}
    for customer, subs in _wrongly_suspended(plan, [*commands, *sent], false_ids).items():
        plan.restores.append(_restore(plan.books.get(customer), customer, subs, policy))


def _wrongly_suspended(
    plan: Plan, commands: list[dict[str, Any]], false_ids: set[str]
) -> dict[str, list[tuple[str, str]]]:
    """Per customer, the subscriptions whose last command (the missing ones sent) is a false
    suspension the rebuilt book does not hold, with that command's id."""
    desired: dict[tuple[str, str], str] = {}
    poisoned_by: dict[tuple[str, str], str] = {}
    for command in commands:
        for sub in command["data"]["subscription_ids"]:
            key = (command["customer_id"], sub)
            desired[key] = command["event_type"]
            if command["event_id"] in false_ids:
                poisoned_by[key] = command["data"]["command_id"]
            else:
                poisoned_by.pop(key, None)
    wrong: dict[str, list[tuple[str, str]]] = {}
    for (customer, sub), kind in sorted(desired.items()):
        book = plan.books.get(customer)
        held = book is not None and sub in book.suspended
        if kind == "access.suspend" and not held and (customer, sub) in poisoned_by:
            wrong.setdefault(customer, []).append((sub, poisoned_by[(customer, sub)]))
    return wrong


def _restore(
    book: Book | None, customer: str, subs: list[tuple[str, str]], policy: Policy
) -> Outbound:
    ids = tuple(sub for sub, _ in subs)
    command_id = make_id("restore", customer, "recover", *sorted({c for _, c in subs}), *ids)
    stage = stage_name(policy, book.stage) if book is not None else "current"
    return Outbound(
        event_id=f"evt-{command_id}",
        event_type="access.restore",
        occurred_at=datetime.now(UTC),  # an operator's act, now; not a business decision
        customer_id=customer,
        data={
            "command_id": command_id,
            "subscription_ids": list(ids),
            "reason": RECOVERY_REASON,
            "stage": stage,
            "policy": policy_ref(policy),
        },
    )


# ---- sequences: the rebuilt books' commands newer than those already out ------------------


def high_water(records: Sequence[ConsumerRecord[bytes, bytes]], books: str) -> dict[str, int]:
    """Per customer, the highest access-command sequence that can be out: the highest
    `data.sequence` of its commands on access.commands.v1 (access-control's mark is at most
    that), and of its book now on collections' changelog topic `books` the transitions plus
    `sequence_base` (what its last command carried, if its last decision was one: this also
    covers commands retention has removed)."""
    marks: dict[str, int] = {}
    stored: dict[bytes, int | None] = {}
    read = [r for r in records if r.topic in (books, ACCESS_COMMANDS.name)]
    for r in sorted(read, key=lambda r: (r.topic, r.partition, r.offset)):
        if r.topic == books and r.key is not None:  # the last row of a key is the table's
            value = _json(r.value)
            book = value.get("book") if value is not None else None
            stored[r.key] = _book_mark(book) if isinstance(book, dict) else None
        elif r.topic == ACCESS_COMMANDS.name and (value := _json(r.value)) is not None:
            data = value.get("data")
            sequence = data.get("sequence") if isinstance(data, dict) else None
            if isinstance(sequence, int) and not isinstance(sequence, bool):
                _at_least(marks, str(value.get("customer_id")), sequence)
    for key, mark in stored.items():
        if mark is not None:
            _at_least(marks, key.decode("utf-8", "replace"), mark)
    return marks


def _book_mark(book: dict[str, Any]) -> int | None:
    transitions, base = book.get("transitions"), book.get("sequence_base", 0)
    if isinstance(transitions, int) and isinstance(base, int):
        return transitions + base
    return None


def _at_least(marks: dict[str, int], customer: str, sequence: int) -> None:
    marks[customer] = max(marks.get(customer, sequence), sequence)


def continue_sequences(
    books: Mapping[str, Book],
    marks: Mapping[str, int],
    missing: Sequence[Produced],
    restores: Sequence[Outbound],
) -> tuple[list[Produced], list[Outbound], dict[str, int]]:
    """The decisions and restores to send, with each customer's access commands numbered
    above its mark, in the order they are sent (the missing decisions, then the restores): a
    command keeps the replay's sequence when that is above the customer's last one, else it
    takes the next number. Every other field, ids included, stays. Each rebuilt book's
    `sequence_base` is set so its next command follows the last number out (0 when its own
    count already does). Also: per customer whose numbers differ from the replay's, its mark."""
    running = dict(marks)
    continued: dict[str, int] = {}

    def number(customer: str, natural: int | None) -> int:
        last = running.get(customer, -1)
        sequence = natural if natural is not None and natural > last else last + 1
        if natural is not None and sequence != natural and customer in marks:
            continued[customer] = marks[customer]
        running[customer] = sequence
        return sequence

    sent = [
        _with_sequence(o, number(o.customer_id, json.loads(to_bytes(o))["data"].get("sequence")))
        if o.event_type in ACCESS_COMMANDS.event_types
        else o
        for o in missing
    ]
    restored = [
        replace(o, data={**o.data, "sequence": number(o.customer_id, o.data.get("sequence"))})
        for o in restores
    ]
    for customer, book in books.items():
        top = running.get(customer)
        book.sequence_base = max(0, top - book.transitions) if top is not None else 0
        if book.sequence_base and customer in marks:
            continued[customer] = marks[customer]
    return sent, restored, continued


def _with_sequence(out: Produced, sequence: int) -> Produced:
    if isinstance(out, Outbound):
        return replace(out, data={**out.data, "sequence": sequence})
    value = json.loads(to_bytes(out))
    value["data"]["sequence"] = sequence
    return decode(orjson.dumps(value))


# ---- Kafka ---------------------------------------------------------------------------------


class _DescribeGroups(Request[DescribeGroupsRequest_v2]):  # type: ignore[misc]  # an untyped base
    """DescribeGroups at version 2: aiokafka reads version 3's answer with version 2's layout
    (its v3 request names the v2 response), which fails on a group that has members."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(
        self, request_struct_class: type[DescribeGroupsRequest_v2]
    ) -> DescribeGroupsRequest_v2:
        return request_struct_class(self.groups)


async def members(kafka: Kafka, groups: list[str]) -> dict[str, int]:
    """How many members each consumer group has now (0: nobody consumes under it)."""
    admin = AIOKafkaAdminClient(**kafka.options())
    await admin.start()
    try:
        found: dict[str, int] = {}
        for group in groups:
            node = await admin.find_coordinator(group)
            response = await admin._send_request(_DescribeGroups([group]), node)  # noqa: SLF001  (see _DescribeGroups)
            for described in response.groups:
                # Its fields: error code, group id, state, protocol type, protocol, members.
                found[str(described[1])] = len(described[5])
        return found
    finally:
        await admin.close()


async def read_topics(
    kafka: Kafka,
    topics: list[str],
    tables: list[str],
    since: datetime | None,
    plan: Plan,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topics` (from `since`, or their beginning) up to their end now, and
    every record of the changelog topics that exist; the ends are kept in the plan."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka.options())
    await consumer.start()
    try:
        existing = await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in range(BY_NAME[t].partitions)]
        tps += [
            TopicPartition(t, p)
            for t in tables
            if t in existing
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts = dict(begins)
        if since is not None:
            at = int(since.timestamp() * 1000)
            found = await consumer.offsets_for_times({tp: at for tp in tps if tp.topic in topics})
            for tp, hit in found.items():
                starts[tp] = ends[tp] if hit is None else hit.offset
        else:
            plan.truncated = [
                f"{tp.topic} partition {tp.partition} starts at offset {begins[tp]}"
                for tp in tps
                if tp.topic in HISTORY and BY_NAME[tp.topic].cleanup == "delete" and begins[tp]
            ]
        plan.ends = {tp: end for tp, end in ends.items() if tp.topic in topics}
        return await _read(consumer, tps, starts, ends)
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of `tps` from `starts` up to `ends`."""
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, starts[tp])
    left = {tp for tp in tps if ends[tp] > starts[tp]}
    records: list[ConsumerRecord[bytes, bytes]] = []
    while left:
        for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
            records.extend(r for r in batch if r.offset < ends[tp])
        for tp in list(left):  # at the end (also past a gap: no record at end - 1)
            if await consumer.position(tp) >= ends[tp]:
                left.discard(tp)
    return records


async def act(kafka: Kafka, plan: Plan) -> None:
    """Write the changelogs and the outputs, then move the groups: in that order, so a run
    cut short leaves the groups where they were and can simply run again."""
    admin = AIOKafkaAdminClient(**kafka.options())
    await admin.start()
    try:  # for a changelog topic someone deleted: as many replicas as `topics apply` makes
        replication_factor = min(3, len((await admin.describe_cluster())["brokers"]))
    finally:
        await admin.close()
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka.options())
    await producer.start()
    sent: list[asyncio.Future[Any]] = []
    try:
        for service, group in plan.groups.items():
            name = changelog(group, service)
            await ensure_changelog(
                kafka.bootstrap,
                group,
                TABLES[service],
                partitions=CUSTOMER_PARTITIONS,
                replication_factor=replication_factor,
                auth=kafka.auth,
            )
            rows = _rows(plan, service)
            for key in plan.changelog_keys.get(name, set()) - set(rows):
                rows[key] = None  # a customer the history does not have: no row
            for key, value in sorted(rows.items()):
                sent.append(await producer.send(name, value, key=key, partition=partition_of(key)))
        outputs: list[tuple[str, str, bytes]] = [
            (ROUTE[o.event_type], o.customer_id, to_bytes(o)) for o in plan.missing
        ]
        outputs += [(ACCESS_COMMANDS.name, o.customer_id, o.encode()) for o in plan.restores]
        outputs += [(STATE.name, c, o.encode()) for c, o in sorted(plan.states.items())]
        for topic, customer, value in outputs:
            sent.append(await producer.send(topic, value, key=customer.encode()))
        await producer.flush()
        await asyncio.gather(*sent)  # every record acknowledged, or the error: groups unmoved
    finally:
        await producer.stop()
    for service, group in plan.groups.items():
        wanted = {tp: end for tp, end in plan.ends.items() if tp.topic in inputs_of(service)}
        consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka.options())
        await consumer.start()
        try:
            consumer.assign(list(wanted))
            await consumer.commit(wanted)
        finally:
            await consumer.stop()


def _rows(plan: Plan, service: str) -> dict[bytes, bytes | None]:
    if service == "invoicing":
        return {c.encode(): v for c, v in plan.registers.items()}
    return {
        c.encode(): b'{"book":' + orjson.dumps(dump_book(book, plan.policy)) + b',"sent":[]}'
        for c, book in plan.books.items()
    }


# ---- the command ---------------------------------------------------------------------------


def parse_groups(services: str, pairs: Sequence[str]) -> dict[str, str]:
    chosen = [s.strip() for s in services.split(",") if s.strip()]
    if sorted(chosen) != sorted(SERVICES):
        raise Refused(
            "--service",
            "must be invoicing,collections: collections' books are rebuilt from the same"
            " replay as invoicing's registers, and both must be stopped",
        )
    groups = {s: s for s in SERVICES}
    for pair in pairs:
        service, sep, group = pair.partition("=")
        if not sep or service not in groups or not group:
            raise Refused("--group", f"{pair!r} is not SERVICE=GROUP for invoicing or collections")
        groups[service] = group
    return groups


def describe(plan: Plan, skew: timedelta) -> list[str]:
    """The plan in words, one fact a line."""
    lines = [
        (
            f"history: {plan.read:,} records read, {plan.replayed:,} events replayed,"
            f" {len(plan.skipped):,} left out as the services refused them"
        )
    ]
    lines += [f"  left out: {s}" for s in plan.skipped[:10]]
    lines += [f"history lost to retention: {t}" for t in plan.truncated]
    lines.append(f"ticks refused (more than {span(skew)} ahead of their record's time):"
                 f" {len(plan.refused)}")  # fmt: skip
    lines += [f"  {where}: {reason}" for where, reason in plan.refused[:10]]
    changed = []
    for customer, out in sorted(plan.states.items()):
        now = plan.before.get(customer, {}).get("data", {})
        data = out.data
        if (now.get("stage"), now.get("as_of")) != (data["stage"], data["as_of"]):
            changed.append(
                f"  {customer}: {now.get('stage', '-')} as of {now.get('as_of', '-')}"
                f" -> {data['stage']} as of {data['as_of']}"
            )
    lines.append(f"customers rebuilt: {len(plan.books):,}; stage or date differs for"
                 f" {len(changed):,}")  # fmt: skip
    lines += changed[:50]
    kinds = Counter(v.get("data", {}).get("kind") or v.get("event_type") for v in plan.poisoned)
    lines.append(
        f"decisions made from a refused tick (already out, cannot be undone): {len(plan.poisoned)}"
        + (f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})" if kinds else "")
    )
    for value in plan.poisoned[:50]:
        data = value.get("data", {})
        facts = data.get("facts", {})
        lines.append(
            f"  {value.get('customer_id')}: {value.get('event_type')}"
            f" {data.get('kind') or data.get('stage') or ''}"
            + (f" suspension_on {facts['suspension_on']}" if facts.get("suspension_on") else "")
        )
    lines.append(f"decisions to send (the replay makes them, the topics lack them):"
                 f" {len(plan.missing)}")  # fmt: skip
    lines.append(f"restore commands for subscriptions a refused tick suspended:"
                 f" {len(plan.restores)}")  # fmt: skip
    lines += [f"  {o.customer_id}: {', '.join(o.data['subscription_ids'])}" for o in plan.restores]
    lines.append(
        f"customers whose command sequence continues above the highest out (fewer decisions"
        f" rebuilt): {len(plan.continued):,}"
    )
    for customer, mark in sorted(plan.continued.items())[:50]:
        book = plan.books.get(customer)
        if book is not None:
            lines.append(
                f"  {customer}: highest out {mark}; the rebuilt book has made"
                f" {book.transitions} decisions, its commands go on from"
                f" {book.transitions + book.sequence_base + 1}"
            )
    for service, group in plan.groups.items():
        lines.append(
            f"{service}: group {group} ({plan.members.get(group, 0)} members),"
            f" changelog {changelog(group, service)}"
        )
    return lines


def _rebuild(args: argparse.Namespace) -> int:
    try:
        groups = parse_groups(args.service, args.group)
        kafka = kafka_of(args)
    except (Refused, SettingsError) as err:
        print(f"billstate recover rebuild: {err}", file=sys.stderr)
        return REFUSED_EXIT
    if args.skew < 0:
        print("billstate recover rebuild: --skew: must not be negative", file=sys.stderr)
        return REFUSED_EXIT
    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    skew = timedelta(seconds=args.skew)
    try:
        plan = asyncio.run(
            make_plan(kafka, policy, groups, skew, args.since, daily_ticks=args.daily_ticks)
        )
        for line in describe(plan, skew):
            print(line)
        return _act(args, kafka, plan)
    except (KafkaError, ExternalError, OSError) as err:
        print(f"billstate recover rebuild: Kafka failed: {err}", file=sys.stderr)
        return 1


def _act(args: argparse.Namespace, kafka: Kafka, plan: Plan) -> int:
    busy = [g for g in plan.groups.values() if plan.members.get(g, 0)]
    if not args.yes:
        print("dry run: nothing written; --yes to rebuild")
        return 0
    if busy:
        print(
            f"billstate recover rebuild: refused: consumer group {', '.join(busy)} has active"
            " members; stop invoicing and collections first (every replica)",
            file=sys.stderr,
        )
        return EXIT_ACTIVE
    if plan.truncated:
        print(
            "billstate recover rebuild: refused: retention has removed part of the history"
            " (listed above); the books cannot be rebuilt from what is left (for the clock"
            " alone: --daily-ticks)",
            file=sys.stderr,
        )
        return EXIT_ACTIVE
    asyncio.run(act(kafka, plan))
    print(
        f"rebuilt: {len(plan.registers):,} registers, {len(plan.books):,} books;"
        f" sent {len(plan.missing)} decisions, {len(plan.restores)} restores,"
        f" {len(plan.states):,} state records; groups moved to the end of the history."
        " Start invoicing and collections with empty data directories."
    )
    return 0
