"""Message handlers of invoicing: one record in; keep the register, age on a clock tick, and
return the `invoice.aged` events to send (the register is written to its table here).

No faust or aiokafka here: the entrypoint hands in the table (any mutable mapping of bytes) and
the partitioner, and sends what `handle` returns.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import orjson
import structlog
from prometheus_client import Gauge

from billstate_invoicing.domain.aging import Aging, Register
from billstate_invoicing.domain.aging import record as record_event
from billstate_invoicing.domain.clock import check_tick
from billstate_shared.contracts import ClockTick, CustomerUpserted, Event
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.domain.ledger import LEDGER_EVENTS, Posting
from billstate_shared.domain.ledger_state import dump_ledger, load_ledger
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import Refused
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.topics import DUE_DATES

log = structlog.get_logger("billstate.invoicing")


def dump_register(register: Register) -> bytes:
    """A register as its table value: the ledger, and the customer's zone when it has one."""
    data = dump_ledger(register.ledger)
    if register.zone is not None:
        data["timezone"] = register.zone.key
    return orjson.dumps(data)


def load_register(customer_id: str, raw: bytes) -> Register:
    data = orjson.loads(raw)
    zone = data.pop("timezone", None)
    return Register(customer_id, load_ledger(data), zone=None if zone is None else ZoneInfo(zone))


class Registers:
    """Registers by partition: a tick on partition p ages only the customers kept there, so
    every table write lands in the changelog partition of the record being processed.

    The aging index is derived from the table: after an assignment (or a restart) the first
    record scans the table once and tracks every open invoice again. `partition_of` is the
    producer's partitioner: the partition a key is written to.
    """

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        partition_of: Callable[[bytes], int],
    ) -> None:
        self.table, self.policy, self.partition_of = table, policy, partition_of
        self.live: dict[int, dict[str, Register]] = {}
        self.aging: dict[int, Aging] = {}
        self.warm = False

    def partition(self, p: int) -> tuple[dict[str, Register], Aging]:
        if not self.warm:
            self._warm()
        if p not in self.aging:
            self.live[p], self.aging[p] = {}, Aging(self.policy)
        return self.live[p], self.aging[p]

    def _warm(self) -> None:
        self.warm = True
        for key, raw in self.table.items():
            live, aging = self.partition(self.partition_of(key))
            register = load_register(key.decode(), raw)
            live[register.customer_id] = register
            aging.watch(register)

    def get(self, p: int, customer_id: str) -> Register:
        live, _aging = self.partition(p)
        register = live.get(customer_id)
        if register is None:
            register = live[customer_id] = Register(customer_id)
        return register

    def forget(self) -> None:
        self.live.clear()
        self.aging.clear()
        self.warm = False


class TimedRecord(Record, Protocol):
    """A record with its Kafka timestamp, in seconds since the epoch (faust's Message)."""

    @property
    def timestamp(self) -> float | None: ...


class InvoicingHandler:
    """One inbound record in: a ledger event updates its customer's register (stored when it
    changed), a clock tick returns the partition's `invoice.aged` events, keyed by customer.

    A tick more than `clock_skew` ahead of its record's Kafka time is refused (`Refused`:
    the runtime dead-letters it) before it changes anything."""

    def __init__(
        self,
        *,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        partition_of: Callable[[bytes], int],
        clock_skew: timedelta = timedelta(minutes=10),
        metrics: Metrics | None = None,
    ) -> None:
        self.table = table
        self.registers = Registers(table, policy, partition_of)
        self.clock_skew = clock_skew
        # The latest tick taken, for the stalled-clock alert: nothing ages without ticks.
        self._tick: Gauge | None = None
        self._latest = 0.0
        if metrics is not None:
            self._tick = Gauge(
                "billstate_clock_last_tick_timestamp_seconds",
                "Time (seconds since the epoch) of the latest clock tick taken",
                ["service"], registry=metrics.registry,
            ).labels(metrics.service)  # fmt: skip

    def forget(self) -> None:
        """Start from the table again (on revocation, or before a try is repeated): the aged
        events of a half-sent tick are then sent again, with the same ids."""
        self.registers.forget()

    def undo(self, _event: Event) -> None:
        """Before a failed try is repeated: registers are written per record, so the table
        holds each as it was before it."""
        self.registers.forget()

    def flush(self) -> list[Produce]:
        """Nothing collapsed: a register is written with its record."""
        return []

    def handle(self, record: TimedRecord, event: Event) -> list[Produce]:
        registers = self.registers
        if isinstance(event, ClockTick):
            check_tick(event.occurred_at, _record_time(record), self.clock_skew)
            live, aging = registers.partition(record.partition)
            aged = aging.tick(event.occurred_at, live.get)
            log.info("tick", aged=len(aged))
            if self._tick is not None:
                # Every partition carries each tick, and an older one changes nothing.
                self._latest = max(self._latest, event.occurred_at.timestamp())
                self._tick.set(self._latest)
            topic = DUE_DATES.name
            return [Produce(topic, out.customer_id.encode(), to_bytes(out)) for out in aged]
        if event.event_type in LEDGER_EVENTS or isinstance(event, CustomerUpserted):
            register = registers.get(record.partition, event.customer_id)
            _live, aging = registers.partition(record.partition)
            if record_event(aging, register, event) is Posting.APPLIED:
                key = record.key
                assert key is not None  # the intake checked it is the customer_id
                self.table[key] = dump_register(register)
            log.info("recorded", event_type=event.event_type)
        else:
            log.info("skipped", event_type=event.event_type)
        return []


def _record_time(record: TimedRecord) -> datetime:
    """The time Kafka stamped on the record (for the clock topic: when the broker took it)."""
    seconds = record.timestamp
    if seconds is None:
        raise Refused("$", "a clock tick without a Kafka timestamp cannot be checked", "clock.tick")
    return datetime.fromtimestamp(seconds, UTC)
