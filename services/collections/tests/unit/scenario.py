"""A small test DSL: compact inbound events with deterministic ids, run through the `Driver`
(invoicing's aging and collections' engine in-process, as `billstate replay` runs them).

    s = Story()
    out = run(
        s.upsert(subs=["sub-1"]),
        s.issue("INV-1", "100.00", "2026-11-01"),
        s.days("2026-10-25", "2026-11-30"),
    )
    assert out.stages() == [(date(2026, 11, 2), "overdue"), ...]

Every event goes through `decode(json)`, exactly as a line of `billstate replay` would, so
what the tests feed is what a partner's bus may send. Ids are derived from the story (kind,
invoice or payment id, a per-story sequence), never from the clock or randomness, so a
story told twice gives the same events and, by rule 11, the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from driver import Driver

from billstate_collections.domain.book import CURRENT, Book
from billstate_shared.contracts import (
    AccessRestore,
    AccessSuspend,
    Event,
    EventBase,
    NoticeRequested,
    StageEntered,
    decode,
    encode,
)
from billstate_shared.domain.policy import Policy
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[4]
STANDARD_PATH = ROOT / "policies" / "standard.yaml"
TAIPEI = ZoneInfo("Asia/Taipei")
CUSTOMER = "contoso"

DateLike = date | str
Amount = str | int | Decimal


def standard() -> Policy:
    """policies/standard.yaml, the policy POLICY.md shows."""
    return load_policy(STANDARD_PATH)


def make_policy(**overrides: Any) -> Policy:
    """The standard policy with top-level keys replaced (file spelling: `policy`, `stages`...)."""
    data = yaml.safe_load(STANDARD_PATH.read_text(encoding="utf-8"))
    data.update(overrides)
    return Policy.model_validate(data, by_alias=True)


def stage_index(policy: Policy, name: str) -> int:
    """Position of stage `name` in a book (0 = first stage, -1 = `current`); KeyError if the
    policy has no such stage."""
    if name == "current":
        return CURRENT
    for index, stage in enumerate(policy.stages):
        if stage.name == name:
            return index
    raise KeyError(f"policy {policy.name!r} v{policy.version} has no stage {name!r}")


def d(value: DateLike) -> date:
    """A date from a date or `YYYY-MM-DD`."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def rfc3339(moment: datetime) -> str:
    """UTC, with an explicit offset: `2026-10-31T15:59:00+00:00`."""
    return moment.astimezone(UTC).isoformat()


def _money(amount: Amount) -> str:
    text = str(amount)
    Decimal(text)  # refuse what is not a decimal early, with the caller in the traceback
    return text


def _flatten(items: Iterable[Event | Iterable[Event]]) -> list[Event]:
    flat: list[Event] = []
    for item in items:
        if isinstance(item, EventBase):  # a model is iterable too: test it first
            flat.append(item)
        else:
            flat.extend(item)
    return flat


