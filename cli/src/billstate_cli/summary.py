"""Read what a run produced from its topics, compare it with replay, and say it in plain words."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from billstate_shared.domain.ids import make_id
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
    # The inbound history the run was fed (for how each payment in flight ended).
    inbound: list[dict[str, Any]] = field(default_factory=list)

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


# The summary's last line: where to look at every customer after a run.
CONSOLE_HINT = "See every customer's timeline and why in the console: make console"


def summary(
    records: RunRecords, header: str, samples: int = 3, hint: str | None = CONSOLE_HINT
) -> str:
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
    applied = Counter(
        e["event_type"] for e in records.topics[ACCESS_EVENTS.name] if e["event_type"] in APPLIED
    )
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
            f"Services vs `billstate replay` of the same input: {compared} decisions compared"
            f" (stage changes, access commands, notice requests), {verdict}"
        )
    lines.append("")
    lines.extend(guards(records))
    lines.append("")
    lines.extend(exposure(records))
    lines.append("")
    for customer in pick_samples(records, samples):
        lines.extend(timeline(records, customer))
        lines.append("")
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _amounts(money: list[dict[str, Any]]) -> str:
    return ", ".join(f"{m['currency']} {Decimal(m['amount']):,.2f}" for m in money)


def exposure(records: RunRecords, largest: int = 5) -> list[str]:
    """What Microsoft has billed the partner for periods customers have not paid for, at the
    end of the run: the total per stage (per currency) and the largest exposures."""
    states = records.latest_states()
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    exposed: list[tuple[Decimal, str]] = []
    for customer, state in states.items():
        money = state.get("exposure") or []
        for m in money:
            totals[state["stage"]][m["currency"]] += Decimal(m["amount"])
        if money:
            # Currencies are never converted: a customer ranks by its largest amount.
            exposed.append((max(Decimal(m["amount"]) for m in money), customer))
    lines = ["Exposure to Microsoft (billed to the partner for periods customers have not paid)"]
    if not exposed:
        return [*lines, "  none"]
    order = ["current", *sorted(k for k in totals if k != "current")]
    for stage in (s for s in order if s in totals):
        money = [{"currency": c, "amount": a} for c, a in sorted(totals[stage].items())]
        count = sum(1 for s in states.values() if s["stage"] == stage and s.get("exposure"))
        lines.append(f"  {stage:<15} {_amounts(money)} ({count} customers)")
    lines.append(f"  Largest {min(largest, len(exposed))}:")
    for _, customer in sorted(exposed, key=lambda e: (-e[0], e[1]))[:largest]:
        state = states[customer]
        lines.append(f"    {customer:<12} {state['stage']:<15} {_amounts(state['exposure'])}")
    return lines


APPLIED = ("access.suspended", "access.restored", "access.failed", "access.drift")

# A suspension's why ends with what it waited for, e.g. "Postponed until today: 2026-02-28 is
# a Saturday; 2026-03-01 is a Sunday." or "... payment PAY-1 of USD 5.00 expected by ...".
_POSTPONED = "Postponed until today: "
_CLOSED = re.compile(r"^(\d{4}-\d{2}-\d{2}) is ")
_PAYMENT = re.compile(r"^payment (\S+) of ")
ENDINGS = ("arrived", "failed", "lapsed", "still in flight")


def _waited(why: str) -> list[str]:
    """The reasons a suspension waited for, as its why names them."""
    if _POSTPONED not in why:
        return []
    return why.split(_POSTPONED, 1)[1].rstrip(".").split("; ")


def guards(records: RunRecords) -> list[str]:
    """The guards at work, in plain words: the engine's (business days, payments in flight;
    decided in collections, so replay makes the same) and the actuator's (the brake and the
    stale payment feed at access-control; wall clock, so not in replay)."""
    entered = [
        e
        for e in records.topics[EVENTS.name]
        if e["event_type"] == "collections.stage_entered" and _waited(e["data"]["why"]["text"])
    ]
    return ["Guards", _calendar(entered), *_in_flight(records, entered), *_parked(records)]


def _calendar(entered: list[dict[str, Any]]) -> str:
    """Suspensions the business calendar moved, with an example (a holiday if there is one)."""
    moved = [
        (e, closed)
        for e in entered
        if (closed := [r for r in _waited(e["data"]["why"]["text"]) if _CLOSED.match(r)])
    ]
    line = f"  Suspensions postponed by the business calendar: {len(moved)}"
    if not moved:
        return line
    e, closed = next(((e, c) for e, c in moved if any("holiday" in r for r in c)), moved[0])
    return (
        f"{line}, e.g. {e['customer_id']} from {closed[0][:10]} to {e['data']['as_of']}:"
        f" {'; '.join(closed)}"
    )


def _held_payments(
    records: RunRecords, entered: list[dict[str, Any]]
) -> tuple[dict[str, str], set[str]]:
    """Payments in flight that held a due suspension back (payment id -> customer), from the
    state records' `waiting` and the suspensions' whys; and those a suspension followed."""
    held: dict[str, str] = {}
    for state in records.topics[STATE.name]:
        if match := _PAYMENT.match(state["data"].get("waiting") or ""):
            held.setdefault(match.group(1), state["customer_id"])
    suspended_after: set[str] = set()
    for e in entered:
        for reason in _waited(e["data"]["why"]["text"]):
            if match := _PAYMENT.match(reason):
                held.setdefault(match.group(1), e["customer_id"])
                suspended_after.add(match.group(1))
    return held, suspended_after


def _endings(inbound: list[dict[str, Any]], held: dict[str, str]) -> dict[str, tuple[str, str]]:
    """How each held payment ended in the input (one of ENDINGS), and its expected_by."""
    expected: dict[str, str] = {}
    ended: dict[str, str] = {}
    kinds = {"payment.received": "arrived", "payment.failed": "failed"}
    for event in inbound:
        payment_id = event["data"].get("payment_id")
        if payment_id not in held:
            continue
        if event["event_type"] == "payment.pending":
            expected[payment_id] = event["data"]["expected_by"]
        elif event["event_type"] in kinds:
            ended.setdefault(payment_id, kinds[event["event_type"]])
    last_day = max((e["occurred_at"][:10] for e in inbound), default="")
    return {
        p: (ended.get(p) or ("lapsed" if expected.get(p, "~") < last_day else "still in flight"),
            expected.get(p, "?"))
        for p in held
    }  # fmt: skip


def _in_flight(records: RunRecords, entered: list[dict[str, Any]]) -> list[str]:
    """Payments in flight that held a suspension back, and how each ended."""
    held, suspended_after = _held_payments(records, entered)
    line = (
        f"  Suspensions held back by a payment in flight: {len(held)}"
        f" ({len(set(held.values()))} customers)"
    )
    if not held or not records.inbound:
        return [line]
    endings = _endings(records.inbound, held)
    count = Counter(ending for ending, _ in endings.values())
    never = [p for p, (ending, _) in endings.items() if ending == "arrived"]
    never = [p for p in never if p not in suspended_after]
    lines = [
        line + ": " + ", ".join(f"{count[o]} {o}" for o in ENDINGS if count[o]),
        (
            f"    paid, so never suspended: {len(never)}; suspended once the wait ended"
            f" (the why names the payment): {len(suspended_after)}"
        ),
    ]
    if never:
        example = min(never)
        lines.append(
            f"    e.g. {held[example]}: payment {example} expected by {endings[example][1]},"
            " arrived in time; no suspension"
        )
    return lines


def _ordinal(parked: dict[str, Any]) -> int:
    """The brake's count in a parked reason ("6th suspension in 24 hours ..."), else 0."""
    match = re.match(r"(\d+)", parked["data"]["reason"])
    return int(match.group(1)) if match else 0


