"""The access-control process, in one object: consumer loop, store, provider, reconciler, HTTP.

`AccessControl(settings, provider=...)` is what `python -m billstate_access_control` runs and
what the integration tests run in-process (with a provider of their own when they need one).
"""

from __future__ import annotations

import asyncio
import re

import structlog
from aiohttp import web

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.providers import build_provider
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import Provider
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.service import Service
from billstate_shared.topics import ACCESS_COMMANDS

log = structlog.get_logger("billstate.access_control")

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class AccessControl(Service):
    """start() → run() until stop() → close(); or serve(), which does all three. Besides the
    consumer loop it runs the reconciler, on a schedule and on `POST /reconcile`."""

    def __init__(self, settings: Settings, provider: Provider | None = None) -> None:
        metrics = Metrics(settings.service)
        self.store = Store(settings.data_dir)
        self.provider = provider if provider is not None else build_provider(settings, self.store)
        self.handler = AccessHandler(
            store=self.store,
            provider=self.provider,
            retry=settings.retry,
            service=settings.service,
            metrics=metrics,
        )
        super().__init__(
            settings,
            group=settings.consumer_group,
            topics=[ACCESS_COMMANDS.name],
            handler=self.handler,
            progress=Progress(),
            metrics=metrics,
            routes=[
                web.get("/customers/{customer_id}/access", self._access),
                web.post("/reconcile", self._reconcile),
            ],
            # Each failing subscription can cost seconds of retries; a small batch keeps a
            # provider outage from outlasting the consumer's poll interval.
            max_records=50,
        )
        self.settings: Settings = settings
        self.reconciler = Reconciler(
            store=self.store,
            provider=self.provider,
            handler=self.handler,
            send=self._send,
            metrics=metrics,
            service=settings.service,
            page=settings.reconcile_page,
        )
        self._reconciling: asyncio.Task[None] | None = None

    async def started(self) -> None:
        log.info("provider", provider=self.provider.name, group=self.settings.consumer_group)
        if self.settings.reconcile_interval > 0:
            self._reconciling = asyncio.create_task(
                self.reconciler.run(self.settings.reconcile_interval), name="reconciler"
            )

    async def stop(self) -> None:
        """Ask run() to return after the record in hand, and the reconciler after its
        subscription in hand."""
        self.reconciler.stop()
        await super().stop()

    async def closing(self) -> None:
        self.reconciler.stop()
        try:
            if self._reconciling is not None:
                await self._reconciling
        finally:
            try:
                await self.provider.close()
            finally:
                self.store.close()

    async def _send(self, out: Produce) -> None:
        """The reconciler's outputs: sent and acknowledged one by one (they follow no
        consumed offset, so there is no batch to flush them with)."""
        await self.loop.producer.send_and_wait(
            out.topic, out.value, key=out.key, headers=list(out.headers)
        )
        self.metrics.produced.labels(self.settings.service, out.topic).inc()

    async def _reconcile(self, _request: web.Request) -> web.Response:
        """A reconcile pass now, for an operator or a test; answers with what it found."""
        result = await self.reconciler.run_once()
        return web.json_response(result.public())

    async def _access(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["customer_id"]
        if not _CUSTOMER_ID.fullmatch(customer_id):
            return web.json_response(
                {"error": "customer_id must be 1..64 of A-Z a-z 0-9 . _ : -"}, status=400
            )
        return web.json_response(
            {"customer_id": customer_id, "subscriptions": self.store.view(customer_id)}
        )
