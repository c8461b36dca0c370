"""The service's HTTP face: /healthz, /readyz, /metrics, plus whatever routes the service adds."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics


def build_app(
    progress: Progress, metrics: Metrics, routes: Iterable[web.RouteDef] = ()
) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        ok, why = progress.live()
        return web.json_response({"ok": ok, "why": why}, status=200 if ok else 503)

    async def readyz(_request: web.Request) -> web.Response:
        ok, why = progress.ready()
        return web.json_response({"ok": ok, "why": why}, status=200 if ok else 503)

    async def metrics_page(_request: web.Request) -> web.Response:
        for (topic, partition), lag in progress.lag.items():
            metrics.lag.labels(metrics.service, topic, str(partition)).set(lag)
        return web.Response(body=metrics.render(), content_type="text/plain")

    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_page),
        ]
    )
    app.add_routes(list(routes))
    return app


class HttpServer:
    """Start and stop the aiohttp site; port 0 picks a free port (tests read `.port`)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
