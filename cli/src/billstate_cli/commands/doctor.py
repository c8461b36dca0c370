"""`billstate doctor`: check a live installation (topics, consumer groups, clock, a round-trip)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from billstate_cli.commands.clock import _interval
from billstate_invoicing.domain.clock import span
from billstate_shared.errors import BillstateError
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.settings import ServiceSettings
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import (
    CATALOG,
    CLOCK,
    CUSTOMERS,
    INVOICES,
    STATE,
    group_inputs,
)

# The services whose consumer groups must be there; each reads its group id from
# `BILLSTATE_<SERVICE>_CONSUMER_GROUP`, default its name (each service's config.py).
SERVICES = ("invoicing", "collections", "access-control", "notifications", "console")
# The console appends its store's generation to its group id: `console-<generation>`.
SUFFIXED = frozenset({"console"})
# The customer the round-trip writes to: reserved, documented in docs/operations.md.
CUSTOMER = "billstate-doctor"
# The clock's default interval is 15 minutes (`billstate clock run --every`): two missed.
CLOCK_AGE = timedelta(minutes=30)
MAX_LAG = 1000
TIMEOUT = 60.0
# How long reading one partition of the compacted state topic may take.
READ_SECONDS = 30.0


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it holds, and why or what to do."""

    name: str
    ok: bool
    detail: str


def good(name: str, detail: str) -> Check:
    return Check(name, ok=True, detail=detail)


def fail(name: str, detail: str) -> Check:
    return Check(name, ok=False, detail=detail)


