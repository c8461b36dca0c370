"""The console process in one object: the consumer loop, the read model, the pages.

`ConsoleService(settings)` is what `python -m billstate_console` runs; the integration test
runs it in-process next to a real broker. The consumer group is `<consumer_group>-<the
store's generation>`: a new store is a new group, which reads every topic from the start
and so rebuilds the read model; a kept store continues where its group committed.

The HTTP face is the console's own app (`billstate_console.web`): sign-in with roles
replaces the shared single-token guard, the probes and /metrics stay open.
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from billstate_console.actions import Actions, Cluster
from billstate_console.config import Settings
from billstate_console.handlers import TOPICS, ConsoleHandler
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_console.web_ops import ACTIONS, CLUSTER
from billstate_console.web_support import HELPDESK, ZENDESK
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.service import Service

log = structlog.get_logger("billstate.console")


class Stages(Collector):
    """`billstate_customers`: customers per stage, as the read model has them now."""

    def __init__(self, store: Store, service: str) -> None:
        self.store, self.service = store, service

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for stage, count in sorted(self.store.stage_counts().items()):
            family.add_metric([self.service, stage], count)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "billstate_customers", "Customers per stage", labels=["service", "stage"]
        )


class ConsoleService(Service):
    settings: Settings

    def __init__(self, settings: Settings) -> None:
        self.store = Store(settings.store_url)
        self.group = f"{settings.consumer_group}-{self.store.generation}"
        progress, metrics = Progress(), Metrics(settings.service)
        metrics.registry.register(Stages(self.store, settings.service))
        super().__init__(
            settings,
            group=self.group,
            topics=TOPICS,
            handler=ConsoleHandler(self.store),
            progress=progress,
            metrics=metrics,
            max_records=settings.max_records,
        )
        app = build_app(
            self.store,
            settings.auth,
            progress=progress,
            metrics=metrics,
            page_size=settings.page_size,
        )
        # The console's own producer: operator actions, acknowledged before a page answers.
        self.actions = Actions(settings.kafka_bootstrap_servers, settings.kafka_auth)
        app[ACTIONS] = self.actions
        app[CLUSTER] = Cluster(settings.kafka_bootstrap_servers, settings.kafka_auth)
        if settings.helpdesk_secret is not None:
            app[HELPDESK] = settings.helpdesk_secret.get_secret_value()
        if settings.zendesk_secret is not None:
            app[ZENDESK] = settings.zendesk_secret.get_secret_value()
        self.http = HttpServer(app, settings.http_host, settings.http_port)

    async def started(self) -> None:
        await self.actions.start()
        log.info("reading", group=self.group, topics=list(TOPICS))

    async def closing(self) -> None:
        try:
            await self.actions.stop()
        finally:
            self.store.close()
