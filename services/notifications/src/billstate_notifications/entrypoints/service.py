"""The notifications process in one object: the consumer loop, the store, the channels, HTTP.

`NotificationsService(settings)` is what `python -m billstate_notifications` runs; the
integration tests run it in-process next to a real broker, with a channel of their own.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from billstate_notifications.channels import Channel
from billstate_notifications.channels.select import build_channels
from billstate_notifications.config import Settings
from billstate_notifications.handlers import TOPICS, NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.retry import Sleep
from billstate_shared.runtime.service import Service
from billstate_shared.runtime.wallclock import WallClock

log = structlog.get_logger("billstate.notifications")


class NotificationsService(Service):
    """start() connects and listens, run() consumes until stop(), close() releases all.

    The channels are those the settings choose (the file outbox by default); pass one to
    deliver every notice through it instead. `clock` and `sleep` reach the handler
    (delivery timestamps, retry backoff).
    """

    settings: Settings

    def __init__(
        self,
        settings: Settings,
        channel: Channel | None = None,
        *,
        clock: WallClock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.channel, self.partner_channel = (
            (channel, channel) if channel is not None else build_channels(settings)
        )
        self.store = Store(settings.store_path)
        metrics = Metrics(settings.service)
        handler = NotificationsHandler(
            store=self.store,
            channel=self.channel,
            partner_channel=self.partner_channel,
            default_locale=settings.default_locale,
            retry_attempts=settings.retry_attempts,
            retry_base_delay=settings.retry_base_delay,
            service=settings.service,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
        )
        super().__init__(
            settings,
            group=settings.consumer_group,
            topics=TOPICS,
            handler=handler,
            progress=Progress(),
            metrics=metrics,
            routes=[web.get("/notices/{notice_id}", self._notice)],
            max_records=settings.max_records,
        )
        # /notices/{id} shows delivery details: it needs the bearer token (HTTP_TOKEN_FILE).

    async def started(self) -> None:
        log.info(
            "delivering",
            group=self.settings.consumer_group,
            topics=list(TOPICS),
            channel=self.channel.name,
            partner_channel=self.partner_channel.name,
        )

    async def closing(self) -> None:
        """The channels' connections (where a channel holds any), then the store."""
        try:
            for channel in {id(c): c for c in (self.channel, self.partner_channel)}.values():
                close = getattr(channel, "close", None)
                if close is not None:
                    await close()
        finally:
            self.store.close()

    async def _notice(self, request: web.Request) -> web.Response:
        delivery = self.store.delivery(request.match_info["notice_id"])
        if delivery is None:
            return web.json_response({"error": "unknown notice"}, status=404)
        return web.json_response(delivery.public())
