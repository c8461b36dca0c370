"""Parked suspensions and the operator's decision on each (`access.approve` / `access.reject`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from billstate_shared.contracts import (
    AccessApprove,
    AccessParked,
    AccessReject,
    AccessUnparked,
    ContractError,
    decode,
)
from billstate_shared.operator.holds import OptionRefused, operator_id
from billstate_shared.topics import ACCESS_EVENTS

Verb = Literal["approve", "reject"]
VERBS: tuple[Verb, ...] = ("approve", "reject")
EVENT_TYPE: dict[Verb, str] = {"approve": "access.approve", "reject": "access.reject"}

# The contract's field paths, as the options an operator typed.
OPTION_OF = {"data.by": "--by", "data.reason": "--reason", "customer_id": "--customer"}


class Positioned(Protocol):
    """A record read from a topic: where it is and its bytes."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


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


def open_parked(records: Sequence[Positioned]) -> Pending:
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


def decision_rules(by: str, reason: str) -> None:
    """Beyond the contract (Label, Text): what an operator types into an audit trail."""
    operator_id(by)
    if not reason.strip():
        raise OptionRefused("--reason", "must say why")


def build_decision(
    verb: Verb, parked: Parked, by: str, reason: str, now: datetime
) -> AccessApprove | AccessReject:
    """The checked `access.approve` / `access.reject` for one parked command, keyed (by its
    envelope's customer_id) like the parked command; raises OptionRefused naming the option
    the contract refused (`--by (data.by)`, `--reason (data.reason)`)."""
    return build_decision_for(verb, parked.customer_id, parked.command_id, by, reason, now=now)


def build_decision_for(
    verb: Verb, customer: str, command_id: str, by: str, reason: str, *, now: datetime
) -> AccessApprove | AccessReject:
    """`build_decision` from the parked command's customer and id alone (what a read model
    keeps); the event id is `<verb>-<command_id>`, so a repeated decision is applied once."""
    decision_rules(by, reason)
    envelope = {
        "event_id": f"{verb}-{command_id}",
        "event_type": EVENT_TYPE[verb],
        "schema_version": 1,
        "occurred_at": now.isoformat(),
        "customer_id": customer,
        "data": {"command_id": command_id, "by": by, "reason": reason},
    }
    try:
        event = decode(json.dumps(envelope, ensure_ascii=False))
    except ContractError as err:
        option = OPTION_OF.get(err.field, f"command {command_id}")
        raise OptionRefused(option, err.reason, err.field) from None
    assert isinstance(event, AccessApprove | AccessReject)
    return event
