"""The access-control process, in one object: consumer loop, store, provider, reconciler,
re-attempts of parked commands, HTTP.

`AccessControl(settings, provider=...)` is what `python -m billstate_access_control` runs and
what the integration tests run in-process (with a provider or a wall clock of their own when
they need one).
"""

from __future__ import annotations

import asyncio
import re

import structlog
from aiohttp import web

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.providers import build_provider
from billstate_access_control.handlers import AccessHandler, Budget
from billstate_access_control.providers import Provider
from billstate_access_control.reattempt import Reattempts
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.service import Service
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.topics import ACCESS_COMMANDS

log = structlog.get_logger("billstate.access_control")

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def alive(progress: Progress) -> None:
    """A provider call is under way: the worker is busy, not stalled (the liveness probe
    looks at the time of the last progress)."""
    progress.last_progress = progress.clock()


class AccessControl(Service):
    """start() → run() until stop() → close(); or serve(), which does all three. Besides the
    consumer loop it runs the reconciler, on a schedule and on `POST /reconcile`, and the
    re-attempts of parked commands. `clock` is the wall clock parked commands are due by."""

    def __init__(
        self, settings: Settings, provider: Provider | None = None, *, clock: WallClock = utc_now
    ) -> None:
        metrics = Metrics(settings.service)
        progress = Progress()
        self.store = Store(settings.data_dir)
        self.provider = provider if provider is not None else build_provider(settings, self.store)
        self.handler = AccessHandler(
            store=self.store,
            provider=self.provider,
            retry=settings.retry,
            service=settings.service,
            metrics=metrics,
            budget=Budget(
                seconds=settings.command_budget,
                park_delay=settings.park_delay,
                park_max_delay=settings.park_max_delay,
            ),
            clock=clock,
            on_attempt=lambda: alive(progress),
        )
        super().__init__(
            settings,
            group=settings.consumer_group,
            topics=[ACCESS_COMMANDS.name],
            handler=self.handler,
            progress=progress,
            metrics=metrics,
            routes=[
                web.get("/customers/{customer_id}/access", self._access),
                web.post("/reconcile", self._reconcile),
            ],
            # A record takes at most two command budgets (one waiting for the lock, one of
            # its own); the batch stays within the consumer's poll interval.
            max_records=settings.max_records,
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
        self.reattempts = Reattempts(
            store=self.store, handler=self.handler, send=self._send, clock=clock
        )
        self._reconciling: asyncio.Task[None] | None = None
        self._reattempting: asyncio.Task[None] | None = None

    async def started(self) -> None:
        log.info(
            "provider",
            provider=self.provider.name,
            group=self.settings.consumer_group,
            command_budget=self.settings.command_budget,
            max_records=self.settings.max_records,
            parked=self.store.parked_count(),
        )
        if self.settings.reconcile_interval > 0:
            self._reconciling = asyncio.create_task(
                self.reconciler.run(self.settings.reconcile_interval), name="reconciler"
            )
        self._reattempting = asyncio.create_task(
            self.reattempts.run(self.settings.park_poll_interval), name="reattempts"
        )

    async def stop(self) -> None:
        """Ask run() to return after the record in hand, and the reconciler and the
        re-attempts after the subscription or command in hand."""
        self.reconciler.stop()
        self.reattempts.stop()
        await super().stop()

    async def closing(self) -> None:
        self.reconciler.stop()
        self.reattempts.stop()
        try:
            for task in (self._reconciling, self._reattempting):
                if task is not None:
                    await task
        finally:
            try:
                await self.provider.close()
            finally:
                self.store.close()

    async def _send(self, out: Produce) -> None:
        """The reconciler's and the re-attempts' outputs: sent and acknowledged one by one
        (they follow no consumed offset, so there is no batch to flush them with)."""
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
            {
                "customer_id": customer_id,
                "subscriptions": self.store.view(customer_id),
                "sequence": self.store.load(customer_id).sequence,
                "parked": [p.public() for p in self.store.parked(customer_id)],
            }
        )