@dataclass
class Story:
    """Builds one customer's inbound events; `now` advances with every tick.

    Inbound events happen at `now` (the last tick's moment, or the start) unless `at=` says
    otherwise, so payments sent after a tick are "later that day".
    """

    customer: str = CUSTOMER
    zone: ZoneInfo = TAIPEI
    now: datetime = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
    hour: int = 9  # local hour of a tick given as a date
    _seq: int = field(default=0, repr=False)

    # ---- envelope ----------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _event(
        self,
        event_type: str,
        data: dict[str, Any],
        event_id: str,
        *,
        at: datetime | None = None,
        customer: str | None = None,
    ) -> Event:
        envelope = {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": rfc3339(at or self.now),
            "customer_id": customer or self.customer,
            "data": data,
        }
        return decode(json.dumps(envelope))

    # ---- billing bus -------------------------------------------------------------------

    def upsert(
        self,
        *,
        tags: Sequence[str] = (),
        subs: Sequence[str] = (),
        locale: str = "en",
        at: datetime | None = None,
    ) -> Event:
        data = {
            "name": f"{self.customer} Ltd.",
            "locale": locale,
            "billing_email": "ap@customer.example",
            "partner_contact_email": "am@partner.example",
            "tags": list(tags),
            "subscription_ids": list(subs),
        }
        return self._event(
            "customer.upserted", data, f"{self.customer}:upsert:{self._next()}", at=at
        )

    def issue(
        self,
        invoice_id: str,
        amount: Amount,
        due_on: DateLike,
        *,
        currency: str = "USD",
        issued_on: DateLike | None = None,
        subs: Sequence[str] | None = None,
        at: datetime | None = None,
    ) -> Event:
        due = d(due_on)
        issued = d(issued_on) if issued_on is not None else due - timedelta(days=30)
        data = {
            "invoice_id": invoice_id,
            "currency": currency,
            "amount": _money(amount),
            "issued_on": issued.isoformat(),
            "due_on": due.isoformat(),
            "subscription_ids": list(subs) if subs is not None else [f"sub-{invoice_id}"],
        }
        return self._event("invoice.issued", data, f"{invoice_id}:issued", at=at)

    def adjust(
        self,
        invoice_id: str,
        delta: Amount,
        *,
        reason: str = "credit note",
        at: datetime | None = None,
    ) -> Event:
        data = {"invoice_id": invoice_id, "amount_delta": _money(delta), "reason": reason}
        return self._event("invoice.adjusted", data, f"{invoice_id}:adjusted:{self._next()}", at=at)

    def void(self, invoice_id: str, *, at: datetime | None = None) -> Event:
        data = {"invoice_id": invoice_id, "reason": "issued in error"}
        return self._event("invoice.voided", data, f"{invoice_id}:voided", at=at)

    def pay(
        self,
        payment_id: str,
        amount: Amount,
        *,
        currency: str = "USD",
        invoice_id: str | None = None,
        at: datetime | None = None,
    ) -> Event:
        data: dict[str, Any] = {
            "payment_id": payment_id,
            "currency": currency,
            "amount": _money(amount),
        }
        if invoice_id is not None:
            data["invoice_id"] = invoice_id
        return self._event("payment.received", data, f"{payment_id}:received", at=at)

    def reverse(self, payment_id: str, *, at: datetime | None = None) -> Event:
        data = {"payment_id": payment_id, "reason": "chargeback"}
        return self._event("payment.reversed", data, f"{payment_id}:reversed", at=at)

    def fail(
        self,
        invoice_id: str | None = None,
        *,
        will_retry: bool = True,
        payment_id: str | None = None,
        at: datetime | None = None,
    ) -> Event:
        data: dict[str, Any] = {"reason": "card declined", "will_retry": will_retry}
        if invoice_id is not None:
            data["invoice_id"] = invoice_id
        if payment_id is not None:
            data["payment_id"] = payment_id
        return self._event("payment.failed", data, f"{self.customer}:failed:{self._next()}", at=at)

    def pending(
        self,
        payment_id: str,
        amount: Amount,
        expected_by: DateLike,
        *,
        currency: str = "USD",
        at: datetime | None = None,
    ) -> Event:
        data = {
            "payment_id": payment_id,
            "amount": _money(amount),
            "currency": currency,
            "expected_by": d(expected_by).isoformat(),
        }
        return self._event("payment.pending", data, f"{payment_id}:pending", at=at)

    # ---- operator control --------------------------------------------------------------

    def hold(
        self,
        hold_id: str,
        kind: str = "manual",
        *,
        invoice_id: str | None = None,
        amount: Amount | None = None,
        until: DateLike | None = None,
        at: datetime | None = None,
    ) -> Event:
        data: dict[str, Any] = {"hold_id": hold_id, "kind": kind, "reason": "test", "by": "ops"}
        if invoice_id is not None:
            data["invoice_id"] = invoice_id
        if amount is not None:
            data["amount"] = _money(amount)
        if until is not None:
            data["until"] = d(until).isoformat()
        return self._event("hold.placed", data, f"{hold_id}:placed", at=at)

    def dispute(self, hold_id: str, invoice_id: str, amount: Amount | None = None) -> Event:
        return self.hold(hold_id, "dispute", invoice_id=invoice_id, amount=amount)

    def promise(self, hold_id: str, until: DateLike) -> Event:
        return self.hold(hold_id, "promise_to_pay", until=until)

    def release(self, hold_id: str, *, at: datetime | None = None) -> Event:
        data = {"hold_id": hold_id, "reason": "test", "by": "ops"}
        return self._event("hold.released", data, f"{hold_id}:released", at=at)

    # ---- the helpdesk ------------------------------------------------------------------

    def support(
        self, ticket_id: str, topic: str = "payment_claimed", *, at: datetime | None = None
    ) -> Event:
        data = {"ticket_id": ticket_id, "topic": topic, "channel": "email"}
        return self._event("support.requested", data, f"{ticket_id}:requested", at=at)

    def resolve(self, ticket_id: str, *, at: datetime | None = None) -> Event:
        data = {"ticket_id": ticket_id, "resolution": "answered"}
        return self._event("support.resolved", data, f"{ticket_id}:resolved", at=at)

    # ---- the clock ---------------------------------------------------------------------

    def tick(self, when: DateLike | datetime) -> Event:
        """A clock tick: a date means `hour` o'clock local; a datetime or RFC 3339 text is
        taken as is. Later inbound events default to this moment."""
        if isinstance(when, datetime):
            moment = when
        elif isinstance(when, str) and "T" in when:
            moment = datetime.fromisoformat(when)
        else:
            moment = datetime.combine(d(when), time(self.hour), tzinfo=self.zone)
        moment = moment.astimezone(UTC)
        self.now = max(self.now, moment)
        return self._event("clock.tick", {}, f"tick-{rfc3339(moment)}", at=moment, customer="*")

    def days(self, first: DateLike, last: DateLike) -> list[Event]:
        """A tick on every date from `first` to `last`, inclusive."""
        start, end = d(first), d(last)
        return [self.tick(start + timedelta(days=n)) for n in range((end - start).days + 1)]


