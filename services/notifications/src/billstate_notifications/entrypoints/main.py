"""Process entry point of the notifications service: the Loop, the HTTP face, signals.

`NotificationsService` is the whole service in-process (tests start it next to a real
broker, with their own channel); `main()` is `python -m billstate_notifications`.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from billstate_notifications.channels import Channel
from billstate_notifications.channels.select import build_channels
from billstate_notifications.config import Settings
from billstate_notifications.handlers import TOPICS, Clock, NotificationsHandler, Sleep
from billstate_notifications.store import Store
from billstate_shared.logging import configure_logging
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.loop import Loop
from billstate_shared.runtime.metrics import Metrics

log = structlog.get_logger("billstate.notifications")


class NotificationsService:
    """start() connects and listens, run() consumes until stop(), stop() shuts down cleanly.

    The channels are those the settings choose (the file outbox by default); pass one to
    deliver every notice through it instead. `clock` and `sleep` reach the handler
    (delivery timestamps, retry backoff).
    """

    def __init__(
        self,
        settings: Settings,
        channel: Channel | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = settings
        self.channel, self.partner_channel = (
            (channel, channel) if channel is not None else build_channels(settings)
        )
        self.progress = Progress()
        self.metrics = Metrics(settings.service)
        self._clock, self._sleep = clock, sleep
        self.store: Store | None = None
        self.loop: Loop | None = None
        self.http: HttpServer | None = None
        self._running: asyncio.Event | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The HTTP port actually bound (settings may say 0: any free port)."""
        assert self.http is not None, "start() first"
        return self.http.port

    async def start(self) -> None:
        s = self.settings
        self.store = Store(s.store_path)
        handler = NotificationsHandler(
            store=self.store,
            channel=self.channel,
            partner_channel=self.partner_channel,
            default_locale=s.default_locale,
            retry_attempts=s.retry_attempts,
            retry_base_delay=s.retry_base_delay,
            service=s.service,
            metrics=self.metrics,
            clock=self._clock,
            sleep=self._sleep,
        )
        self.loop = Loop(
            service=s.service,
            bootstrap=s.kafka_bootstrap_servers,
            topics=TOPICS,
            group=s.consumer_group,
            handler=handler,
            progress=self.progress,
            metrics=self.metrics,
            max_records=s.max_records,
            auth=s.kafka_auth,
        )
        routes = [web.get("/notices/{notice_id}", self._notice)]
        self.http = HttpServer(
            build_app(self.progress, self.metrics, routes), s.http_host, s.http_port
        )
        await self.http.start()
        await self.loop.start()
        log.info(
            "started",
            group=s.consumer_group,
            topics=list(TOPICS),
            channel=self.channel.name,
            partner_channel=self.partner_channel.name,
            http_port=self.http.port,
        )

    async def run(self) -> None:
        """Consume until stop(); an unexpected error ends run() with that error."""
        assert self.loop is not None, "start() first"
        self._running = asyncio.Event()
        try:
            await self.loop.run()
        finally:
            self._running.set()

    async def stop(self) -> None:
        """Stop consuming, let the batch in hand finish and commit, then close everything."""
        if self._stopped:
            return
        self._stopped = True
        if self.loop is not None:
            await self.loop.stop()
            if self._running is not None:
                await self._running.wait()
            await self.loop.close()
        if self.http is not None:
            await self.http.stop()
        for channel in {id(c): c for c in (self.channel, self.partner_channel)}.values():
            close = getattr(channel, "close", None)  # channels holding connections have one
            if close is not None:
                await close()
        if self.store is not None:
            self.store.close()
        log.info("stopped")

    async def _notice(self, request: web.Request) -> web.Response:
        assert self.store is not None
        delivery = self.store.delivery(request.match_info["notice_id"])
        if delivery is None:
            return web.json_response({"error": "unknown notice"}, status=404)
        return web.json_response(delivery.public())


async def serve(settings: Settings, channel: Channel | None = None) -> None:
    """Run the service until SIGTERM or SIGINT, then stop cleanly."""
    service = NotificationsService(settings, channel)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        runner = asyncio.create_task(service.run(), name="notifications-loop")
        waiter = asyncio.create_task(stop.wait(), name="notifications-signal")
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await service.stop()
        await runner  # re-raises if the loop crashed, so the process exits non-zero
    finally:
        await service.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main() -> None:
    settings = Settings()
    configure_logging(settings.service, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
