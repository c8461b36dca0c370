"""Support requests in the console: the helpdesk's signed webhook, the open list, a ticket.

`POST /hooks/helpdesk` is open (no sign-in) but takes only a Standard Webhooks delivery
signed with HELPDESK_SECRET (404 while it is unset), fresh (±5 minutes) and not seen before
(a retry answers 200 "duplicate" and sends nothing); its body becomes one `support.*` event
on support.requests.v1, keyed by the customer, audited as the helpdesk's action.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from billstate_console.actions import SendError
from billstate_console.domain.helpdesk import PayloadRefused, parse
from billstate_console.domain.i18n import Words
from billstate_console.domain.support import FLAGGING, Ticket, age_days, age_text
from billstate_console.web import STORE, _render, _state, _words, customer_json, subscriptions
from billstate_console.web_ops import ACTIONS
from billstate_shared.contracts import Event
from billstate_shared.topics import SUPPORT
from billstate_shared.webhooks import WebhookVerificationError, verify, verify_zendesk

HOOK_PATH = "/hooks/helpdesk"
ZENDESK_PATH = "/hooks/zendesk"
HELPDESK = web.AppKey("console_helpdesk_secret", str)
ZENDESK = web.AppKey("console_zendesk_secret", str)
ACTOR = "helpdesk"  # the audit's actor of what the receiver sends
# Refusals of a delivery's form (400); any other verification failure is a 401.
_MALFORMED = frozenset({"missing headers", "malformed timestamp", "malformed signature"})
# A ticket id as the pack's text may carry it (it goes into a support request's text).
_TICKET = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.post(HOOK_PATH, helpdesk_hook),
            web.post(ZENDESK_PATH, zendesk_hook),
            web.get("/support", support_page),
            web.get("/api/support", support_api),
            web.get("/customers/{customer_id}/support/{ticket_id}", ticket_page),
            web.get("/api/customers/{customer_id}/support/{ticket_id}", ticket_api),
        ]
    )


# ---- the receiver ---------------------------------------------------------------------------


def _answer(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status)


async def _delivery(request: web.Request, secret: str) -> tuple[str, Event] | web.Response:
    """The delivery's webhook id and event, or the refusal to answer with."""
    body = await request.read()
    try:
        verify(secret, body, request.headers)
    except WebhookVerificationError as err:
        return _answer(400 if err.reason in _MALFORMED else 401, error=err.reason, field="$")
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    try:
        return request.headers["webhook-id"], parse(body, at)
    except PayloadRefused as err:
        return _answer(422, error=err.reason, field=err.field)


async def helpdesk_hook(request: web.Request) -> web.Response:
    secret = request.app.get(HELPDESK)
    if secret is None:
        return _answer(404, error="the helpdesk receiver is not configured")
    found = await _delivery(request, secret)
    if isinstance(found, web.Response):
        return found
    return await _accept(request, *found)


async def zendesk_hook(request: web.Request) -> web.Response:
    """Zendesk's own signature scheme; the body is the documented Zendesk template."""
    secret = request.app.get(ZENDESK)
    if secret is None:
        return _answer(404, error="the Zendesk receiver is not configured")
    body = await request.read()
    now = datetime.now(UTC)
    try:
        invocation = verify_zendesk(secret, body, request.headers, now)
    except WebhookVerificationError as err:
        return _answer(400 if err.reason in _MALFORMED else 401, error=err.reason, field="$")
    try:
        event = parse(body, now)
    except PayloadRefused as err:
        return _answer(422, error=err.reason, field=err.field)
    return await _accept(request, f"zendesk:{invocation}", event)


async def _accept(request: web.Request, hook_id: str, event: Event) -> web.Response:
    """Send a verified delivery's event once: a retry of the same delivery sends nothing."""
    actions, store = request.app.get(ACTIONS), request.app[STORE]
    if not store.claim_hook(hook_id):
        return _answer(200, result="duplicate")
    if actions is None:
        store.release_hook(hook_id)
        return _answer(503, error="actions are not configured (no producer)")
    try:
        await actions.send(SUPPORT.name, event)
    except SendError as err:
        # Nothing was taken: the helpdesk's retry (same webhook id) must go through.
        store.release_hook(hook_id)
        store.record_action(
            ACTOR, event.event_type, subject=event.customer_id, topic=SUPPORT.name,
            result="failed", detail=str(err),
        )  # fmt: skip
        return _answer(503, error=str(err))
    store.record_action(
        ACTOR, event.event_type, subject=event.customer_id, topic=SUPPORT.name,
        event_id=event.event_id,
    )  # fmt: skip
    return _answer(202, result="sent", event_id=event.event_id, topic=SUPPORT.name)


