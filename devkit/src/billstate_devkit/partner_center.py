"""A local Partner Center for tests: Entra token endpoint, subscriptions, invoices, faults."""

from __future__ import annotations

import asyncio
import copy
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as daytime
from decimal import Decimal
from typing import Any, Self, TypeVar

from aiohttp import web

SCOPE = "https://api.partnercenter.microsoft.com/.default"
PARTNER_TENANT = "0f0c2b7e-5a55-4d6a-9a57-3a3b9f0c1d2e"


@dataclass(frozen=True, slots=True)
class Logged:
    """One request the server answered, with the MS-RequestId and MS-CorrelationId it
    carried (what a client reports to Microsoft support; None when absent)."""

    method: str
    path: str
    status: int
    request_id: str | None = None
    correlation_id: str | None = None


_Fault = TypeVar("_Fault", tuple[str | None, int, str], tuple[str | None, float])


def _etag() -> str:
    return secrets.token_urlsafe(24)


def _take(queue: list[_Fault], method: str) -> _Fault | None:
    """The first queued fault meant for `method` (or for any method), taken off the queue."""
    for i, fault in enumerate(queue):
        if fault[0] is None or fault[0] == method:
            return queue.pop(i)
    return None


def _error(status: int, code: int | str, description: str, **headers: str) -> web.Response:
    """Partner Center's error shape: code, description, data, source."""
    body: dict[str, Any] = {
        "code": code,
        "description": description,
        "data": [],
        "source": "PartnerFD",
    }
    return web.json_response(body, status=status, headers=headers)