def _parked(records: RunRecords) -> list[str]:
    """What access-control's guards parked, the approval notices, and how each ended."""
    events = records.topics[ACCESS_EVENTS.name]
    parked: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["event_type"] == "access.parked":
            parked.setdefault(e["data"]["command_id"], e)
    ends = {
        e["data"]["command_id"]: e["data"]["outcome"]
        for e in events
        if e["event_type"] == "access.unparked" and e["data"]["command_id"] in parked
    }
    # By batch id: a notice sent again after a crash is the same batch.
    batches = list(
        {
            e["data"]["batch_id"]: e["data"]
            for e in events
            if e["event_type"] == "access.approval_needed"
        }.values()
    )
    by_guard = Counter(e["data"]["guard"] for e in parked.values())
    line = (
        f"  Suspensions parked at access-control: {by_guard['brake']} by the brake,"
        f" {by_guard['stale_payment_feed']} by a silent payment feed"
    )
    if parked:
        first = min(parked.values(), key=lambda e: (e["occurred_at"], _ordinal(e)))
        line += f"; e.g. {first['customer_id']}: {first['data']['reason']}"
    delivered = {
        d["data"]["notice_id"]
        for d in records.topics[NOTICE_DELIVERIES.name]
        if d["event_type"] == "notice.delivered"
    }
    told = {make_id("ntc", "approval_needed", b["batch_id"]) for b in batches}
    outcome = Counter(ends.values())
    cancelled = sorted({parked[c]["customer_id"] for c, o in ends.items() if o == "cancelled"})
    # An approved suspension applied: an access.suspended with the parked command's id.
    applied = {
        e["data"]["command_id"]
        for e in events
        if e["event_type"] == "access.suspended" and e["data"]["command_id"] in parked
    }
    sizes = ", ".join(str(b["count"]) for b in batches) or "none"
    paid_first = f" ({', '.join(cancelled[:5])})" if cancelled else ""
    return [
        line,
        (
            f"  Approval notices: {len(batches)} (batches of {sizes}),"
            f" {len(told & delivered)} delivered to staff"
        ),
        (
            f"  Parked suspensions approved: {outcome['approved']} ({len(applied)} then applied);"
            f" cancelled because the customer paid first: {outcome['cancelled']}{paid_first};"
            f" rejected: {outcome['rejected']}; still waiting: {len(parked) - len(ends)}"
        ),
    ]


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
