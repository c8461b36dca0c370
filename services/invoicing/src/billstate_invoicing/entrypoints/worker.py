"""The invoicing faust worker: the register in a RocksDB table; clock ticks become aged events."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiokafka.partitioner import murmur2

from billstate_invoicing.config import Settings
from billstate_invoicing.domain.aging import Aging, Register, record
from billstate_shared.contracts import ClockTick
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.domain.ledger import LEDGER_EVENTS, Outcome
from billstate_shared.domain.ledger_state import dump_ledger, load_ledger
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import Intake, make_app, process, raw_topic, watch_progress
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import CLOCK, CUSTOMERS, DUE_DATES, INVOICES, PAYMENTS

log = structlog.get_logger("billstate.invoicing")

INPUTS = (INVOICES, PAYMENTS, CUSTOMERS, CLOCK)


class Registers:
    """Registers by partition: a tick on partition p ages only the customers kept there, so
    every table write lands in the changelog partition of the record being processed.

    The aging index is derived from the table: after an assignment (or a restart) the first
    record scans the table once and tracks every open invoice again.
    """

    def __init__(self, table: Any, policy: Policy, partitions: int) -> None:
        self.table, self.policy, self.partitions = table, policy, partitions
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
            p = (murmur2(key) & 0x7FFFFFFF) % self.partitions  # Kafka's default partitioner
            live, aging = self.partition(p)
            register = Register(key.decode(), load_ledger(orjson.loads(raw)))
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


def build(settings: Settings, policy: Policy, progress: Progress, metrics: Metrics) -> Any:
    app = make_app(
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
        settings.data_dir,
        replication_factor=settings.replication_factor,
        commit_interval=settings.commit_interval,
        auth=settings.kafka_auth,
    )
    inbound = raw_topic(app, *(t.name for t in INPUTS))
    due_dates = raw_topic(app, DUE_DATES.name)
    table = app.Table(
        "registers", partitions=INPUTS[0].partitions, key_type=bytes, value_type=bytes
    )
    registers = Registers(table, policy, INPUTS[0].partitions)
    intake = Intake(app, "invoicing", metrics, progress, [t.dlq for t in INPUTS])
    watch_progress(app, progress)

    @app.on_partitions_revoked.connect
    async def _forget(app: Any, revoked: Any, **kwargs: Any) -> None:
        registers.forget()

    async def handle(message: Any, decoded: Any) -> None:
        if isinstance(decoded, ClockTick):
            live, aging = registers.partition(message.partition)
            aged = aging.tick(decoded.occurred_at, live.get)
            for out in aged:
                due_dates.send_soon(key=out.customer_id.encode(), value=to_bytes(out))
            log.info("tick", aged=len(aged))
        elif decoded.event_type in LEDGER_EVENTS:
            register = registers.get(message.partition, decoded.customer_id)
            _live, aging = registers.partition(message.partition)
            if record(aging, register, decoded) is Outcome.APPLIED:
                table[message.key] = orjson.dumps(dump_ledger(register.ledger))
            log.info("recorded", event_type=decoded.event_type)
        else:
            log.info("skipped", event_type=decoded.event_type)

    @app.agent(inbound, concurrency=1)
    async def invoicing(stream: Any) -> None:
        # A retried tick starts from the table again (forget), so the aged events of a
        # half-sent tick are sent again, with the same ids.
        await process(stream, intake, handle, registers.forget)

    return app
