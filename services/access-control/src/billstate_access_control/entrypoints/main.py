"""Process entry point of the access-control service: `python -m billstate_access_control`."""

from __future__ import annotations

import asyncio
import signal

import structlog

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_shared.logging import configure_logging

log = structlog.get_logger("billstate.access_control")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop the loop, flush, commit and close."""
    service = AccessControl(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await service.start()
        log.info(
            "started",
            group=settings.consumer_group,
            provider=service.provider.name,
            http_port=service.port,
        )
        running = asyncio.create_task(service.run())
        stop_asked = asyncio.create_task(stopping.wait())
        await asyncio.wait({running, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
        await service.stop()
        stop_asked.cancel()
        await running  # re-raises what ended the loop, if it was not the signal
    finally:
        await service.close()
        log.info("stopped")


def main() -> None:
    settings = Settings()
    configure_logging(settings.service, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