# ---- reading --------------------------------------------------------------------------------


def ticket_json(ticket: Ticket, now: datetime, words: Words) -> dict[str, Any]:
    days = age_days(ticket, now) if ticket.opened_at else None
    return {
        "customer_id": ticket.customer_id,
        "ticket_id": ticket.ticket_id,
        "topic": ticket.topic,
        "channel": ticket.channel,
        "summary": ticket.summary,
        "opened_at": ticket.opened_at,
        "age_days": days,
        "age": None if days is None else age_text(days, words),
        "resolved_at": ticket.resolved_at,
        "resolution": ticket.resolution,
    }


def open_requests(request: web.Request) -> list[dict[str, Any]]:
    store, words, now = request.app[STORE], _words(request), datetime.now(UTC)
    items = []
    for ticket in store.open_tickets():
        row = ticket_json(ticket, now, words)
        found = store.customer(ticket.customer_id)
        row["name"] = found.name if found else None
        items.append(row)
    return items


async def support_page(request: web.Request) -> web.Response:
    return _render(request, "support.html.j2", items=open_requests(request))


async def support_api(request: web.Request) -> web.Response:
    return web.json_response({"items": open_requests(request)})


def disputed(store_tickets: list[Ticket], state: dict[str, Any]) -> bool:
    """An open dispute ticket, by the console's own read or by collections' state."""
    ours = any(t.topic == FLAGGING for t in store_tickets)
    theirs = any(t.get("topic") == FLAGGING for t in state.get("tickets", []))
    return ours or theirs


def _ticket_detail(request: web.Request) -> dict[str, Any] | None:
    store, words = request.app[STORE], _words(request)
    cid, tid = request.match_info["customer_id"], request.match_info["ticket_id"]
    ticket = store.ticket(cid, tid)
    customer = store.customer(cid)
    if ticket is None or ticket.opened_at is None or customer is None:
        return None
    state = _state(customer)
    claim = next((t for t in state.get("tickets", []) if t.get("ticket_id") == tid), None)
    subs = subscriptions(customer, store.access(cid), store.parked(cid))
    problems = [s for s in subs if s["access"] in {"failed", "drift"}]
    cases = []
    for view in store.cases_of(cid):
        # What billstate cannot fix by itself: an access.failed after its retries, a drift
        # it could not repair; each with its pack marked with this ticket.
        link = f"/cases/{quote(view.case.case_id, safe='')}/pack?ticket={quote(tid, safe='')}"
        cases.append(
            {
                "case_id": view.case.case_id,
                "kind": view.case.kind,
                "subscription_id": view.case.subscription_id,
                "provider": view.case.provider,
                "error": view.case.error,
                "status": view.status,
                "pack": link if view.status != "resolved" else None,
            }
        )
    return {
        "ticket": ticket_json(ticket, datetime.now(UTC), words),
        "holds_until": claim.get("holds_until") if claim else None,
        "customer": customer_json(customer),
        "disputed": disputed(store.open_tickets(cid), state),
        "subscriptions": subs,
        "access_problems": problems,
        "cases": cases,
    }


async def ticket_page(request: web.Request) -> web.Response:
    detail = _ticket_detail(request)
    if detail is None:
        return _render(request, "missing.html.j2", status=404)
    return _render(request, "ticket.html.j2", **detail)


async def ticket_api(request: web.Request) -> web.Response:
    detail = _ticket_detail(request)
    if detail is None:
        return web.json_response({"error": "unknown ticket"}, status=404)
    return web.json_response(detail)


def pack_header(ticket: str | None) -> str:
    """The pack's first line when it goes with a support ticket ("" for none or a bad id)."""
    if ticket and _TICKET.fullmatch(ticket):
        return f"Support ticket: {ticket}\n"
    return ""


__all__ = [
    "HELPDESK",
    "HOOK_PATH",
    "ZENDESK",
    "add_routes",
    "disputed",
    "open_requests",
    "pack_header",
    "ticket_json",
]
