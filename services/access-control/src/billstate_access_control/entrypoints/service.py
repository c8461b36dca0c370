"""The access-control process, in one object: consumer loop, store, provider, HTTP.

`AccessControl(settings, provider=...)` is what `python -m billstate_access_control` runs and
what the integration tests run in-process (with a provider of their own when they need one).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from billstate_access_control.config import Settings
from billstate_access_control.handlers import AccessHandler, Retry
from billstate_access_control.providers import Provider, build_provider
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.loop import Loop, Produce
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import ACCESS_COMMANDS

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class AccessControl:
    """start() → run() until stop() → close(); or serve(), which does all three."""

    def __init__(self, settings: Settings, provider: Provider | None = None) -> None:
        self.settings = settings
        self.progress = Progress()
        self.metrics = Metrics(settings.service)
        self.store = Store(settings.data_dir)
        self.provider = provider if provider is not None else build_provider(settings, self.store)
        self.handler = AccessHandler(
            store=self.store,
            provider=self.provider,
            retry=Retry(
                settings.retry_attempts, settings.retry_base_delay, settings.retry_max_delay
            ),
            service=settings.service,
            metrics=self.metrics,
        )
        self.loop = Loop(
            service=settings.service,
            bootstrap=settings.kafka_bootstrap_servers,
            topics=[ACCESS_COMMANDS.name],
            group=settings.consumer_group,
            handler=self.handler,
            progress=self.progress,
            metrics=self.metrics,
            # Each failing subscription can cost seconds of retries; a small batch keeps a
            # provider outage from outlasting the consumer's poll interval.
            max_records=50,
            auth=settings.kafka_auth,
        )
        self.reconciler = Reconciler(
            store=self.store,
            provider=self.provider,
            handler=self.handler,
            send=self._send,
            metrics=self.metrics,
            service=settings.service,
            page=settings.reconcile_page,
        )
        self._reconciling: asyncio.Task[None] | None = None
        app = build_app(
            self.progress,
            self.metrics,
            routes=[
                web.get("/customers/{customer_id}/access", self._access),
                web.post("/reconcile", self._reconcile),
            ],
        )
        self.http = HttpServer(app, settings.http_host, settings.http_port)

    @property
    def port(self) -> int:
        """The HTTP port (the real one once started, when the settings ask for port 0)."""
        return self.http.port

    async def start(self) -> None:
        await self.loop.start()
        await self.http.start()
        if self.settings.reconcile_interval > 0:
            self._reconciling = asyncio.create_task(
                self.reconciler.run(self.settings.reconcile_interval), name="reconciler"
            )

    async def run(self) -> None:
        await self.loop.run()

    async def stop(self) -> None:
        """Ask run() to return after the record in hand; its batch is flushed and committed."""
        self.reconciler.stop()
        await self.loop.stop()

    async def close(self) -> None:
        self.reconciler.stop()
        try:
            if self._reconciling is not None:
                await self._reconciling
            await self.loop.close()
        finally:
            await self.http.stop()
            await self.provider.close()
            self.store.close()

    async def _send(self, out: Produce) -> None:
        """The reconciler's outputs: sent and acknowledged one by one (they follow no
        consumed offset, so there is no batch to flush them with)."""
        await self.loop.producer.send_and_wait(
            out.topic, out.value, key=out.key, headers=list(out.headers)
        )
        self.metrics.produced.labels(self.settings.service, out.topic).inc()

    async def _reconcile(self, request: web.Request) -> web.Response:
        """A reconcile pass now, for an operator or a test; answers with what it found."""
        result = await self.reconciler.run_once()
        return web.json_response(result.public())

    async def serve(self) -> None:
        await self.start()
        try:
            await self.run()
        finally:
            await self.close()

    async def _access(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["customer_id"]
        if not _CUSTOMER_ID.fullmatch(customer_id):
            return web.json_response(
                {"error": "customer_id must be 1..64 of A-Z a-z 0-9 . _ : -"}, status=400
            )
        return web.json_response(
            {"customer_id": customer_id, "subscriptions": self.store.view(customer_id)}
        )
