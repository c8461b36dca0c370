"""Read what a run produced from its topics, compare it with replay, and say it in plain words."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from billstate_shared.topics import (
    ACCESS_COMMANDS,
    ACCESS_EVENTS,
    BY_NAME,
    DLQ_TOPICS,
    EVENTS,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
    STATE,
)

DECISIONS = (EVENTS.name, ACCESS_COMMANDS.name, NOTICE_REQUESTS.name)
OUTPUTS = (*DECISIONS, STATE.name, ACCESS_EVENTS.name, NOTICE_DELIVERIES.name)


async def ends_now(bootstrap: str, topics: tuple[str, ...] = OUTPUTS) -> dict[TopicPartition, int]:
    """Where the topics end now: read after this to see only what a run produces."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(BY_NAME[t].partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def read_all(
    bootstrap: str, topics: list[str], since: dict[TopicPartition, int] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every record of the topics (after `since`, when given), in partition order, as JSON."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(BY_NAME[t].partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        starts = dict(since or {})
        for tp, offset in starts.items():
            if tp in ends:
                consumer.seek(tp, offset)
        remaining = {tp for tp, end in ends.items() if end > starts.get(tp, 0)}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    # A record that is not an event (bad bytes someone else wrote to a topic
                    # a service reads) is the DLQ's story, not a reason to lose the summary.
                    with contextlib.suppress(ValueError, TypeError):
                        event = json.loads(record.value)
                        if isinstance(event, dict):
                            found[tp.topic].append(event)
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def dlq_counts(bootstrap: str) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        counts: dict[str, int] = {}
        for topic in DLQ_TOPICS:
            tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
            begins = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            counts[topic.name] = sum(ends[tp] - begins[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()


def by_customer(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Event ids per customer, in order: what must match between the services and replay."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for event in events:
        grouped[event["customer_id"]].append(event["event_id"])
    return dict(grouped)


@dataclass
class RunRecords:
    """What a run wrote to the output topics (and its dead-letter counts), read back; with
    `replayed`, what `billstate replay` decides for the same input, to compare."""

    topics: dict[str, list[dict[str, Any]]]
    dlq: dict[str, int]
    replayed: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, bootstrap: str) -> RunRecords:
        topics = asyncio.run(read_all(bootstrap, list(OUTPUTS)))
        return cls(topics, asyncio.run(dlq_counts(bootstrap)))

    @classmethod
    async def read_since(cls, bootstrap: str, since: dict[TopicPartition, int]) -> RunRecords:
        return cls(await read_all(bootstrap, list(OUTPUTS), since), {})

    def decisions(self) -> list[dict[str, Any]]:
        return [e for name in DECISIONS for e in self.topics[name]]

    def agreement(self) -> tuple[int, list[str]]:
        """(decisions compared, customers whose decisions differ from replay's)."""
        ours = by_customer(self.decisions())
        theirs = by_customer([e for e in self.replayed if _is_decision(e)])
        differ = sorted(
            c
            for c in set(ours) | set(theirs)
            if sorted(ours.get(c, [])) != sorted(theirs.get(c, []))
        )
        return sum(len(v) for v in ours.values()), differ

    def latest_states(self) -> dict[str, dict[str, Any]]:
        states: dict[str, dict[str, Any]] = {}
        for event in self.topics[STATE.name]:
            states[event["customer_id"]] = event["data"]
        return states


def _is_decision(event: dict[str, Any]) -> bool:
    return event["event_type"] in {
        "collections.stage_entered",
        "access.suspend",
        "access.restore",
        "notice.requested",
    }


def summary(records: RunRecords, header: str, samples: int = 3) -> str:
    lines = [header, ""]
    states = records.latest_states()
    stages = Counter(s["stage"] for s in states.values())
    order = ["current", *sorted(k for k in stages if k != "current")]
    lines.append(
        "Customers per stage now: "
        + " · ".join(f"{stage} {stages[stage]}" for stage in order if stages[stage])
    )
    commands = records.topics[ACCESS_COMMANDS.name]
    suspends = [c for c in commands if c["event_type"] == "access.suspend"]
    restores = [c for c in commands if c["event_type"] == "access.restore"]
    applied = Counter(e["event_type"] for e in records.topics[ACCESS_EVENTS.name])
    suspended = sum(len(c["data"]["subscription_ids"]) for c in suspends)
    restored = sum(len(c["data"]["subscription_ids"]) for c in restores)
    lines.append(
        f"Suspend commands: {len(suspends)} ({suspended} subscriptions);"
        f" restore commands: {len(restores)} ({restored} subscriptions)"
    )
    lines.append(
        "Access applied by the provider: "
        + (", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(applied.items())) or "nothing")
    )
    notices = records.topics[NOTICE_REQUESTS.name]
    kinds = Counter((n["data"]["kind"], n["data"]["locale"]) for n in notices)
    per_kind: dict[str, list[str]] = defaultdict(list)
    for (kind, locale), count in sorted(kinds.items()):
        per_kind[kind].append(f"{locale} {count}")
    lines.append(f"Notices requested: {len(notices)}")
    for kind, parts in per_kind.items():
        lines.append(f"  {kind:<15} {', '.join(parts)}")
    deliveries = Counter(d["event_type"] for d in records.topics[NOTICE_DELIVERIES.name])
    lines.append(
        f"Deliveries: {deliveries.get('notice.delivered', 0)} delivered,"
        f" {deliveries.get('notice.failed', 0)} failed"
    )
    dead = {k: v for k, v in records.dlq.items() if v}
    lines.append(
        "Dead letters: "
        + (", ".join(f"{k} {v}" for k, v in sorted(dead.items())) if dead else "none")
    )
    if records.replayed:
        compared, differ = records.agreement()
        verdict = (
            "the same" if not differ else f"DIFFERENT for {len(differ)} customers: {differ[:5]}"
        )
        lines.append(
            f"Services vs `billstate replay` of the same input: {compared} decisions compared,"
            f" {verdict}"
        )
    lines.append("")
    for customer in pick_samples(records, samples):
        lines.extend(timeline(records, customer))
        lines.append("")
    return "\n".join(lines)


def pick_samples(records: RunRecords, count: int) -> list[str]:
    """Customers whose stories show the most: restored after suspension, still suspended,
    and one with a broken promise or failed payment."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for event in records.decisions():
        data = event["data"]
        per[event["customer_id"]][data.get("kind") or event["event_type"]] += 1
    states = records.latest_states()
    wanted: list[Callable[[str], bool]] = [
        lambda c: per[c]["access.restore"] > 0,
        lambda c: bool(states.get(c, {}).get("suspended_subscription_ids")),
        lambda c: per[c]["promise_broken"] + per[c]["payment_failed"] > 0,
    ]
    chosen: list[str] = []
    for test in wanted:
        for customer in sorted(per):
            if customer not in chosen and test(customer):
                chosen.append(customer)
                break
    return chosen[:count]


def timeline(records: RunRecords, customer: str) -> list[str]:
    state = records.latest_states().get(customer, {})
    lines = [f"{customer}: now {state.get('stage', '?')}"]
    day = ""
    # Replay's order is the order decisions were made in; the services spread them over three
    # topics, whose records have no common order (the agreement line says they are the same).
    source = [e for e in records.replayed if _is_decision(e)] or records.decisions()
    for event in source:
        if event["customer_id"] != customer:
            continue
        data = event["data"]
        kind = event["event_type"]
        if kind == "collections.stage_entered":
            day = data["as_of"]
            lines.append(f"  {day}  {data['previous']} -> {data['stage']}: {data['why']['text']}")
        elif kind in ("access.suspend", "access.restore"):
            verb = kind.split(".")[1]
            lines.append(f"  {day:<10}  {verb} {', '.join(data['subscription_ids'])}")
        else:
            facts = data["facts"]
            day = facts.get("as_of") or day
            when = (
                f" (suspension from {facts['suspension_on']})" if facts.get("suspension_on") else ""
            )
            lines.append(
                f"  {day:<10}  notice {data['kind']} to {data['audience']} [{data['locale']}]{when}"
            )
    return lines
