"""The invoicing faust worker: the register in a RocksDB table; clock ticks become aged events."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2

from billstate_invoicing.config import Settings
from billstate_invoicing.handlers import InvoicingHandler
from billstate_shared.contracts import Event
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import Intake, make_app, process, raw_topic, watch_progress
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import CLOCK, CUSTOMERS, DUE_DATES, INVOICES, PAYMENTS

INPUTS = (INVOICES, PAYMENTS, CUSTOMERS, CLOCK)


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
    partitions = INPUTS[0].partitions
    table = app.Table("registers", partitions=partitions, key_type=bytes, value_type=bytes)

    def partition_of(key: bytes) -> int:
        hashed: int = murmur2(key)
        return (hashed & 0x7FFFFFFF) % partitions  # Kafka's default partitioner

    handler = InvoicingHandler(table=table, policy=policy, partition_of=partition_of)
    intake = Intake(app, "invoicing", metrics, progress, [t.dlq for t in INPUTS])
    watch_progress(app, progress)

    @app.on_partitions_revoked.connect
    async def _forget(_app: Any, _revoked: Any, **_: Any) -> None:
        handler.forget()

    async def handle(message: Any, event: Event) -> None:
        # send_soon: buffered, flushed before faust commits the offset.
        for out in handler.handle(message, event):
            due_dates.send_soon(key=out.key, value=out.value)

    @app.agent(inbound, concurrency=1)
    async def invoicing(stream: Any) -> None:
        # A retried tick starts from the table again (forget), so the aged events of a
        # half-sent tick are sent again, with the same ids.
        await process(stream, intake, handle, handler.forget)

    return app