def render(checks: Iterable[Check]) -> list[str]:
    return [f"{'OK  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in checks]


def exit_code(checks: Iterable[Check]) -> int:
    return 0 if all(c.ok for c in checks) else 1


def lag(end: int, begin: int, committed: int | None) -> int:
    """Records a group has still to read on one partition; without a committed offset it
    starts at the beginning still kept (what retention deleted is no longer there to read)."""
    return max(end - max(committed if committed is not None else begin, begin), 0)


def group_check(
    service: str, group: str | None, members: int, lags: dict[str, int], max_lag: int
) -> Check:
    name = f"group {service}"
    if group is None:
        return fail(
            name,
            "no such consumer group on the cluster: has the service ever run here?"
            f" Deploy {service}, or name its group with --group {service}=GROUP",
        )
    if members == 0:
        return fail(
            name,
            f"consumer group {group} has no members: is the {service} workload running?"
            f" (kubectl get pods -l app.kubernetes.io/name={service})",
        )
    behind = {topic: n for topic, n in sorted(lags.items()) if n > max_lag}
    if behind:
        where = ", ".join(f"{topic} {n}" for topic, n in behind.items())
        return fail(
            name,
            f"consumer group {group} is behind by more than {max_lag} records on {where}:"
            f" is {service} stuck? (docs/operations.md, A stuck consumer)",
        )
    total = sum(lags.values())
    return good(name, f"{group}: {members} member(s), {total} records behind")


def clock_check(newest: datetime | None, now: datetime, max_age: timedelta) -> Check:
    if newest is None:
        return fail(
            "clock",
            f"{CLOCK.name} holds no tick: is the clock workload running? (billstate clock run)",
        )
    age = now - newest
    if age > max_age:
        return fail(
            "clock",
            f"the clock has not ticked since {newest.isoformat(timespec='seconds')}"
            f" ({span(age)} ago, more than {span(max_age)}): is the clock workload running?",
        )
    return good("clock", f"last tick {newest.isoformat(timespec='seconds')} ({span(age)} ago)")


def probe_events(customer: str, day: date) -> list[dict[str, Any]]:
    """The round-trip's customer, invoice and its void: ids and times from the day only,
    so a second run on the same day sends the same records again (duplicates, no change).
    The e-mail addresses are in `.invalid` (RFC 2606): nothing is ever delivered to them."""
    t0 = datetime(day.year, day.month, day.day, tzinfo=UTC)
    stamp = day.isoformat()
    invoice = f"{customer}-{stamp}"

    def event(kind: str, at: int, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": f"{customer}-{stamp}-{kind.replace('.', '-')}",
            "event_type": kind,
            "schema_version": 1,
            "occurred_at": (t0 + timedelta(seconds=at)).isoformat(),
            "customer_id": customer,
            "data": data,
        }

    return [
        event(
            "customer.upserted",
            0,
            {
                "name": "billstate doctor (test customer)",
                "locale": "en",
                "billing_email": "nobody@billstate-doctor.invalid",
                "partner_contact_email": "nobody@billstate-doctor.invalid",
                "tags": ["billstate-doctor"],
                "subscription_ids": [],
                "timezone": None,
            },
        ),
        event(
            "invoice.issued",
            1,
            {
                "invoice_id": invoice,
                "currency": "USD",
                "amount": "1.00",
                "issued_on": stamp,
                "due_on": (day + timedelta(days=30)).isoformat(),
                "subscription_ids": [],
                "period_start": None,
                "period_end": None,
            },
        ),
        # Voided, not paid: a payment record would tell access-control's stale-feed guard
        # that the partner's payment feed is alive when it may not be.
        event(
            "invoice.voided",
            2,
            {"invoice_id": invoice, "reason": "billstate doctor: a test invoice, voided at once"},
        ),
    ]


def settled(state: dict[str, Any] | None, voided_at: str) -> bool:
    """Whether a `collections.state` record is the one after the void, with nothing open."""
    if state is None or _at(state.get("occurred_at")) != _at(voided_at):
        return False
    data = state.get("data") or {}
    return not data.get("overdue") and not data.get("suspended_subscription_ids")


def _at(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def groups_of(services: Iterable[str], given: dict[str, str]) -> dict[str, str]:
    """Each service's group id: --group, else its service's variable, else its name."""
    found = {}
    for service in services:
        env = f"BILLSTATE_{service.replace('-', '_').upper()}_CONSUMER_GROUP"
        found[service] = given.get(service) or os.environ.get(env) or service
    return found


def _group_arg(text: str) -> tuple[str, str]:
    service, _, group = text.partition("=")
    if service not in SERVICES or not group:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not SERVICE=GROUP with SERVICE one of {', '.join(SERVICES)}"
        )
    return service, group


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser(
        "doctor", help="check a live installation: topics, consumer groups, clock, a round-trip"
    )
    doctor.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    doctor.add_argument(
        "--max-lag", type=int, default=MAX_LAG, help=f"records a group may be behind ({MAX_LAG})"
    )
    doctor.add_argument(
        "--max-clock-age",
        type=_interval,
        default=CLOCK_AGE,
        help="how old the newest tick may be, e.g. 30m (default: 30m, two 15m intervals)",
    )
    doctor.add_argument(
        "--no-round-trip",
        action="store_true",
        help="write nothing (read-only credentials): skip the test customer's round-trip",
    )
    doctor.add_argument(
        "--timeout", type=float, default=TIMEOUT, help="seconds the round-trip may take (60)"
    )
    doctor.add_argument(
        "--customer", default=CUSTOMER, help=f"the round-trip's customer id ({CUSTOMER})"
    )
    doctor.add_argument(
        "--group",
        type=_group_arg,
        action="append",
        default=[],
        metavar="SERVICE=GROUP",
        help="a service's consumer group (default: BILLSTATE_<SERVICE>_CONSUMER_GROUP, else"
        " the service's name)",
    )
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or "the broker"
    try:
        settings = ServiceSettings()  # bootstrap and security from KAFKA_* variables
        bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
        doctor = Doctor(bootstrap, settings.kafka_auth, groups_of(SERVICES, dict(args.group)))
        checks = asyncio.run(doctor.run(args))
    except ValidationError as err:  # a KAFKA_* setting refused (pydantic wraps ours)
        why = "; ".join(str(e["msg"]) for e in err.errors())
        checks = [fail("kafka", f"the KAFKA_* settings are refused: {why}")]
    except (KafkaError, BillstateError) as err:
        checks = [
            fail(
                "kafka",
                f"cannot check {bootstrap}: {err}; check --bootstrap and the KAFKA_* settings",
            )
        ]
    print("\n".join(render(checks)))
    return exit_code(checks)


class Doctor:
    def __init__(self, bootstrap: str, auth: KafkaAuth, groups: dict[str, str]) -> None:
        self.bootstrap, self.auth, self.groups = bootstrap, auth, groups
        self.options = {"bootstrap_servers": bootstrap, **client_options(auth)}

    async def run(self, args: argparse.Namespace) -> list[Check]:
        # aiokafka's clients are made inside the running loop.
        self.admin = AIOKafkaAdminClient(client_id="billstate-doctor", **self.options)
        await self.admin.start()
        try:
            self.consumer = AIOKafkaConsumer(enable_auto_commit=False, **self.options)
            await self.consumer.start()
            try:
                checks = [await self.topics()]
                if not checks[0].ok:
                    return checks  # the rest reads those topics
                checks += await self.consumer_groups(args.max_lag)
                checks.append(await self.clock(args.max_clock_age))
                if not args.no_round_trip:
                    checks.append(await self.round_trip(args.customer, args.timeout))
                return checks
            finally:
                await self.consumer.stop()
        finally:
            await self.admin.close()

    async def topics(self) -> Check:
        # A dry run creates nothing, so the replication factor is never used: given, the
        # doctor's KafkaUser needs no cluster-wide Describe to count the brokers.
        report = await apply_topics(
            self.bootstrap, CATALOG, dry_run=True, auth=self.auth, replication_factor=1
        )
        if report.created:
            missing = ", ".join(report.created[:5]) + (" ..." if len(report.created) > 5 else "")
            return fail(
                "topics",
                f"{len(report.created)} catalog topics missing ({missing}):"
                " run `billstate topics apply` (or apply the KafkaTopic resources)",
            )
        if report.drift:
            return fail(
                "topics",
                "; ".join(str(d) for d in report.drift)
                + ": fix it deliberately (`billstate topics apply` reports the same drift)",
            )
        return good("topics", f"all {len(CATALOG)} catalog topics, partitions and configs")

    async def consumer_groups(self, max_lag: int) -> list[Check]:
        known = [g[0] for g in await self.admin.list_consumer_groups()]
        checks = []
        for service, wanted in self.groups.items():
            if service in SUFFIXED:
                candidates = sorted(g for g in known if g.startswith(f"{wanted}-"))
            else:
                candidates = [wanted] if wanted in known else []
            group, members = None, 0
            for candidate in candidates:
                count = await self._members(candidate)
                if group is None or count > members:
                    group, members = candidate, count
            lags = await self._lags(service, group) if group is not None and members else {}
            checks.append(group_check(service, group, members, lags, max_lag))
        return checks

    async def _members(self, group: str) -> int:
        count = 0
        for response in await self.admin.describe_consumer_groups([group]):
            for described in response.groups:
                error, _name, _state, _protocol_type, _protocol, members = described[:6]
                if error == 0:
                    count += len(members)
        return count

    async def _lags(self, service: str, group: str) -> dict[str, int]:
        tps = [
            TopicPartition(t.name, p) for t in group_inputs(service) for p in range(t.partitions)
        ]
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group)
        lags: dict[str, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            lags[tp.topic] = lags.get(tp.topic, 0) + lag(ends[tp], begins[tp], offset)
        return lags

    async def clock(self, max_age: timedelta) -> Check:
        # The topic stamps the time the broker took each tick (LogAppendTime): the newest
        # record's timestamp is when the clock last ticked, whatever the tick says.
        return clock_check(
            await self._newest(CLOCK.name, CLOCK.partitions), datetime.now(UTC), max_age
        )

    async def _newest(self, topic: str, partitions: int) -> datetime | None:
        """The greatest record timestamp among the last records of every partition."""
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        last = [tp for tp in tps if ends[tp] > begins[tp]]
        newest: datetime | None = None
        if not last:
            return None
        self.consumer.assign(last)
        for tp in last:
            # A few back: the very last offset can be a marker, not a record.
            self.consumer.seek(tp, max(ends[tp] - 5, begins[tp]))
        deadline = time.monotonic() + READ_SECONDS
        try:
            while time.monotonic() < deadline:
                waiting = [tp for tp in last if await self.consumer.position(tp) < ends[tp]]
                if not waiting:
                    break
                batch = await self.consumer.getmany(*waiting, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                        newest = at if newest is None or at > newest else newest
        finally:
            self.consumer.unsubscribe()
        return newest

    async def round_trip(self, customer: str, timeout: float) -> Check:  # noqa: ASYNC109  (a deadline for polling the broker)
        name = "round-trip"
        upsert, invoice, void = probe_events(customer, datetime.now(UTC).date())
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            **client_options(self.auth),
        )
        deadline = time.monotonic() + timeout
        key = customer.encode()
        await producer.start()
        try:
            # The invoice and its void share a topic and a key: one partition, in order.
            for event, topic in ((upsert, CUSTOMERS.name), (invoice, INVOICES.name)):
                await producer.send_and_wait(topic, _bytes(event), key=key)
            sent = await producer.send_and_wait(INVOICES.name, _bytes(void), key=key)
            late = await self._handled(TopicPartition(INVOICES.name, sent.partition),
                                       sent.offset, deadline)  # fmt: skip
        finally:
            await producer.stop()
        if late is not None:
            return fail(
                name,
                f"{late} (group {self.groups[late]}) did not read {customer}'s test records"
                f" within {timeout:.0f}s (timed out): is {late} running and caught up?",
            )
        # Co-partitioned: the customer's state is on the partition of its invoices.
        state = await self._latest(key, TopicPartition(STATE.name, sent.partition))
        if not settled(state, void["occurred_at"]):
            shown = "none" if state is None else json.dumps(state.get("data"))
            return fail(
                name,
                f"collections read {customer}'s voided invoice but its {STATE.name} record does"
                f" not show it settled (nothing open, nothing suspended): {shown}",
            )
        return good(name, f"{customer}: invoice issued and voided, handled, nothing open")

    async def _handled(self, tp: TopicPartition, offset: int, deadline: float) -> str | None:
        """Wait until invoicing and collections committed past `offset` (they commit only
        once what they wrote for it is acknowledged); the first that did not, at the deadline."""
        for service in ("invoicing", "collections"):
            while True:
                try:
                    committed = await self.admin.list_consumer_group_offsets(self.groups[service])
                except KafkaError as err:
                    if not err.retriable:  # e.g. no coordinator yet on a new cluster
                        raise
                    committed = {}
                meta = committed.get(tp)
                if meta is not None and meta.offset > offset:
                    break
                if time.monotonic() > deadline:
                    return service
                await asyncio.sleep(0.2)
        return None

    async def _latest(self, key: bytes, tp: TopicPartition) -> dict[str, Any] | None:
        """The newest record of `key` on `tp`, read from the start up to its current end."""
        end = (await self.consumer.end_offsets([tp]))[tp]
        self.consumer.assign([tp])
        await self.consumer.seek_to_beginning(tp)
        latest: dict[str, Any] | None = None
        deadline = time.monotonic() + READ_SECONDS
        try:
            while await self.consumer.position(tp) < end and time.monotonic() < deadline:
                batch = await self.consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.key == key and record.value is not None:
                        latest = json.loads(record.value)
            return latest
        finally:
            self.consumer.unsubscribe()


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
