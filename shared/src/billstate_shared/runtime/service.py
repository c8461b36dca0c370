"""An aiokafka service's life: start, run until stopped or signalled, stop, close."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from aiohttp import web

from billstate_shared.logging import configure_logging
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.loop import Handler, Loop
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.settings import ServiceSettings

log = structlog.get_logger("billstate.service")


class Service:
    """One consumer loop and its HTTP face (probes, metrics, the service's own routes).

    start() connects and listens; run() consumes until stop(); close() releases everything.
    A service with more to start or release (a reconciler, a store, connections) overrides
    `started` and `closing`.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        progress: Progress,
        metrics: Metrics,
        routes: Iterable[web.RouteDef] = (),
        max_records: int = 500,
    ) -> None:
        self.settings, self.progress, self.metrics = settings, progress, metrics
        self.loop = Loop(
            service=settings.service,
            bootstrap=settings.kafka_bootstrap_servers,
            topics=topics,
            group=group,
            handler=handler,
            progress=progress,
            metrics=metrics,
            max_records=max_records,
            auth=settings.kafka_auth,
        )
        app = build_app(progress, metrics, routes, token=settings.http_token)
        self.http = HttpServer(app, settings.http_host, settings.http_port)
        self._closed = False

    @property
    def port(self) -> int:
        """The HTTP port (the real one once started, when the settings ask for port 0)."""
        return self.http.port

    async def start(self) -> None:
        await self.loop.start()
        await self.http.start()
        await self.started()
        log.info("started", service=self.settings.service, http_port=self.port)

    async def run(self) -> None:
        """Consume until stop(); an unexpected error ends run() with that error."""
        await self.loop.run()

    async def stop(self) -> None:
        """Ask run() to return after the record in hand; its batch is flushed and committed."""
        await self.loop.stop()

    async def close(self) -> None:
        """Release everything, once; what a failing step leaves is still released."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.closing()
            await self.loop.close()
        finally:
            await self.http.stop()
            log.info("stopped", service=self.settings.service)

    async def started(self) -> None:
        """After the loop and HTTP are up: start what else the service runs."""

    async def closing(self) -> None:
        """Before the loop closes: stop and release what `started` began."""

    async def serve(self) -> None:
        """start, run until SIGTERM/SIGINT or until the loop ends, stop, close."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await self.start()
            running = asyncio.create_task(self.run(), name=f"{self.settings.service}-loop")
            asked = asyncio.create_task(stopping.wait(), name=f"{self.settings.service}-signal")
            await asyncio.wait({running, asked}, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            await self.stop()
            await running  # re-raises what ended the loop, so the process exits non-zero
        finally:
            await self.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def main(settings: ServiceSettings, build: Callable[[Any], Service]) -> None:
    """A service process: logging configured once, then `build(settings).serve()`."""
    configure_logging(settings.service, settings.log_level, settings.log_format)
    asyncio.run(_serve(settings, build))


async def _serve(settings: ServiceSettings, build: Callable[[Any], Service]) -> None:
    # Built inside the running event loop: aiokafka and aiohttp bind to it.
    await build(settings).serve()
