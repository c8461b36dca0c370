"""The console's HTTP face: pages (Jinja2, no JavaScript), the JSON API, probes, sign-in.

Every route but the probes and /metrics needs an identity (`domain.auth.identify`): 401
without one, 403 for a role without the right. A viewer may read; a POST needs an operator.
The one POST route of this slice (`/api/customers/{id}/holds`) is a stub that answers 501
to an operator: actions come in the next slice, through the same code as the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import jinja2
from aiohttp import web

from billstate_console.domain.auth import AuthConfig, Denial, Identity, identify
from billstate_console.domain.i18n import Words, choose
from billstate_console.domain.projection import KINDS, Customer, Entry, redact
from billstate_console.store import Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import OPEN_PATHS
from billstate_shared.runtime.http import build_app as build_shared_app
from billstate_shared.runtime.metrics import Metrics

STORE = web.AppKey("console_store", Store)
AUTH = web.AppKey("console_auth", AuthConfig)
PAGE_SIZE = web.AppKey("console_page_size", int)
IDENTITY = web.RequestKey("console_identity", Identity)
MAX_PER_PAGE = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("billstate_console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    config = request.app[AUTH]
    found = identify(
        config,
        peer=request.remote,
        authorization=request.headers.get("Authorization"),
        user=request.headers.get(config.user_header),
        groups=request.headers.get(config.groups_header),
    )
    if isinstance(found, Denial):
        headers = {"WWW-Authenticate": 'Bearer realm="billstate-console"'}
        return web.json_response(
            {"error": found.reason},
            status=found.status,
            headers=headers if found.status == 401 else None,
        )
    if request.method not in {"GET", "HEAD", "OPTIONS"} and not found.may_act:
        return web.json_response(
            {"error": "viewers may read; acting needs an operator"}, status=403
        )
    request[IDENTITY] = found
    return await handler(request)


def _words(request: web.Request) -> Words:
    return Words(choose(request.query.get("lang"), request.headers.get("Accept-Language")))


def _identity(request: web.Request) -> Identity:
    return request[IDENTITY]


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    words = _words(request)
    html = (
        environment()
        .get_template(template)
        .render(
            t=words,
            lang=words.lang,
            identity=_identity(request),
            path=request.path,
            **context,
        )
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "customer_id": customer.customer_id,
        "name": customer.name,
        "locale": customer.locale,
        "tags": list(customer.tags),
        "stage": customer.stage,
        "since": customer.since,
        "why": customer.why,
        "why_rule": customer.why_rule,
        "overdue": [{"currency": c, "amount": a} for c, a in customer.overdue],
        "days_past_due": customer.days_past_due,
        "next": (
            {"stage": customer.next_stage, "on": customer.next_on} if customer.next_stage else None
        ),
        "as_of": customer.as_of,
        "waiting": customer.waiting,
    }


def entry_json(entry: Entry, identity: Identity) -> dict[str, Any]:
    body = asdict(entry)
    body.pop("customer_id")
    body["raw"] = entry.raw if identity.may_act else redact(entry.raw)
    return body


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


def _listing(request: web.Request) -> tuple[str | None, str | None, int, int]:
    stage = request.query.get("stage") or None
    query = request.query.get("q") or None
    page = _int(request.query.get("page"), 1, 1, 1_000_000)
    per_page = _int(request.query.get("per_page"), request.app[PAGE_SIZE], 1, MAX_PER_PAGE)
    return stage, query, page, per_page


async def overview_page(request: web.Request) -> web.Response:
    return _render(request, "overview.html.j2", overview=request.app[STORE].overview())


async def customers_page(request: web.Request) -> web.Response:
    stage, query, page, per_page = _listing(request)
    store = request.app[STORE]
    result = store.customers(stage=stage, query=query, page=page, per_page=per_page)
    stages = [s for s in store.overview().per_stage if s]
    return _render(
        request, "customers.html.j2", result=result, stage=stage, query=query or "", stages=stages
    )


async def customer_page(request: web.Request) -> web.Response:
    store = request.app[STORE]
    customer = store.customer(request.match_info["customer_id"])
    if customer is None:
        return _render(request, "missing.html.j2", status=404)
    timeline = store.timeline(customer.customer_id)
    return _render(request, "customer.html.j2", customer=customer, timeline=timeline, kinds=KINDS)


async def overview_api(request: web.Request) -> web.Response:
    overview = request.app[STORE].overview()
    return web.json_response(
        {
            "customers": overview.customers,
            "per_stage": overview.per_stage,
            "overdue": [{"currency": c, "amount": a} for c, a in overview.overdue],
            "as_of": overview.as_of,
        }
    )


async def customers_api(request: web.Request) -> web.Response:
    stage, query, page, per_page = _listing(request)
    result = request.app[STORE].customers(stage=stage, query=query, page=page, per_page=per_page)
    return web.json_response(
        {
            "items": [customer_json(c) for c in result.items],
            "total": result.total,
            "page": result.page,
            "per_page": result.per_page,
            "pages": result.pages,
        }
    )


async def customer_api(request: web.Request) -> web.Response:
    customer = request.app[STORE].customer(request.match_info["customer_id"])
    if customer is None:
        return web.json_response({"error": "unknown customer"}, status=404)
    return web.json_response(customer_json(customer))


async def timeline_api(request: web.Request) -> web.Response:
    store = request.app[STORE]
    customer = store.customer(request.match_info["customer_id"])
    if customer is None:
        return web.json_response({"error": "unknown customer"}, status=404)
    identity = _identity(request)
    items = [entry_json(e, identity) for e in store.timeline(customer.customer_id)]
    return web.json_response({"customer_id": customer.customer_id, "items": items})


async def holds_api(_request: web.Request) -> web.Response:
    return web.json_response(
        {"error": "placing holds from the console is not built yet; use `billstate hold`"},
        status=501,
    )


def build_app(
    store: Store,
    auth: AuthConfig,
    *,
    progress: Progress,
    metrics: Metrics,
    page_size: int = 50,
) -> web.Application:
    app = build_shared_app(progress, metrics, authenticate=_authenticate)
    app[STORE], app[AUTH], app[PAGE_SIZE] = store, auth, page_size
    app.add_routes(
        [
            web.get("/", overview_page),
            web.get("/customers", customers_page),
            web.get("/customers/{customer_id}", customer_page),
            web.get("/api/overview", overview_api),
            web.get("/api/customers", customers_api),
            web.get("/api/customers/{customer_id}", customer_api),
            web.get("/api/customers/{customer_id}/timeline", timeline_api),
            web.post("/api/customers/{customer_id}/holds", holds_api),
        ]
    )
    return app