class PartnerCenterServer:
    """An HTTP server with Partner Center's subscription API and a Microsoft Entra v2 token
    endpoint, on 127.0.0.1 and a free port.

    Use `async with PartnerCenterServer() as pc:` in a test's loop, or
    `with PartnerCenterServer.in_thread() as pc:` when the code under test runs elsewhere (a
    service process) and the test polls synchronously. Every seeding, inspection and fault
    method takes one lock, so either mode may call them from any thread.
    """

    def __init__(
        self,
        *,
        client_id: str = "b1e5c0de-0000-4000-8000-00000000c11e",
        client_secret: str = "test-secret-not-real",  # noqa: S107  (a throw-away test credential)
        scope: str = SCOPE,
        expires_in: int = 3599,
        partner_tenant: str = PARTNER_TENANT,
    ) -> None:
        self.client_id, self.client_secret, self.scope = client_id, client_secret, scope
        self.expires_in, self.partner_tenant = expires_in, partner_tenant
        self._lock = threading.Lock()
        self._subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._issued: list[str] = []
        self._log: list[Logged] = []
        self._throttle: list[float] = []  # one Retry-After per 429 still to answer
        self._fail: list[tuple[str | None, int, str]] = []
        self._slow: list[tuple[str | None, float]] = []
        self._fail_paths: list[tuple[str, int]] = []  # (path prefix, status)
        self._change_after_get = 0
        self._invoices: dict[str, dict[str, Any]] = {}
        self._lines: dict[str, list[dict[str, Any]]] = {}
        self._continuations: dict[str, tuple[str, int]] = {}  # token -> (invoice, offset)
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- addresses --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What the provider's `base_url` should be."""
        if not self._port:
            raise RuntimeError("the Partner Center test server is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def token_url(self) -> str:
        """The partner tenant's token endpoint, shaped like Entra's v2 one."""
        return f"{self.base_url}/{self.partner_tenant}/oauth2/v2.0/token"

    # -- running ----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{partner}/oauth2/v2.0/token", self._token)
        path = "/v1/customers/{tenant}/subscriptions/{sid}"
        app.router.add_get(path, self._get)
        app.router.add_patch(path, self._patch)
        app.router.add_get("/v1/customers/{tenant}/subscriptions", self._list_subscriptions)
        app.router.add_get("/v1/invoices", self._list_invoices)
        app.router.add_get("/v1/invoices/{invoice}/lineitems", self._first_lines)
        app.router.add_get("/v1/invoices/{invoice}/lineitems/{provider}/{kind}", self._next_lines)
        # A slow answer still pending at shutdown must not hold the test up for long.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[Self]:
        """The server on its own event loop in a daemon thread, for synchronous tests."""
        server = cls(**kwargs)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="partner-center", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
            yield server
        finally:
            try:
                asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=10)
                loop.close()

    # -- seeding and inspection -------------------------------------------------------

    def add_subscription(self, tenant: str, subscription_id: str, **fields: Any) -> dict[str, Any]:
        """A subscription shaped like Partner Center's; `fields` override the defaults."""
        resource: dict[str, Any] = {
            "id": subscription_id,
            "offerId": "CFQ7TTC0LH18:0001",
            "offerName": "Microsoft 365 Business Basic",
            "friendlyName": "Microsoft 365 Business Basic",
            "quantity": 10,
            "unitType": "Licenses",
            "hasPurchasableAddons": False,
            "creationDate": "2026-01-04T01:00:12Z",
            "effectiveStartDate": "2026-01-04T00:00:00Z",
            "commitmentEndDate": "2027-01-03T00:00:00Z",
            "status": "active",
            "autoRenewEnabled": True,
            "isTrial": False,
            "billingType": "license",
            "billingCycle": "monthly",
            "termDuration": "P1Y",
            # New commerce: cancellable (with a refund) until this instant after purchase or
            # renewal; the refundable quantities until when. Past here: the window is shut.
            "cancellationAllowedUntilDate": "2026-01-11T01:00:12Z",
            "refundableQuantity": {"totalQuantity": 0, "details": []},
            "isMicrosoftProduct": True,
            "contractType": "subscription",
            "orderId": uuid.uuid4().hex,
            "links": {
                "self": {
                    "uri": f"/customers/{tenant}/subscriptions/{subscription_id}",
                    "method": "GET",
                    "headers": [],
                }
            },
            "attributes": {"etag": _etag(), "objectType": "Subscription"},
        }
        resource.update(copy.deepcopy(fields))
        with self._lock:
            self._subscriptions[(tenant, subscription_id)] = resource
            return copy.deepcopy(resource)

    def add_invoice(
        self,
        invoice_id: str,
        invoice_date: date,
        lines: list[dict[str, Any]],
        currency: str = "USD",
    ) -> dict[str, Any]:
        """A billed invoice with its reconciliation line items (see `billing_line`), shaped
        like `GET /v1/invoices`' items; its total is the lines' subtotals."""
        total = sum((Decimal(str(line["subtotal"])) for line in lines), Decimal(0))
        start = (invoice_date.replace(day=1) - timedelta(days=1)).replace(day=1)
        invoice: dict[str, Any] = {
            "id": invoice_id,
            "invoiceDate": f"{invoice_date.isoformat()}T00:00:00Z",
            "billingPeriodStartDate": f"{start.isoformat()}T00:00:00Z",
            "billingPeriodEndDate": f"{invoice_date.replace(day=1).isoformat()}T00:00:00Z",
            "totalCharges": float(total),
            "paidAmount": 0,
            "currencyCode": currency,
            "currencySymbol": "$" if currency == "USD" else currency,
            "documentType": "invoice" if total >= 0 else "creditNote",
            "invoiceType": "Recurring",
            "invoiceDetails": [
                {
                    "invoiceLineItemType": "billing_line_items",
                    "billingProvider": "one_time",
                    "links": {
                        "self": {
                            "uri": f"/invoices/{invoice_id}/lineitems?provider=onetime"
                            f"&invoicelineitemtype=billinglineitems&currencycode={currency}",
                            "method": "GET",
                            "headers": [],
                        }
                    },
                    "attributes": {"objectType": "InvoiceDetail"},
                }
            ],
            "attributes": {"objectType": "Invoice"},
        }
        with self._lock:
            self._invoices[invoice_id] = invoice
            self._lines[invoice_id] = [
                {**copy.deepcopy(line), "invoiceNumber": invoice_id} for line in lines
            ]
            return copy.deepcopy(invoice)

    def continuations(self) -> int:
        """How many continuation tokens the line-item pages handed out."""
        with self._lock:
            return len(self._continuations)

    def subscription(self, tenant: str, subscription_id: str) -> dict[str, Any]:
        """The subscription as the server holds it now (a copy)."""
        with self._lock:
            return copy.deepcopy(self._subscriptions[(tenant, subscription_id)])

    def requests(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        """The request log, optionally one method's or one path's."""
        with self._lock:
            return [
                r
                for r in self._log
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def patches(self, tenant: str, subscription_id: str, status: int | None = None) -> int:
        """PATCH requests for a subscription (answered with `status`, when given)."""
        path = f"/v1/customers/{tenant}/subscriptions/{subscription_id}"
        return sum(1 for r in self.requests("PATCH", path) if status is None or r.status == status)

    def gets(self, tenant: str, subscription_id: str) -> int:
        return len(self.requests("GET", f"/v1/customers/{tenant}/subscriptions/{subscription_id}"))

    def tokens_issued(self) -> int:
        """How many tokens the token endpoint handed out."""
        with self._lock:
            return len(self._issued)

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    # -- faults -----------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is expired now: the next API call gets a 401."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def throttle(self, times: int, retry_after: float = 1) -> None:
        """The next `times` API calls get 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._throttle.extend([retry_after] * times)

    def fail(
        self, times: int, status: int = 500, description: str = "", method: str | None = None
    ) -> None:
        """The next `times` API calls (of `method` only, when given) get `status` with
        Partner Center's error body; `description` is what the body says."""
        with self._lock:
            text = description or "Unexpected service error"
            self._fail.extend([(method, status, text)] * times)

    def fail_path(self, prefix: str, times: int = 1, status: int = 500) -> None:
        """The next `times` API calls whose path starts with `prefix` get `status` (a page
        in the middle of a paged read, say); other calls are answered as usual."""
        with self._lock:
            self._fail_paths.extend([(prefix, status)] * times)

    def slow(self, times: int, seconds: float, method: str | None = None) -> None:
        """The next `times` API calls (of `method` only, when given) are answered `seconds`
        late. A PATCH's write lands before the wait: the client that gave up on the answer
        has changed the subscription all the same, as can happen for real."""
        with self._lock:
            self._slow.extend([(method, seconds)] * times)

    def hand_change(self, tenant: str, subscription_id: str, **fields: Any) -> dict[str, Any]:
        """Someone changes the subscription in the Partner Center portal: a new etag."""
        with self._lock:
            resource = self._subscriptions[(tenant, subscription_id)]
            resource.update(copy.deepcopy(fields))
            resource["attributes"]["etag"] = _etag()
            return copy.deepcopy(resource)

    def change_between_get_and_patch(self, times: int = 1) -> None:
        """After each of the next `times` GETs the subscription changes by hand, so the PATCH
        that follows carries a stale etag and gets 412."""
        with self._lock:
            self._change_after_get += times

    # -- handlers ---------------------------------------------------------------------

    def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        with self._lock:
            self._log.append(
                Logged(
                    request.method,
                    request.path,
                    response.status,
                    request.headers.get("MS-RequestId"),
                    request.headers.get("MS-CorrelationId"),
                )
            )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        response: web.Response
        if form.get("grant_type") != "client_credentials":
            response = web.json_response(
                {"error": "unsupported_grant_type", "error_codes": [70003]}, status=400
            )
        elif form.get("client_id") != self.client_id or (
            form.get("client_secret") != self.client_secret
        ):
            response = web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
                status=401,
            )
        elif form.get("scope") != self.scope:
            response = web.json_response(
                {"error": "invalid_scope", "error_codes": [70011]}, status=400
            )
        else:
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._tokens[token] = time.monotonic() + self.expires_in
                self._issued.append(token)
            response = web.json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "ext_expires_in": self.expires_in,
                    "access_token": token,
                }
            )
        self._record(request, response)
        return response

    def _gate(self, request: web.Request) -> tuple[web.Response | None, float]:
        """Authentication, then the injected faults, in the order a real front door has them."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is None or expiry <= time.monotonic():
                return (
                    _error(
                        401,
                        800001,
                        "Partner Token missing in request context",
                        **{"WWW-Authenticate": "OAuth realm=urn:cpsvc:cpid:test"},
                    ),
                    0.0,
                )
            if self._throttle:
                wait = self._throttle.pop(0)
                retry = f"{wait:g}"
                return (
                    web.json_response(
                        {
                            "statusCode": 429,
                            "message": f"Rate limit is exceeded. Try again in {retry} seconds.",
                        },
                        status=429,
                        headers={"Retry-After": retry},
                    ),
                    0.0,
                )
            for i, (prefix, status) in enumerate(self._fail_paths):
                if request.path.startswith(prefix):
                    del self._fail_paths[i]
                    return _error(status, 800003, "Unexpected service error"), 0.0
            failure = _take(self._fail, request.method)
            if failure is not None:
                _, status, description = failure
                return _error(status, 800003 if status >= 500 else 800002, description), 0.0
            slow = _take(self._slow, request.method)
        return None, slow[1] if slow is not None else 0.0

    async def _answer(
        self, request: web.Request, response: web.Response, delay: float
    ) -> web.Response:
        # Logged before the wait: the client may give up, and the log says what happened.
        self._record(request, response)
        if delay:
            await asyncio.sleep(delay)
        return response

    async def _get(self, request: web.Request) -> web.Response:
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        key = (request.match_info["tenant"], request.match_info["sid"])
        with self._lock:
            resource = self._subscriptions.get(key)
            if resource is None:
                response = _error(404, 20003, f"Subscription with id {key[1]} not found.")
            else:
                response = web.json_response(copy.deepcopy(resource))
                if self._change_after_get:
                    self._change_after_get -= 1
                    resource["attributes"]["etag"] = _etag()
        return await self._answer(request, response, delay)

    async def _patch(self, request: web.Request) -> web.Response:
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        key = (request.match_info["tenant"], request.match_info["sid"])
        if_match = request.headers.get("If-Match")
        with self._lock:
            response = self._apply(key, body, if_match)
        return await self._answer(request, response, delay)

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        tenant = request.match_info["tenant"]
        with self._lock:
            items = [copy.deepcopy(r) for (t, _), r in self._subscriptions.items() if t == tenant]
        body = {
            "totalCount": len(items),
            "items": items,
            "attributes": {"objectType": "Collection"},
        }
        return await self._answer(request, web.json_response(body), delay)

    async def _list_invoices(self, request: web.Request) -> web.Response:
        """The partner's invoices, newest first, as `GET /v1/invoices` lists them."""
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        with self._lock:
            items = sorted(
                (copy.deepcopy(i) for i in self._invoices.values()),
                key=lambda i: (i["invoiceDate"], i["id"]),
                reverse=True,
            )
        body = {
            "totalCount": len(items),
            "items": items,
            "attributes": {"objectType": "Collection"},
        }
        return await self._answer(request, web.json_response(body), delay)

    async def _first_lines(self, request: web.Request) -> web.Response:
        """`GET /v1/invoices/{id}/lineitems?provider=onetime&invoicelineitemtype=
        billinglineitems&currencycode=..&size=..`: the first page."""
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        query = request.query
        if (query.get("provider", "").lower(), query.get("invoicelineitemtype", "").lower()) != (
            "onetime",
            "billinglineitems",
        ):
            response = _error(400, 600041, "provider must be onetime, type billinglineitems")
            return await self._answer(request, response, 0.0)
        return await self._answer(request, self._page(request, 0), delay)

    async def _next_lines(self, request: web.Request) -> web.Response:
        """`.../lineitems/OneTime/BillingLineItems?seekOperation=Next` with the page's
        `MS-ContinuationToken` header: the next page."""
        refused, delay = self._gate(request)
        if refused is not None:
            return await self._answer(request, refused, 0.0)
        token = request.headers.get("MS-ContinuationToken", "")
        with self._lock:
            seek = self._continuations.get(token)
        if request.query.get("seekOperation") != "Next" or seek is None:
            response = _error(400, 600042, "seekOperation=Next needs a valid MS-ContinuationToken")
            return await self._answer(request, response, 0.0)
        if seek[0] != request.match_info["invoice"]:
            return await self._answer(request, _error(400, 600042, "token of another invoice"), 0.0)
        return await self._answer(request, self._page(request, seek[1]), delay)

    def _page(self, request: web.Request, offset: int) -> web.Response:
        """One page of an invoice's line items from `offset`; `links.next` while more are left."""
        invoice = request.match_info["invoice"]
        try:
            size = max(1, min(int(request.query.get("size", "2000")), 2000))
        except ValueError:
            return _error(400, 600043, "size must be a number")
        with self._lock:
            lines = self._lines.get(invoice)
            if lines is None:
                return _error(404, 600013, f"Invoice {invoice} not found")
            items = copy.deepcopy(lines[offset : offset + size])
            body: dict[str, Any] = {
                "totalCount": len(items),
                "items": items,
                "links": {"self": {"uri": f"/invoices/{invoice}/lineitems", "method": "GET"}},
                "attributes": {"objectType": "Collection"},
            }
            if offset + size < len(lines):
                token = secrets.token_urlsafe(18)
                self._continuations[token] = (invoice, offset + size)
                body["continuationToken"] = token
                body["links"]["next"] = {
                    "uri": f"/invoices/{invoice}/lineitems/OneTime/BillingLineItems"
                    f"?seekOperation=Next&size={size}",
                    "method": "GET",
                    "headers": [{"key": "MS-ContinuationToken", "value": token}],
                }
        return web.json_response(body)

    def _apply(self, key: tuple[str, str], body: Any, if_match: str | None) -> web.Response:
        """PATCH under the lock: the checks and the write Partner Center makes."""
        resource = self._subscriptions.get(key)
        if resource is None:
            return _error(404, 20003, f"Subscription with id {key[1]} not found.")
        # Not `or`: a Response is a mapping, falsy while its state is empty.
        refused = _precondition_failed(resource, if_match)
        if refused is None:
            refused = _invalid_patch(resource, key, body)
        if refused is not None:
            return refused
        _write(resource, body)
        resource["attributes"]["etag"] = _etag()
        return web.json_response(copy.deepcopy(resource))


