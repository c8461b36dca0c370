"""The service's HTTP face: the probes, /metrics, plus whatever routes the service adds.

The probes and the metrics are open (the kubelet and Prometheus carry no credentials). Every
other route, the service's own and an unknown path alike, needs `Authorization: Bearer
<token>`: 401 without it or with another token, compared in constant time. A service with no
token configured serves those routes to nobody (403): they are off, never open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

# What needs no token: the probes and the scrape.
OPEN_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/startupz", "/metrics"})
REALM = 'Bearer realm="billstate"'


@dataclass
class Guard:
    """The bearer token the non-probe routes require; None: those routes are disabled."""

    token: SecretStr | None = None

    def admits(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries the token (constant-time compare)."""
        if self.token is None or authorization is None:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return False
        expected = self.token.get_secret_value().encode()
        return hmac.compare_digest(given.strip().encode(), expected)


GUARD = web.AppKey("billstate_guard", Guard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    guard = request.app[GUARD]
    if guard.token is None:
        return web.json_response(
            {"error": "this route is disabled: the service has no HTTP token (HTTP_TOKEN_FILE)"},
            status=403,
        )
    if not guard.admits(request.headers.get("Authorization")):
        return web.json_response(
            {"error": "a bearer token is required"},
            status=401,
            headers={"WWW-Authenticate": REALM},
        )
    return await handler(request)


def build_app(
    progress: Progress,
    metrics: Metrics,
    routes: Iterable[web.RouteDef] = (),
    token: SecretStr | None = None,
    authenticate: Middleware = _authenticate,
) -> web.Application:
    """The probes, the scrape and `routes`; every route but OPEN_PATHS goes through
    `authenticate` (by default: the service's one bearer token)."""

    async def healthz(_request: web.Request) -> web.Response:
        ok, why = progress.live()
        return web.json_response({"ok": ok, "why": why}, status=200 if ok else 503)

    async def readyz(_request: web.Request) -> web.Response:
        ok, why = progress.ready()
        return web.json_response({"ok": ok, "why": why}, status=200 if ok else 503)

    async def startupz(_request: web.Request) -> web.Response:
        ok, why = progress.startup()
        return web.json_response({"ok": ok, "why": why}, status=200 if ok else 503)

    async def metrics_page(_request: web.Request) -> web.Response:
        for (topic, partition), lag in progress.lag.items():
            metrics.lag.labels(metrics.service, topic, str(partition)).set(lag)
        return web.Response(body=metrics.render(), content_type="text/plain")

    app = web.Application(middlewares=[authenticate])
    app[GUARD] = Guard(token)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/startupz", startupz),
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
