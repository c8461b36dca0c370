"""Process entry point of the collections service: `python -m billstate_collections`."""

from __future__ import annotations

import asyncio

import faust
import structlog

from billstate_collections.config import Settings
from billstate_collections.entrypoints.worker import build
from billstate_shared.logging import configure_logging
from billstate_shared.policy_file import PolicyError, load_policy
from billstate_shared.runtime.faustkit import ensure_changelog
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import CUSTOMER_PARTITIONS


def main() -> None:
    settings = Settings()
    configure_logging(settings.service, settings.log_level, settings.log_format)
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as err:
        # A refused policy starts nothing.
        raise SystemExit(f"collections: refused policy: {err}") from None
    asyncio.run(
        ensure_changelog(
            settings.kafka_bootstrap_servers,
            settings.consumer_group,
            "books",
            CUSTOMER_PARTITIONS,
            settings.replication_factor,
        )
    )
    progress, metrics = Progress(), Metrics(settings.service)
    app = build(settings, policy, progress, metrics)
    server = HttpServer(build_app(progress, metrics), settings.http_host, settings.http_port)

    @app.task
    async def _http() -> None:
        await server.start()
        structlog.get_logger().info("http listening", port=server.port)

    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False)
    worker.execute_from_commandline()