def _precondition_failed(resource: dict[str, Any], if_match: str | None) -> web.Response | None:
    """412 unless the PATCH names the subscription's current etag."""
    current = resource["attributes"]["etag"]
    if if_match is None:
        return _error(412, 2055, "An If-Match header with the subscription's etag is required")
    if if_match.strip().removeprefix("W/").strip('"') != current:
        return _error(412, 2055, "Etag is no longer valid")
    return None


def _invalid_patch(
    resource: dict[str, Any], key: tuple[str, str], body: Any
) -> web.Response | None:
    """400 for a body Partner Center refuses: not a whole subscription, or a change it forbids."""
    if not isinstance(body, dict) or body.get("id") != key[1]:
        return _error(400, 800002, "Invalid request input: a whole Subscription is required")
    status = body.get("status")
    if status not in ("active", "suspended"):
        return _error(400, 3000, "Invalid property: status")
    auto_renew = body.get("autoRenewEnabled", resource.get("autoRenewEnabled"))
    if status == "suspended" and resource["status"] == "suspended" and auto_renew:
        return _error(400, 2001, "A suspended subscription cannot be changed")
    if body.get("scheduledNextTermInstructions") is not None and not auto_renew:
        return _error(400, 800002, "Scheduled changes need autoRenewEnabled true")
    return None


