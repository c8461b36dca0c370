"""The access-control process, in one object: consumer loop, store, provider, reconciler,
re-attempts of parked commands, the guards (payment feed watcher, approval notices), HTTP.

`AccessControl(settings, provider=...)` is what `python -m billstate_access_control` runs and
what the integration tests run in-process (with a provider or a wall clock of their own when
they need one).
"""

from __future__ import annotations

import asyncio
import re

import structlog
from aiohttp import web
from prometheus_client import Gauge

from billstate_access_control.commitments import CommitmentWatch
from billstate_access_control.config import Settings
from billstate_access_control.costs import CostPoller
from billstate_access_control.entrypoints.feed import FeedWatch
from billstate_access_control.entrypoints.providers import build_provider
from billstate_access_control.guards import Announcer, Guards, GuardSettings, PaymentFeed
from billstate_access_control.handlers import AccessHandler, Budget
from billstate_access_control.providers import Provider
from billstate_access_control.providers.partner_center import PartnerCenterProvider
from billstate_access_control.reattempt import Reattempts
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.service import Service
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.topics import ACCESS_COMMANDS, APPROVALS, EVENTS

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
        self.feed = PaymentFeed(settings.payment_feed_topic)
        self.guards = Guards(
            settings=GuardSettings(
                cap=settings.brake_cap,
                feed_limit=settings.payment_feed_max_age,
                feed_topic=settings.payment_feed_topic,
                settle=settings.approval_settle,
            ),
            store=self.store,
            feed=self.feed,
            clock=clock,
        )
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
            guards=self.guards,
        )
        super().__init__(
            settings,
            group=settings.consumer_group,
            # Decisions on held commands come keyed by customer on a topic with as many
            # partitions: the Loop's range assignor gives one member partition p of both
            # topics, so a customer's decision reaches the worker that holds its command.
            # Stage changes only while commitments are watched (Partner Center): the catalog
            # lists the topic among what access-control reads outside its settled inputs.
            topics=[
                ACCESS_COMMANDS.name,
                APPROVALS.name,
                *([EVENTS.name] if settings.watches_commitments else []),
            ],
            handler=self.handler,
            progress=progress,
            metrics=metrics,
            routes=[
                web.get("/customers/{customer_id}/access", self._access),
                web.post("/reconcile", self._reconcile),
                web.post("/costs/poll", self._poll_costs),
                web.post("/commitments/check", self._check_commitments),
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
        self.watch = FeedWatch(
            feed=self.feed,
            bootstrap=settings.kafka_bootstrap_servers,
            auth=settings.kafka_auth,
            client_id=f"billstate-{settings.service}-feed",
        )
        self.announcer = Announcer(
            store=self.store, lock=self.handler.lock, send=self._send, clock=clock
        )
        pc = self.provider if isinstance(self.provider, PartnerCenterProvider) else None
        self.costs = (
            None
            if pc is None
            else CostPoller(
                provider=pc,
                store=self.store,
                send=self._send,
                retry=settings.retry,
                invoices=settings.cost_invoices,
                page=settings.cost_page,
                clock=clock,
            )
        )
        self.commitments = (
            None
            if pc is None
            else CommitmentWatch(
                provider=pc,
                store=self.store,
                send=self._send,
                retry=settings.retry,
                stages=settings.commitment_stages,
                ahead=settings.commitment_days_ahead,
                clock=clock,
            )
        )
        self._polling: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self._reattempting: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[None] | None = None
        if settings.payment_feed_max_age > 0:  # watched only while the guard is on
            age = Gauge(
                "billstate_payment_feed_age_seconds",
                "Seconds since the newest record on the payments topic (+Inf: none at all)",
                ["service", "topic"], registry=metrics.registry,
            )  # fmt: skip
            age.labels(settings.service, settings.payment_feed_topic).set_function(
                lambda: self.feed.age(clock())
            )

    async def started(self) -> None:
        # The feed is read once before the first command: a silent feed holds suspensions
        # from the start. A topic the service may not read stops the start-up.
        if self.settings.payment_feed_max_age > 0:
            await self.watch.start()
            await self.watch.run_once()
            self._watching = asyncio.create_task(
                self.watch.run(self.settings.payment_feed_check_interval), name="feed-watch"
            )
        self._announcing = asyncio.create_task(
            self.announcer.run(self.settings.approval_poll_interval), name="approval-notices"
        )
        log.info(
            "provider",
            provider=self.provider.name,
            group=self.settings.consumer_group,
            command_budget=self.settings.command_budget,
            max_records=self.settings.max_records,
            parked=self.store.parked_count(),
            held=self.store.held_count(),
            brake_cap=self.settings.brake_cap,
            payment_feed_max_age=self.settings.payment_feed_max_age,
            payment_feed_newest=None if self.feed.newest is None else self.feed.newest.isoformat(),
        )
        if self.settings.reconcile_interval > 0:
            self._reconciling = asyncio.create_task(
                self.reconciler.run(self.settings.reconcile_interval), name="reconciler"
            )
        self._reattempting = asyncio.create_task(
            self.reattempts.run(self.settings.park_poll_interval), name="reattempts"
        )
        if self.costs is not None and self.settings.polls_costs:
            self._polling = asyncio.create_task(
                self.costs.run(self.settings.cost_poll_interval), name="cost-poller"
            )
        if self.commitments is not None and self.settings.watches_commitments:
            self._checking = asyncio.create_task(
                self.commitments.run(self.settings.commitment_interval), name="commitments"
            )

    async def stop(self) -> None:
        """Ask run() to return after the record in hand, and the reconciler and the
        re-attempts after the subscription or command in hand."""
        self._stop_jobs()
        await super().stop()

    def _stop_jobs(self) -> None:
        for job in (self.reconciler, self.reattempts, self.watch, self.announcer):
            job.stop()
        for other in (self.costs, self.commitments):
            if other is not None:
                other.stop()

    async def closing(self) -> None:
        self._stop_jobs()
        try:
            tasks = (self._reconciling, self._reattempting, self._watching, self._announcing)
            for task in (*tasks, self._polling, self._checking):
                if task is not None:
                    await task
        finally:
            try:
                try:
                    await self.watch.close()
                finally:
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

    async def _poll_costs(self, _request: web.Request) -> web.Response:
        """A cost poll now (Partner Center only), for an operator or a test."""
        if self.costs is None:
            return web.json_response({"error": "the cost poller needs Partner Center"}, status=409)
        return web.json_response((await self.costs.run_once()).public())

    async def _check_commitments(self, _request: web.Request) -> web.Response:
        """A commitment check now (Partner Center only), for an operator or a test."""
        if self.commitments is None:
            return web.json_response({"error": "commitments need Partner Center"}, status=409)
        return web.json_response((await self.commitments.run_once()).public())

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
                "held": [h.public() for h in self.store.holding(customer_id)],
            }
        )
