"""The invoicing faust worker: the register in a RocksDB table; clock ticks become aged events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from billstate_invoicing.config import Settings
from billstate_invoicing.handlers import InvoicingHandler
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import acked_table, make_app, run_agent
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
        standby_replicas=settings.standby_replicas,
    )
    partitions = INPUTS[0].partitions
    # Its changelog writes are acknowledged before the offsets of their records commit.
    table = acked_table(app, "registers", partitions=partitions)

    def partition_of(key: bytes) -> int:
        hashed: int = murmur2(key)
        return (hashed & 0x7FFFFFFF) % partitions  # Kafka's default partitioner

    # A retried tick starts from the table again (forget), so the aged events of a
    # half-sent tick are sent again, with the same ids.
    handler = InvoicingHandler(
        table=table,
        policy=policy,
        partition_of=partition_of,
        clock_skew=timedelta(seconds=settings.clock_skew),
        metrics=metrics,
    )
    run_agent(
        app,
        service="invoicing",
        inputs=INPUTS,
        outputs=[DUE_DATES.name],
        handler=handler,
        progress=progress,
        metrics=metrics,
    )
    return app