def _write(resource: dict[str, Any], body: dict[str, Any]) -> None:
    """The write of a valid PATCH (the etag is renewed by the caller)."""
    auto_renew = body.get("autoRenewEnabled", resource.get("autoRenewEnabled"))
    scheduled = body.get("scheduledNextTermInstructions")
    if body["status"] == "suspended":
        # What the real service does: no renewal, and the mid-term change deletes
        # whatever was scheduled for the renewal.
        resource["status"] = "suspended"
        resource["autoRenewEnabled"] = False
        resource.pop("scheduledNextTermInstructions", None)
    else:
        resource["status"] = "active"
        resource["autoRenewEnabled"] = bool(auto_renew)
        if scheduled is not None:
            resource["scheduledNextTermInstructions"] = copy.deepcopy(scheduled)
        else:
            resource.pop("scheduledNextTermInstructions", None)
    for field in ("friendlyName", "quantity"):
        if field in body:
            resource[field] = body[field]


def billing_line(
    tenant: str,
    subscription_id: str,
    charge_start: date,
    charge_end: date,
    subtotal: Decimal | str,
    *,
    currency: str = "USD",
    **fields: Any,
) -> dict[str, Any]:
    """One billed reconciliation line (`OneTimeInvoiceLineItem`), as the onetime billing
    line items carry it; `fields` override the defaults."""
    amount = Decimal(str(subtotal))
    line: dict[str, Any] = {
        "partnerId": PARTNER_TENANT,
        "customerId": tenant,
        "customerName": "Test customer",
        "customerDomainName": "test.onmicrosoft.com",
        "customerCountry": "TW",
        "invoiceNumber": "",
        "mpnId": "1234567",
        "orderId": uuid.uuid4().hex,
        "orderDate": f"{charge_start.isoformat()}T00:00:00Z",
        "productId": "CFQ7TTC0LH18",
        "skuId": "0001",
        "availabilityId": "CFQ7TTC0K5BF",
        "skuName": "Microsoft 365 Business Basic",
        "productName": "Microsoft 365 Business Basic",
        "chargeType": "cycleCharge",
        "unitPrice": float(amount),
        "effectiveUnitPrice": float(amount),
        "unitType": "",
        "quantity": 1,
        "subtotal": float(amount),
        "taxTotal": 0,
        "totalForCustomer": float(amount),
        "currency": currency,
        "publisherName": "Microsoft Corporation",
        "publisherId": "",
        "subscriptionDescription": "",
        "subscriptionId": subscription_id,
        "chargeStartDate": _midnight(charge_start),
        "chargeEndDate": _midnight(charge_end),
        "termAndBillingCycle": "1 Year Subscription",
        "alternateId": uuid.uuid4().hex[:12],
        "priceAdjustmentDescription": "",
        "discountDetails": "",
        "pricingCurrency": currency,
        "pcToBCExchangeRate": 1,
        "pcToBCExchangeRateDate": f"{charge_start.isoformat()}T00:00:00Z",
        "billableQuantity": 1,
        "meterDescription": "",
        "billingFrequency": "Monthly",
        "reservationOrderId": "",
        "invoiceLineItemType": "billingLineItems",
        "billingProvider": "oneTime",
        "attributes": {"objectType": "OneTimeInvoiceLineItem"},
    }
    line.update(copy.deepcopy(fields))
    return line


def _midnight(day: date) -> str:
    return datetime.combine(day, daytime(0)).isoformat() + "Z"
