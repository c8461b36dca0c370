"""Dead letters: reading a `*.dlq` topic, and the plan of a re-drive to the original topic."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from billstate_shared.contracts import AccessRestore, AccessSuspend, ContractError, Event, decode
from billstate_shared.errors import ExternalError
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topics import ACCESS_COMMANDS, DLQ_TOPICS, topic_for

# Marks a re-driven record on its source topic, for whoever traces it later; services ignore it.
REDRIVE_HEADER = "billstate.redrive.source"

DLQ_NAMES = tuple(t.name for t in DLQ_TOPICS)

Headers = tuple[tuple[str, bytes], ...]

_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[^\s@\"'<>(),;:]+")


def safe(text: str) -> str:
    """For tables: e-mail addresses masked, control characters shown as '?'."""
    masked = _EMAIL.sub("[email]", text)
    return "".join(c if c.isprintable() else "?" for c in masked)


class Cluster(Protocol):
    """Where the cluster is, and aiokafka's keyword arguments to reach it."""

    @property
    def bootstrap(self) -> str: ...
    def options(self) -> dict[str, Any]: ...


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


async def read_letters(kafka: Cluster, topic: str, idle_timeout: float = 30.0) -> list[Letter]:
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
            letters.extend(letter_of(r) for r in records if r.offset < ends[tp])
            deadline = time.monotonic() + idle_timeout
        # The position, not the last record: transaction markers occupy offsets too.
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if pending and time.monotonic() > deadline:
            raise DlqError(f"{topic}: no progress reading for {idle_timeout:.0f}s")
    return letters


def letter_of(record: Any) -> Letter:
    """A consumed record (aiokafka's) as a Letter."""
    return Letter(
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        read_headers(record.headers or ()),
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


# ---- checking what goes back ----------------------------------------------------------------


def check(raw: bytes, expected_topic: str | None = None) -> Event:
    """Decode one value as the services do, plus the rules a producer must keep on top:
    the event's topic is one a service reads (and, for a re-drive, the topic it came from),
    and it is not a clock tick (ticks go to every partition: `billstate clock tick`)."""
    event = decode(raw)
    if event.customer_id == "*":
        raise ContractError(
            "customer_id", "a clock tick goes to every partition: use `billstate clock tick`"
        )
    topic = topic_for(event.event_type)
    if not topic.readers:
        # Writing here would forge a service's output; nobody reads it to act on it anyway.
        raise ContractError(
            "event_type",
            f"{event.event_type} is written by {', '.join(topic.writers)} only, "
            f"to {topic.name}, which no service reads",
        )
    if expected_topic is not None and topic.name != expected_topic:
        # The services refuse an event on a topic that does not carry its type.
        raise ContractError(
            "event_type",
            f"{event.event_type} is not an event of {expected_topic} (it belongs on {topic.name})",
        )
    return event


@dataclass(frozen=True)
class Outgoing:
    """One record to produce, and where it came from (FILE:LINE or DLQ:PARTITION:OFFSET)."""

    origin: str
    topic: str
    event: Event
    value: bytes
    headers: Headers = ()

    @property
    def key(self) -> bytes:
        return self.event.customer_id.encode()

    def describe(self) -> str:
        e = self.event
        return f"{self.topic} key {e.customer_id} {e.event_type} {e.event_id}"


class Seen:
    """The event ids met so far in one run; a second copy is skipped, never sent twice."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[str, Event]] = {}

    def first_copy(self, event: Event, origin: str) -> tuple[str, bool] | None:
        """None for a new event id; else (origin of the first copy, whether it is equal)."""
        known = self._first.get(event.event_id)
        if known is None:
            self._first[event.event_id] = (origin, event)
            return None
        return known[0], known[1] == event


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


async def newest_sequences(kafka: Cluster, customers: Collection[str]) -> dict[str, int]:
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