def tick(when: DateLike | datetime, zone: ZoneInfo = TAIPEI) -> Event:
    """A clock tick outside any story (ticks are for every customer)."""
    return Story(zone=zone).tick(when)


# ---- running ----------------------------------------------------------------------------


@dataclass
class Run:
    """A driver and everything it produced so far; `feed` continues it."""

    policy: Policy
    driver: Driver
    outputs: list[EventBase] = field(default_factory=list)

    def feed(self, *events: Event | Iterable[Event]) -> list[EventBase]:
        """Feed more events; return (and record) what they produced."""
        new: list[EventBase] = []
        for event in _flatten(events):
            # The cores hand back light forms; the tests read validated contract models.
            new.extend(
                p if isinstance(p, EventBase) else p.model() for p in self.driver.feed(event)
            )
        self.outputs.extend(new)
        return new

    def book(self, customer: str = CUSTOMER) -> Book:
        return self.driver.books[customer]

    def of(self, *event_types: str, customer: str | None = None) -> list[EventBase]:
        return [
            e
            for e in self.outputs
            if e.event_type in event_types and (customer is None or e.customer_id == customer)
        ]

    def entered(self, customer: str | None = None) -> list[StageEntered]:
        return [
            e
            for e in self.of("collections.stage_entered", customer=customer)
            if isinstance(e, StageEntered)
        ]

    def stages(self, customer: str | None = None) -> list[tuple[date, str]]:
        """(as_of, stage) of every stage entered, in order."""
        return [(e.data.as_of, e.data.stage) for e in self.entered(customer)]

    def notices(
        self, kind: str | None = None, customer: str | None = None
    ) -> list[NoticeRequested]:
        return [
            e
            for e in self.of("notice.requested", customer=customer)
            if isinstance(e, NoticeRequested) and (kind is None or e.data.kind == kind)
        ]

    def suspends(self, customer: str | None = None) -> list[AccessSuspend]:
        return [
            e for e in self.of("access.suspend", customer=customer) if isinstance(e, AccessSuspend)
        ]

    def restores(self, customer: str | None = None) -> list[AccessRestore]:
        return [
            e for e in self.of("access.restore", customer=customer) if isinstance(e, AccessRestore)
        ]

    def encoded(self) -> bytes:
        """Every output as `billstate replay` writes it: one encoded event per line."""
        return b"".join(encode(e) + b"\n" for e in self.outputs)


def run(*events: Event | Iterable[Event], policy: Policy | None = None) -> Run:
    """Run events (or lists of events) through a fresh `Driver`."""
    chosen = policy or standard()
    result = Run(chosen, Driver(chosen))
    result.feed(*events)
    return result


def as_of_of(event: EventBase) -> date | None:
    """The business date an output belongs to (stage_entered and notices carry one)."""
    if isinstance(event, StageEntered):
        return event.data.as_of
    if isinstance(event, NoticeRequested):
        value = event.data.facts.get("as_of")
        return date.fromisoformat(value) if isinstance(value, str) else None
    return None
