"""The collections faust worker: books in a RocksDB table with a changelog, the handler between."""

from __future__ import annotations

from typing import Any

from billstate_collections.config import Settings
from billstate_collections.handlers import ROUTE, CollectionsHandler, Committed
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import acked_table, make_app, run_agent
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import (
    CONTROL,
    COSTS,
    CUSTOMERS,
    DUE_DATES,
    INVOICES,
    PAYMENTS,
    STATE,
    SUPPORT,
)

INPUTS = (INVOICES, PAYMENTS, COSTS, CUSTOMERS, DUE_DATES, CONTROL, SUPPORT)


def build(settings: Settings, policy: Policy, progress: Progress, metrics: Metrics) -> Any:
    app = make_app(
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
        settings.data_dir,
        replication_factor=settings.replication_factor,
        commit_interval=settings.commit_interval,
        auth=settings.kafka_auth,
        standby_replicas=settings.standby_replicas,
        producer_linger=settings.producer_linger,
    )
    # Its changelog writes are acknowledged before the offsets of their records commit.
    table = acked_table(app, "books", partitions=INPUTS[0].partitions)

    def committed() -> Committed:
        # faust's own map, keyed by TP named tuples: (topic, partition) -> offset or None.
        offsets: Committed = app.consumer._committed_offset  # noqa: SLF001  (no public view)
        return offsets

    handler = CollectionsHandler(
        table=table,
        policy=policy,
        cache_size=settings.cache_size,
        committed=committed,
        metrics=metrics,
    )
    run_agent(
        app,
        service="collections",
        inputs=INPUTS,
        outputs={*ROUTE.values(), STATE.name},
        handler=handler,
        progress=progress,
        metrics=metrics,
    )
    return app
