"""The collections faust worker: books in a RocksDB table with a changelog, the handler between."""

from __future__ import annotations

from typing import Any

from billstate_collections.config import Settings
from billstate_collections.handlers import ROUTE, CollectionsHandler, Committed
from billstate_shared.contracts import Event
from billstate_shared.domain.policy import Policy
from billstate_shared.runtime.faustkit import (
    Intake,
    make_app,
    process,
    raw_topic,
    watch_progress,
)
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import (
    CONTROL,
    CUSTOMERS,
    DUE_DATES,
    INVOICES,
    PAYMENTS,
    STATE,
)

INPUTS = (INVOICES, PAYMENTS, CUSTOMERS, DUE_DATES, CONTROL)


def build(settings: Settings, policy: Policy, progress: Progress, metrics: Metrics) -> Any:
    app = make_app(
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
        settings.data_dir,
        replication_factor=settings.replication_factor,
        commit_interval=settings.commit_interval,
        auth=settings.kafka_auth,
        producer_linger=settings.producer_linger,
    )
    inbound = raw_topic(app, *(t.name for t in INPUTS))
    outbound = {name: raw_topic(app, name) for name in {*ROUTE.values(), STATE.name}}
    table = app.Table("books", partitions=INPUTS[0].partitions, key_type=bytes, value_type=bytes)

    def committed() -> Committed:
        # faust's own map, keyed by TP named tuples: (topic, partition) -> offset or None.
        offsets: Committed = app.consumer._committed_offset  # noqa: SLF001  (no public view)
        return offsets

    handler = CollectionsHandler(
        table=table, policy=policy, cache_size=settings.cache_size, committed=committed
    )
    intake = Intake(app, "collections", metrics, progress, [t.dlq for t in INPUTS])
    watch_progress(app, progress)

    @app.on_partitions_revoked.connect
    async def _forget(_app: Any, _revoked: Any, **_: Any) -> None:
        handler.forget()

    async def handle(message: Any, event: Event) -> None:
        # send_soon: buffered, flushed before faust commits the offset.
        for out in handler.handle(message, event):
            outbound[out.topic].send_soon(key=out.key, value=out.value)

    @app.agent(inbound, concurrency=1)
    async def collect(stream: Any) -> None:
        await process(stream, intake, handle, handler.forget)

    return app
