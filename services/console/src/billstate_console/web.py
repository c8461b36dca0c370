"""The console's HTTP face: pages (Jinja2, no JavaScript), the JSON API, probes, sign-in.

Every route but the probes, /metrics and /signin needs an identity (`domain.auth.identify`,
or a browser's session cookie): 401 without one (an HTML GET is sent to /signin instead), 403
for a role without the right. A viewer may read; a POST needs an operator, and a browser's
POST (session or proxy) a CSRF token. The actions are `billstate_console.web_ops`'s.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from billstate_console.domain.account import Balance, unless
from billstate_console.domain.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    AuthConfig,
    Denial,
    Identity,
    csrf_ok,
    csrf_token,
    from_session,
    identify,
)
from billstate_console.domain.cases import Parking
from billstate_console.domain.i18n import Words, choose
from billstate_console.domain.projection import KINDS, Access, Customer, Entry, redact
from billstate_console.domain.timeline import tell_raw
from billstate_console.openapi import openapi_api
from billstate_console.store import ORDERS, SORTS, Page, Store
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import OPEN_PATHS
from billstate_shared.runtime.http import build_app as build_shared_app
from billstate_shared.runtime.metrics import Metrics

STORE = web.AppKey("console_store", Store)
AUTH = web.AppKey("console_auth", AuthConfig)
PAGE_SIZE = web.AppKey("console_page_size", int)
IDENTITY = web.RequestKey("console_identity", Identity)
MAX_PER_PAGE = 500
_CURRENCY = re.compile(r"[A-Z]{3}")

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


# Routes that take no identity: the sign-in form itself, and the helpdesk receivers, whose
# signature is their identity.
NO_SIGN_IN = frozenset({"/signin", "/hooks/helpdesk", "/hooks/zendesk"})


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS or request.path in NO_SIGN_IN:
        return await handler(request)
    config = request.app[AUTH]
    user = request.headers.get(config.user_header)
    groups = request.headers.get(config.groups_header)
    authorization = request.headers.get("Authorization")
    found = identify(
        config,
        peer=request.remote,
        authorization=authorization,
        user=user,
        groups=groups,
        username=request.headers.get(config.username_header),
    )
    if isinstance(found, Denial) and authorization is None and user is None and groups is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = from_session(config, cookie, now=datetime.now(UTC)) or found
    if isinstance(found, Denial):
        if found.status == 401 and request.method == "GET" and _wants_html(request):
            raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='')}")
        headers = {"WWW-Authenticate": 'Bearer realm="billstate-console"'}
        return web.json_response(
            {"error": found.reason},
            status=found.status,
            headers=headers if found.status == 401 else None,
        )
    acting = request.method not in {"GET", "HEAD", "OPTIONS"}
    if acting and not found.may_act and request.path != "/signout":
        return web.json_response(
            {"error": "viewers may read; acting needs an operator"}, status=403
        )
    # A browser (session cookie, proxy) sends credentials by itself: its POSTs must carry the
    # token its own pages hold. A bearer token is never sent by a browser unasked.
    if acting and found.via != "token" and not csrf_ok(config, found, await _csrf(request)):
        return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
    request[IDENTITY] = found
    return await handler(request)


def _wants_html(request: web.Request) -> bool:
    # A page, asked for by a browser: the API answers 401 whatever the Accept header says.
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and not request.path.startswith("/api/")


async def _csrf(request: web.Request) -> str | None:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        value = (await request.post()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given


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
            csrf=csrf_token(request.app[AUTH], _identity(request)),
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
        "exposure": [{"currency": c, "amount": a} for c, a in customer.exposure],
        "days_past_due": customer.days_past_due,
        "next": (
            {"stage": customer.next_stage, "on": customer.next_on} if customer.next_stage else None
        ),
        "as_of": customer.as_of,
        "waiting": customer.waiting,
    }


def _state(customer: Customer) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(customer.state) if customer.state else {}
    return loaded


def next_step(customer: Customer, balances: list[Balance], words: Words) -> dict[str, Any] | None:
    """The next stage, its date, what paying stops it, in words; or what it waits for."""
    if not customer.next_stage or not customer.next_on:
        return None
    owed = [{"currency": c, "amount": str(a)} for c, a in unless(balances)]
    if customer.waiting:
        text = words("step_waits").format(what=customer.waiting)
    else:
        # The date as the page says dates; amounts with their ISO code, which no reader of
        # a multi-currency book can mistake ("$" is also CAD's, AUD's, TWD's).
        on = words.day(customer.next_on)
        text = words("step_line").format(
            stage=words.stage(customer.next_stage),
            date=on,
            amounts=words("and").join(f"{o['currency']} {o['amount']}" for o in owed),
        )
        if not owed:
            text = words("step_plain").format(stage=words.stage(customer.next_stage), date=on)
    return {"stage": customer.next_stage, "on": customer.next_on, "unless": owed, "text": text}


def subscriptions(
    customer: Customer, access: list[Access], parked: Sequence[Parking] = ()
) -> list[dict[str, Any]]:
    """Every subscription of the profile, of a provider's report or of a parked suspension,
    with its access: "parked" while a parked suspension that names it waits, else what the
    provider last reported (`reported` is that report either way)."""
    reported = {a.subscription_id: a for a in access}
    waiting: dict[str, Parking] = {}
    for p in parked:  # oldest first: the first parking that names a subscription shows
        for sub in json.loads(p.subscription_ids):
            waiting.setdefault(sub, p)
    rows = []
    for sub in sorted(set(customer.subscriptions) | set(reported) | set(waiting)):
        a, parking = reported.get(sub), waiting.get(sub)
        row = {
            "subscription_id": sub,
            "access": a.access if a else "unknown",
            "reported": a.access if a else "unknown",
            "provider": a.provider if a else None,
            "at": a.at if a else None,
            "detail": a.detail if a else None,
            "parked_command": None,
        }
        if parking is not None:
            row.update(
                access="parked",
                provider=parking.provider,
                at=parking.occurred_at,
                detail=f"{parking.guard} guard: {parking.reason}",
                parked_command=parking.command_id,
            )
        rows.append(row)
    return rows


def customer_detail(
    customer: Customer,
    balances: list[Balance],
    access: list[Access],
    identity: Identity,
    words: Words,
    *,
    parked: Sequence[Parking] = (),
    disputed: bool = False,
) -> dict[str, Any]:
    """`customer_json` and the page's detail: balances, holds, payments in flight,
    subscriptions, next step, policy, open support tickets and the dispute flag (`disputed`:
    the console's own read has an open dispute ticket); the contacts only for an operator."""
    state = _state(customer)
    body = customer_json(customer)
    body["balances"] = [
        {
            "currency": b.currency,
            "overdue": str(b.overdue),
            "open": str(b.open),
            "credit": str(b.credit),
            "invoices": [
                {
                    "invoice_id": i.invoice_id,
                    "issued_on": i.issued_on,
                    "due_on": i.due_on,
                    "amount": str(i.amount),
                    "open": str(i.open),
                    "disputed": str(i.disputed),
                    "days_past_due": i.days_past_due,
                }
                for i in b.invoices
            ],
        }
        for b in balances
    ]
    body["holds"] = state.get("holds", [])
    body["pending_payments"] = state.get("pending_payments", [])
    body["subscriptions"] = subscriptions(customer, access, parked)
    body["next_step"] = next_step(customer, balances, words)
    body["policy"] = state.get("policy")
    # Support (issue 17): collections' open tickets (a claim's hold date) and the flag.
    body["tickets"] = state.get("tickets", [])
    body["disputed"] = disputed or any(t.get("topic") == "dispute" for t in body["tickets"])
    if identity.may_act:
        body["contacts"] = {
            "billing_email": customer.billing_email,
            "partner_contact_email": customer.partner_email,
        }
    return body


def _disputed(store: Store, customer_id: str) -> bool:
    return any(t.topic == "dispute" for t in store.open_tickets(customer_id))


def entry_json(entry: Entry, identity: Identity, words: Words) -> dict[str, Any]:
    """The entry with its summary and why in the language of `words` (rendered now from
    the stored event); `why_lang` names the why's language when it is not that one."""
    body = asdict(entry)
    body.pop("customer_id")
    told = tell_raw(entry.raw, words)
    body.update(summary=told.summary, why=told.why, why_lang=told.why_lang)
    body["raw"] = entry.raw if identity.may_act else redact(entry.raw)
    return body


@dataclass(frozen=True)
class Listing:
    """A customers request's filters, sort and page; `bad` names what was refused."""

    stage: str | None = None
    query: str | None = None
    tag: str | None = None
    currency: str | None = None
    sort: str = "id"
    order: str = "asc"
    page: int = 1
    per_page: int = 50
    bad: tuple[tuple[str, str], ...] = ()  # (parameter, why); ignored on pages, 400 in JSON

    def find(self, store: Store) -> Page:
        return store.customers(
            stage=self.stage,
            query=self.query,
            tag=self.tag,
            currency=self.currency,
            sort=self.sort,
            order=self.order,
            page=self.page,
            per_page=self.per_page,
        )

    def link(self, lang: str, page: int, **change: str) -> str:
        """This listing's URL on another page, or with another sort."""
        params = {
            "lang": lang,
            "stage": self.stage or "",
            "tag": self.tag or "",
            "currency": self.currency or "",
            "q": self.query or "",
            "sort": self.sort,
            "order": self.order,
            "per_page": str(self.per_page),
            "page": str(page),
            **change,
        }
        return "/customers?" + urlencode(params)


def _count(raw: str | None, default: int, high: int) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        return None
    return number if 1 <= number <= high else None


def _listing(request: web.Request) -> Listing:
    q = request.query
    bad: list[tuple[str, str]] = []
    currency = (q.get("currency") or "").strip() or None
    if currency is not None and not _CURRENCY.fullmatch(currency):
        bad.append(("currency", "is not a three-letter ISO 4217 code such as USD"))
        currency = None
    sort = q.get("sort") or "id"
    if sort not in SORTS:
        bad.append(("sort", f"is none of {', '.join(SORTS)}"))
        sort = "id"
    order = q.get("order") or "asc"
    if order not in ORDERS:
        bad.append(("order", "is neither asc nor desc"))
        order = "asc"
    page = _count(q.get("page"), 1, 1_000_000)
    if page is None:
        bad.append(("page", "is not a whole number from 1"))
    per_page = _count(q.get("per_page"), request.app[PAGE_SIZE], MAX_PER_PAGE)
    if per_page is None:
        bad.append(("per_page", f"is not a whole number from 1 to {MAX_PER_PAGE}"))
    return Listing(
        stage=q.get("stage") or None,
        query=q.get("q") or None,
        tag=q.get("tag") or None,
        currency=currency,
        sort=sort,
        order=order,
        page=page or 1,
        per_page=per_page or request.app[PAGE_SIZE],
        bad=tuple(bad),
    )


async def overview_page(request: web.Request) -> web.Response:
    from billstate_console.web_ops import operations  # noqa: PLC0415  (it builds on this module)

    return _render(
        request,
        "overview.html.j2",
        overview=request.app[STORE].overview(),
        operations=operations(request),
    )


async def customers_page(request: web.Request) -> web.Response:
    listing = _listing(request)
    store = request.app[STORE]
    result = listing.find(store)
    stages = store.stages()
    return _render(
        request,
        "customers.html.j2",
        result=result,
        listing=listing,
        stage=listing.stage,
        query=listing.query or "",
        stages=stages,
        sorts=SORTS,
    )


async def customer_page(request: web.Request) -> web.Response:
    store = request.app[STORE]
    customer = store.customer(request.match_info["customer_id"])
    if customer is None:
        return _render(request, "missing.html.j2", status=404)
    words = _words(request)
    timeline = [(e, tell_raw(e.raw, words)) for e in store.timeline(customer.customer_id)]
    detail = customer_detail(
        customer,
        store.account(customer),
        store.access(customer.customer_id),
        _identity(request),
        _words(request),
        parked=store.parked(customer.customer_id),
        disputed=_disputed(store, customer.customer_id),
    )
    return _render(
        request,
        "customer.html.j2",
        customer=customer,
        detail=detail,
        suspended=_state(customer).get("suspended_subscription_ids", []),
        timeline=timeline,
        kinds=KINDS,
        message=request.query.get("msg"),
        support=store.open_tickets(customer.customer_id),
    )


async def overview_api(request: web.Request) -> web.Response:
    overview = request.app[STORE].overview()
    return web.json_response(
        {
            "customers": overview.customers,
            "per_stage": overview.per_stage,
            "overdue": [{"currency": c, "amount": a} for c, a in overview.overdue],
            "exposure": [{"currency": c, "amount": a} for c, a in overview.exposure],
            "as_of": overview.as_of,
        }
    )


async def customers_api(request: web.Request) -> web.Response:
    listing = _listing(request)
    if listing.bad:
        return web.json_response(
            {
                "error": "bad query: " + "; ".join(f"{name} {why}" for name, why in listing.bad),
                "fields": [{"field": name, "reason": why} for name, why in listing.bad],
            },
            status=400,
        )
    result = listing.find(request.app[STORE])
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
    store = request.app[STORE]
    customer = store.customer(request.match_info["customer_id"])
    if customer is None:
        return web.json_response({"error": "unknown customer"}, status=404)
    detail = customer_detail(
        customer,
        store.account(customer),
        store.access(customer.customer_id),
        _identity(request),
        _words(request),
        parked=store.parked(customer.customer_id),
        disputed=_disputed(store, customer.customer_id),
    )
    return web.json_response(detail)


async def timeline_api(request: web.Request) -> web.Response:
    store = request.app[STORE]
    customer = store.customer(request.match_info["customer_id"])
    if customer is None:
        return web.json_response({"error": "unknown customer"}, status=404)
    identity = _identity(request)
    words = _words(request)
    items = [entry_json(e, identity, words) for e in store.timeline(customer.customer_id)]
    return web.json_response({"customer_id": customer.customer_id, "items": items})


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
    from billstate_console.web_ops import add_routes  # noqa: PLC0415  (it builds on this module)

    add_routes(app, progress)
    from billstate_console.web_support import add_routes as add_support  # noqa: PLC0415

    add_support(app)
    app.add_routes(
        [
            web.get("/", overview_page),
            web.get("/customers", customers_page),
            web.get("/customers/{customer_id}", customer_page),
            web.get("/api/overview", overview_api),
            web.get("/api/customers", customers_api),
            web.get("/api/customers/{customer_id}", customer_api),
            web.get("/api/customers/{customer_id}/timeline", timeline_api),
            web.get("/api/openapi.json", openapi_api),
        ]
    )
    return app
