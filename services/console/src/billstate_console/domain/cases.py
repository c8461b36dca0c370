"""Operations read model, pure: escalation cases and their steps, parked suspensions, dead
letters, and the escalation pack a partner sends to Microsoft support."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from billstate_shared.contracts import (
    AccessDrift,
    AccessFailed,
    AccessParked,
    AccessUnparked,
    CaseAcknowledged,
    CaseResolved,
)
from billstate_shared.contracts.events import EventBase
from billstate_shared.runtime.dlq import read_headers

Status = Literal["open", "acknowledged", "resolved"]
STATUSES: tuple[Status, ...] = ("open", "acknowledged", "resolved")


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def version(event: EventBase) -> str:
    """What orders two events whatever order they arrived in: time, then id."""
    return f"{utc(event.occurred_at)}|{event.event_id}"


@dataclass(frozen=True)
class Case:
    """An `access.failed` or `access.drift`: a case, named by its event id."""

    case_id: str
    customer_id: str
    occurred_at: str
    kind: str  # the event type
    subscription_id: str
    provider: str
    command_id: str | None
    error: str
    raw: str  # the event's JSON, exchanges included


@dataclass(frozen=True)
class Note:
    """A person's step on a case."""

    event_id: str
    case_id: str
    customer_id: str
    step: Literal["acknowledged", "resolved"]
    by: str
    note: str
    occurred_at: str


@dataclass(frozen=True)
class Parking:
    """A suspension parked by a guard, or (`outcome` set) how it ended."""

    command_id: str
    customer_id: str
    occurred_at: str
    version: str
    subscription_ids: str = "[]"  # JSON list
    provider: str = ""
    guard: str = ""
    reason: str = ""
    outcome: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """One record of a `*.dlq` topic, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    reason: str
    field: str
    service: str
    event_type: str | None
    at: str | None
    customer_id: str | None
    key: str | None  # base64 of the original bytes
    value: str | None


def case_of(event: EventBase) -> Case | None:
    if isinstance(event, AccessFailed):
        d = event.data
        return Case(
            event.event_id, event.customer_id, utc(event.occurred_at), event.event_type,
            d.subscription_id, d.provider, d.command_id, d.error, event.model_dump_json(),
        )  # fmt: skip
    if isinstance(event, AccessDrift):
        d2 = event.data
        error = f"desired {d2.desired}, observed {d2.observed}"
        return Case(
            event.event_id, event.customer_id, utc(event.occurred_at), event.event_type,
            d2.subscription_id, d2.provider, None, error, event.model_dump_json(),
        )  # fmt: skip
    return None


def note_of(event: EventBase) -> Note | None:
    if isinstance(event, CaseAcknowledged | CaseResolved):
        step: Literal["acknowledged", "resolved"] = (
            "acknowledged" if isinstance(event, CaseAcknowledged) else "resolved"
        )
        d = event.data
        return Note(
            event.event_id, d.case_id, event.customer_id, step, d.by, d.note,
            utc(event.occurred_at),
        )  # fmt: skip
    return None


def parking_of(event: EventBase) -> Parking | None:
    if isinstance(event, AccessParked):
        d = event.data
        return Parking(
            d.command_id, event.customer_id, utc(event.occurred_at), version(event),
            json.dumps(list(d.subscription_ids)), d.provider, d.guard, d.reason,
        )  # fmt: skip
    if isinstance(event, AccessUnparked):
        u = event.data
        return Parking(
            u.command_id, event.customer_id, utc(event.occurred_at), version(event),
            reason=u.reason, outcome=u.outcome, by=u.by,
        )  # fmt: skip
    return None


def status(notes: list[Note]) -> Status:
    """Resolved once any step resolved it, whatever order the steps arrived in."""
    steps = {n.step for n in notes}
    if "resolved" in steps:
        return "resolved"
    return "acknowledged" if "acknowledged" in steps else "open"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def letter_of(
    topic: str,
    partition: int,
    offset: int,
    *,
    timestamp: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
) -> DeadLetter:
    """A DLQ record as the console keeps it; not a contract, so read by its headers only."""
    h = read_headers(tuple(headers or ()))
    customer = None if key is None else key.decode("utf-8", "replace")
    at = None if timestamp is None else datetime.fromtimestamp(timestamp / 1000, UTC).isoformat()
    return DeadLetter(
        topic, partition, offset, h.get("topic"), _int(h.get("partition")),
        _int(h.get("offset")), h.get("reason", ""), h.get("field", ""), h.get("service", ""),
        h.get("event_type") or None, at, customer, _b64(key), _b64(value),
    )  # fmt: skip


@dataclass(frozen=True)
class Pack:
    """What Microsoft support asks for about one failed or drifted subscription."""

    case_id: str
    customer_id: str
    tenant_id: str | None
    subscription_id: str
    command_id: str | None
    provider: str
    kind: str
    error: str
    occurred_at: str
    status: Status
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)


def pack(case: Case, notes: list[Note], tenant_id: str | None = None) -> Pack:
    exchanges = json.loads(case.raw)["data"].get("exchanges") or []
    return Pack(
        case.case_id, case.customer_id, tenant_id, case.subscription_id, case.command_id,
        case.provider, case.kind, case.error, case.occurred_at, status(notes), exchanges,
        [{"step": n.step, "by": n.by, "at": n.occurred_at, "note": n.note} for n in notes],
    )  # fmt: skip


def pack_text(p: Pack) -> str:
    """The pack as plain text, to paste into a support request."""
    lines = [
        f"Escalation {p.case_id} ({p.kind}, {p.status})",
        f"Customer: {p.customer_id}",
        f"Tenant: {p.tenant_id or 'not known'}",
        f"Subscription: {p.subscription_id}",
        f"Command: {p.command_id or '-'}",
        f"Provider: {p.provider}",
        f"When (UTC): {p.occurred_at}",
        f"Error: {p.error}",
        "",
        "Requests:",
    ]
    if not p.exchanges:
        lines.append("  no exchanges recorded")
    for x in p.exchanges:
        lines.append(f"  {x.get('at')} {x.get('method')} {x.get('path')} -> {x.get('status')}")
        lines.append(f"    MS-RequestId: {x.get('request_id') or '-'}")
        lines.append(f"    MS-CorrelationId: {x.get('correlation_id') or '-'}")
        if x.get("answer"):
            lines.append(f"    Answer: {x['answer']}")
    if p.notes:
        lines += ["", "Notes:"]
        lines += [f"  {n['at']} {n['step']} by {n['by']}: {n['note']}" for n in p.notes]
    return "\n".join(lines) + "\n"


def lag_per_topic(lag: dict[tuple[str, int], int]) -> dict[str, int]:
    """Records behind the end, summed over each topic's partitions."""
    total: dict[str, int] = {}
    for (topic, _partition), behind in lag.items():
        total[topic] = total.get(topic, 0) + behind
    return dict(sorted(total.items()))
