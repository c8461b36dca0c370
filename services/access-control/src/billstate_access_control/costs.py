"""The cost poller: Partner Center's billed reconciliation line items to `cost.recorded`.

Each round lists the partner's invoices, and for each of the newest few not read before, reads
all its billed line items a page at a time (`links.next` with its `MS-ContinuationToken`),
turns them into one `cost.recorded` per customer, subscription and charge period, sends them,
and only then marks the invoice read. A failure part-way (a 500 that outlasts the retries, a
page the service refuses) sends nothing of that invoice and leaves it for the next round; a
crash between sending and marking sends the same ids again, which consumers dedupe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import structlog

from billstate_access_control.domain.costs import Line, costs, line
from billstate_access_control.periodic import Periodic
from billstate_access_control.providers.partner_center import PartnerCenterProvider
from billstate_access_control.store import Store
from billstate_shared.contracts import encode
from billstate_shared.errors import ExternalError, Refused
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy, Sleep
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.topics import COSTS

log = structlog.get_logger("billstate.access_control.costs")

Send = Callable[[Produce], Awaitable[None]]
MARK = "invoice"  # the store's mark for an invoice whose lines were all sent
MAX_PAGES = 10_000  # a server that keeps saying "next" must not hold the round forever


@dataclass
class Poll:
    """What one round did."""

    invoices: int = 0  # invoices read and sent
    skipped: int = 0  # invoices read in an earlier round
    failed: int = 0  # invoices left for the next round
    pages: int = 0
    lines: int = 0
    unmapped: int = 0  # lines of tenants that are no customer of ours
    sent: int = 0  # cost.recorded events

    def public(self) -> dict[str, int]:
        return dict(self.__dict__)


class CostPoller(Periodic):
    """`run_once` is one round; `run(interval)` repeats it until stopped."""

    what = "cost poll"

    def __init__(
        self,
        *,
        provider: PartnerCenterProvider,
        store: Store,
        send: Send,
        retry: RetryPolicy,
        invoices: int = 3,
        page: int = 2000,
        sleep: Sleep | None = None,
        clock: WallClock = utc_now,
    ) -> None:
        super().__init__()
        self.provider, self.store, self.send, self.retry = provider, store, send, retry
        self.invoices, self.page, self.sleep, self.clock = invoices, page, sleep, clock

    async def run_once(self) -> Poll:
        result = Poll()
        listing = await self._get("/v1/invoices")
        items = [i for i in _items(listing) if isinstance(i.get("id"), str) and i["id"]]
        items.sort(key=lambda i: (str(i.get("invoiceDate", "")), i["id"]), reverse=True)
        for invoice in items[: self.invoices]:
            if self.stopping:
                break
            invoice_id = str(invoice["id"])
            if self.store.marked(MARK, invoice_id):
                result.skipped += 1
                continue
            try:
                await self._invoice(invoice_id, invoice, result)
            except (ExternalError, Refused) as err:
                result.failed += 1
                log.warning("cost lines not read", invoice=invoice_id, error=str(err)[:300])
        log.info("costs polled", **result.public())
        return result

    async def _invoice(self, invoice_id: str, invoice: dict[str, Any], result: Poll) -> None:
        currency = str(invoice.get("currencyCode") or "USD")
        path: str | None = (
            f"/v1/invoices/{quote(invoice_id, safe='')}/lineitems?provider=onetime"
            f"&invoicelineitemtype=billinglineitems&currencycode={quote(currency)}"
            f"&size={self.page}"
        )
        continuation: str | None = None
        lines: list[Line] = []
        pages = 0
        while path is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise Refused("links.next", f"more than {MAX_PAGES} pages")
            body = await self._get(path, continuation)
            for item in _items(body):
                mapped = line(item, self.provider.customer_of, self.provider.subscription_of)
                result.lines += 1
                if mapped is None:
                    result.unmapped += 1
                else:
                    lines.append(mapped)
            path, continuation = _next(body)
        result.pages += pages
        events = costs(invoice_id, _billed_on(invoice), lines)
        for event in events:
            await self.send(Produce(COSTS.name, event.customer_id.encode(), encode(event)))
        self.store.mark(MARK, invoice_id, self.clock())
        result.invoices += 1
        result.sent += len(events)

    async def _get(self, path: str, continuation: str | None = None) -> Any:
        """One GET under the retry policy: a 429 waits its Retry-After, a 5xx backs off."""
        return await self.retry.call(
            lambda: self.provider.read(path, continuation=continuation), sleep=self.sleep
        )


def _items(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _next(body: Any) -> tuple[str | None, str | None]:
    """The next page's path below the API root and its continuation token, or (None, None)."""
    links = body.get("links") if isinstance(body, dict) else None
    following = links.get("next") if isinstance(links, dict) else None
    if not isinstance(following, dict) or not isinstance(following.get("uri"), str):
        return None, None
    uri = str(following["uri"])
    # Partner Center's links leave out the version: /invoices/... is /v1/invoices/...
    path = uri if uri.startswith("/v1/") else "/v1" + (uri if uri.startswith("/") else "/" + uri)
    token = body.get("continuationToken")
    for header in following.get("headers") or []:
        if isinstance(header, dict) and header.get("key") == "MS-ContinuationToken":
            token = header.get("value")
    return path, token if isinstance(token, str) else None


def _billed_on(invoice: dict[str, Any]) -> date:
    value = str(invoice.get("invoiceDate", ""))
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise Refused("invoiceDate", f"not a date: {value[:40]!r}") from None
