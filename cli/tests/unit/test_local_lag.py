"""How the local launcher reads a service's lag: from the /metrics of the shared HTTP face,
served for real on a loopback port."""

from __future__ import annotations

import asyncio
from pathlib import Path

from billstate_cli.local import Service, free_port
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.metrics import Metrics


async def test_lag_per_partition_from_metrics(tmp_path: Path) -> None:
    progress = Progress()
    progress.set_lag("billing.customers.v1", 0, 0)
    progress.set_lag("collections.events.v1", 11, 42)
    server = HttpServer(build_app(progress, Metrics("console")), "127.0.0.1", 0)
    await server.start()
    try:
        service = Service("console", server.port, tmp_path / "console.log")
        lag = await asyncio.to_thread(service.lag)
    finally:
        await server.stop()
    assert lag == {("billing.customers.v1", 0): 0, ("collections.events.v1", 11): 42}


def test_no_lag_from_a_service_that_does_not_answer(tmp_path: Path) -> None:
    assert Service("console", free_port(), tmp_path / "console.log").lag() == {}
