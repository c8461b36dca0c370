"""The console's operations pages and actions: escalations and their pack, approvals, dead
letters and re-drives, holds, browser sign-in; the JSON API beside each page.

Every action builds its event with `billstate_shared.operator` (the CLI's code), names the
signed-in identity as `by`, sends it through the service's producer, waits for the broker's
acknowledgement, records an audit row, and redirects (POST-redirect-GET) with a message. A
refusal is answered 400 with the builder's message next to its field.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from billstate_console.actions import Actions, SendError
from billstate_console.domain import cases as ops
from billstate_console.domain.auth import SESSION_COOKIE, issue, signed_in, token_identity
from billstate_console.web import AUTH, IDENTITY, STORE, _render, _words, environment
from billstate_shared.errors import Refused
from billstate_shared.operator.approvals import VERBS, Verb, age, build_decision_for
from billstate_shared.operator.cases import STEPS, Step, build_note
from billstate_shared.operator.holds import KINDS, OptionRefused, build_placed, build_released
from billstate_shared.operator.letters import DLQ_NAMES, Letter, newest_sequences, plan_redrive
from billstate_shared.runtime.health import Progress
from billstate_shared.topics import ACCESS_COMMANDS, APPROVALS, CASES, CONTROL

ACTIONS = web.AppKey("console_actions", Actions)
CLUSTER = web.AppKey("console_cluster", object)
PROGRESS = web.AppKey("console_progress", Progress)
SENT = "sent"

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, progress: Progress) -> None:
    app[PROGRESS] = progress
    app.add_routes(
        [
            web.get("/signin", signin_page),
            web.post("/signin", signin),
            web.post("/signout", signout),
            web.get("/escalations", escalations_page),
            web.get("/cases/{case_id}", case_page),
            web.get("/cases/{case_id}/pack", pack_text),
            web.post("/cases/{case_id}/{step:acknowledge|resolve}", case_form),
            web.get("/approvals", approvals_page),
            web.post("/approvals/{command_id}/{verb:approve|reject}", approval_form),
            web.get("/dead-letters", letters_page),
            web.get("/audit", audit_page),
            web.get("/api/audit", audit_api),
            web.post("/dead-letters/redrive", redrive_form),
            web.post("/customers/{customer_id}/holds", hold_form),
            web.post("/customers/{customer_id}/holds/{hold_id}/release", release_form),
            web.get("/api/operations", operations_api),
            web.get("/api/cases", cases_api),
            web.get("/api/cases/{case_id}", case_api),
            web.get("/api/cases/{case_id}/pack", pack_api),
            web.post("/api/cases/{case_id}/{step:acknowledge|resolve}", case_api_post),
            web.get("/api/approvals", approvals_api),
            web.post("/api/approvals/{command_id}/{verb:approve|reject}", approval_api_post),
            web.get("/api/dead-letters", letters_api),
            web.post("/api/dead-letters/redrive", redrive_api),
            web.post("/api/customers/{customer_id}/holds", hold_api),
            web.post("/api/customers/{customer_id}/holds/{hold_id}/release", release_api),
        ]
    )


# ---- helpers --------------------------------------------------------------------------------


def _now() -> datetime:
    # occurred_at of an operator event: when the operator acted; nothing decides by it.
    return datetime.now(UTC).replace(microsecond=0)


def _lang(request: web.Request) -> str:
    return _words(request).lang


def _back(request: web.Request, path: str, message: str = SENT) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode({'lang': _lang(request), 'msg': message})}")


class NoActor(Refused):
    """A sign-in that gives no operator id (a proxy user that is an e-mail address)."""

    def __init__(self) -> None:
        super().__init__(
            "by",
            "this sign-in gives no operator id (the proxy's username header is missing and"
            " the user is an e-mail address)",
            event_type=None,
        )


def _actor(request: web.Request) -> str:
    actor = request[IDENTITY].actor
    if actor is None:
        raise NoActor
    return actor


def _field(err: Refused) -> str:
    return err.name if isinstance(err, OptionRefused) else err.field


def _refusal(err: Refused) -> dict[str, str]:
    return {"error": err.reason, "field": _field(err)}


async def _form(request: web.Request) -> dict[str, str]:
    posted = await request.post()
    return {k: v for k, v in posted.items() if isinstance(v, str)}


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = await request.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""


def _optional(doc: dict[str, Any], name: str) -> str | None:
    return _text(doc, name).strip() or None


NO_PRODUCER = "actions are not configured (no producer)"


def _refused(request: web.Request, kind: type[web.HTTPError], reason: str) -> web.HTTPError:
    """A 404 or 503 in the route's own language: JSON `{error}` under /api, text elsewhere."""
    if request.path.startswith("/api/"):
        return kind(text=json.dumps({"error": reason}), content_type="application/json")
    return kind(text=reason)


async def _send(request: web.Request, topic: str, event: Any, action: str, subject: str) -> None:
    actions = request.app.get(ACTIONS)
    store = request.app[STORE]
    if actions is None:
        raise _refused(
            request, web.HTTPServiceUnavailable, "actions are not configured (no producer)"
        )
    try:
        await actions.send(topic, event)
    except SendError as err:
        store.record_action(
            _actor(request), action, subject=subject, topic=topic, result="failed",
            detail=str(err),
        )  # fmt: skip
        raise _refused(request, web.HTTPServiceUnavailable, str(err)) from None
    store.record_action(
        _actor(request), action, subject=subject, topic=topic, event_id=event.event_id
    )


@contextmanager
def _audited(request: web.Request, action: str, subject: str, topic: str) -> Iterator[None]:
    """A refused action is audited too (nothing was sent); one without an operator id is
    not: there is no one to name."""
    try:
        yield
    except Refused as err:
        actor = request[IDENTITY].actor
        if actor is not None and not isinstance(err, NoActor):
            request.app[STORE].record_action(
                actor, action, subject=subject, topic=topic, result="refused",
                detail=f"{_field(err)}: {err.reason}",
            )  # fmt: skip
        raise


# ---- sign-in --------------------------------------------------------------------------------


def _secure(request: web.Request) -> bool:
    # Behind a proxy the connection is plain HTTP; the proxy says what the browser used.
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _signin_html(request: web.Request, *, error: bool, status: int) -> web.Response:
    words = _words(request)
    html = (
        environment()
        .get_template("signin.html.j2")
        .render(
            t=words,
            lang=words.lang,
            identity=None,
            path=request.path,
            csrf="",
            error=error,
            next=_next(request.query.get("next")),
        )
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def _next(value: str | None) -> str:
    # Only a path of this site: never an address elsewhere (an open redirect).
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def signin_page(request: web.Request) -> web.Response:
    return _signin_html(request, error=False, status=200)


async def signin(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    config = request.app[AUTH]
    found = token_identity(config, form.get("token", "").strip())
    if found is None:
        return _signin_html(request, error=True, status=401)
    nonce = secrets.token_urlsafe(16)
    identity = signed_in(found, nonce)
    response = web.HTTPSeeOther(_next(form.get("next")))
    response.set_cookie(
        SESSION_COOKIE,
        issue(config, identity, nonce=nonce, now=datetime.now(UTC)),
        max_age=int(config.session_ttl.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/",
    )
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther(f"/signin?lang={_lang(request)}")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# ---- escalations ----------------------------------------------------------------------------


def _case_json(case: ops.Case, status: str) -> dict[str, Any]:
    body = asdict(case)
    body.pop("raw")
    body["status"] = status
    return body


def _status(request: web.Request) -> str | None:
    status = request.query.get("status")
    return status if status in ops.STATUSES else None


async def escalations_page(request: web.Request) -> web.Response:
    status = _status(request)
    store = request.app[STORE]
    return _render(
        request,
        "escalations.html.j2",
        items=store.cases(status),
        chosen=status,
        statuses=ops.STATUSES,
        counts=store.case_counts(),
    )


async def cases_api(request: web.Request) -> web.Response:
    items = request.app[STORE].cases(_status(request))
    return web.json_response({"items": [_case_json(v.case, v.status) for v in items]})


def _pack(request: web.Request) -> ops.Pack:
    found = request.app[STORE].case(request.match_info["case_id"])
    if found is None:
        raise _refused(request, web.HTTPNotFound, "unknown case")
    return ops.pack(*found)


def _case_context(request: web.Request) -> dict[str, Any]:
    store = request.app[STORE]
    found = store.case(request.match_info["case_id"])
    if found is None:
        raise _refused(request, web.HTTPNotFound, "unknown case")
    case, notes = found
    return {
        "case": case,
        "notes": notes,
        "case_status": ops.status(notes),
        "pack": ops.pack(case, notes),
        "customer": store.customer(case.customer_id),
        "message": request.query.get("msg"),
        "error": None,
        "form": {},
    }


async def case_page(request: web.Request) -> web.Response:
    return _render(request, "case.html.j2", **_case_context(request))


async def case_api(request: web.Request) -> web.Response:
    found = request.app[STORE].case(request.match_info["case_id"])
    if found is None:
        return web.json_response({"error": "unknown case"}, status=404)
    case, notes = found
    body = _case_json(case, ops.status(notes))
    body["exchanges"] = ops.pack(case, notes).exchanges
    body["notes"] = [asdict(n) for n in notes]
    return web.json_response(body)


async def pack_text(request: web.Request) -> web.Response:
    from billstate_console.web_support import pack_header  # noqa: PLC0415  (it builds on this)

    # `?ticket=`: the pack goes with a customer's support ticket (the ticket page links so).
    head = pack_header(request.query.get("ticket"))
    return web.Response(text=head + ops.pack_text(_pack(request)), content_type="text/plain")


async def pack_api(request: web.Request) -> web.Response:
    return web.json_response(asdict(_pack(request)))


_STEP_OF: dict[str, Step] = {"acknowledge": "acknowledged", "resolve": "resolved"}
assert set(_STEP_OF.values()) == set(STEPS)


async def _case_note(request: web.Request, note: str) -> Any:
    found = request.app[STORE].case(request.match_info["case_id"])
    if found is None:
        raise _refused(request, web.HTTPNotFound, "unknown case")
    case = found[0]
    step = _STEP_OF[request.match_info["step"]]
    with _audited(request, f"case.{step}", case.case_id, CASES.name):
        event = build_note(step, case.customer_id, case.case_id, _actor(request), note, now=_now())
    await _send(request, CASES.name, event, f"case.{step}", case.case_id)
    return event


async def case_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        await _case_note(request, form.get("note", ""))
    except Refused as err:
        context = _case_context(request)
        context.update(
            error=_refusal(err), form={"note": "", **form, "step": request.match_info["step"]}
        )
        return _render(request, "case.html.j2", status=400, **context)
    raise _back(request, f"/cases/{quote(request.match_info['case_id'], safe='')}")


async def case_api_post(request: web.Request) -> web.Response:
    try:
        event = await _case_note(request, _text(await _body(request), "note"))
    except Refused as err:
        return web.json_response(_refusal(err), status=400)
    return web.json_response({"event_id": event.event_id, "topic": CASES.name}, status=202)


# ---- approvals ------------------------------------------------------------------------------


def _parking_json(p: ops.Parking, now: datetime) -> dict[str, Any]:
    return {
        "customer_id": p.customer_id,
        "command_id": p.command_id,
        "subscription_ids": json.loads(p.subscription_ids),
        "provider": p.provider,
        "guard": p.guard,
        "reason": p.reason,
        "parked_at": p.occurred_at,
        "age": age(datetime.fromisoformat(p.occurred_at), now),
    }


async def approvals_page(request: web.Request, error: dict[str, str] | None = None) -> web.Response:
    now = datetime.now(UTC)
    items = [_parking_json(p, now) for p in request.app[STORE].parked()]
    return _render(
        request,
        "approvals.html.j2",
        status=400 if error else 200,
        items=items,
        message=request.query.get("msg"),
        error=error,
        failed=request.match_info.get("command_id"),
    )


async def approvals_api(request: web.Request) -> web.Response:
    now = datetime.now(UTC)
    return web.json_response(
        {"items": [_parking_json(p, now) for p in request.app[STORE].parked()]}
    )


async def _decide(request: web.Request, reason: str) -> Any:
    command_id = request.match_info["command_id"]
    parked = request.app[STORE].parking(command_id)
    if parked is None:
        raise _refused(request, web.HTTPNotFound, "no parked suspension waits with this command id")
    verb: Verb = "approve" if request.match_info["verb"] == "approve" else "reject"
    assert verb in VERBS
    with _audited(request, f"access.{verb}", command_id, APPROVALS.name):
        event = build_decision_for(
            verb, parked.customer_id, command_id, _actor(request), reason, now=_now()
        )
    await _send(request, APPROVALS.name, event, event.event_type, command_id)
    return event


async def approval_form(request: web.Request) -> web.StreamResponse:
    try:
        await _decide(request, (await _form(request)).get("reason", ""))
    except Refused as err:
        return await approvals_page(request, _refusal(err))
    raise _back(request, "/approvals")


async def approval_api_post(request: web.Request) -> web.Response:
    try:
        event = await _decide(request, _text(await _body(request), "reason"))
    except Refused as err:
        return web.json_response(_refusal(err), status=400)
    return web.json_response({"event_id": event.event_id, "topic": APPROVALS.name}, status=202)


# ---- dead letters ---------------------------------------------------------------------------


def _letter_json(x: ops.DeadLetter) -> dict[str, Any]:
    body = asdict(x)
    body.pop("key")
    body.pop("value")
    value = ops.unb64(x.value)
    body["value"] = None if value is None else value.decode("utf-8", "replace")
    return body


def _topic(value: str | None) -> str | None:
    return value if value in DLQ_NAMES else None


async def letters_page(request: web.Request, result: dict[str, Any] | None = None) -> web.Response:
    store = request.app[STORE]
    topic = _topic(request.query.get("topic"))
    return _render(
        request,
        "dead_letters.html.j2",
        status=400 if result and result.get("error") else 200,
        counts=store.letter_counts(),
        topic=topic,
        items=store.letters(topic),
        message=request.query.get("msg"),
        result=result,
    )


async def letters_api(request: web.Request) -> web.Response:
    store = request.app[STORE]
    topic = _topic(request.query.get("topic"))
    return web.json_response(
        {"counts": store.letter_counts(), "items": [_letter_json(x) for x in store.letters(topic)]}
    )


class Unselected(Refused):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason, event_type=None)


async def _redrive(request: web.Request, topic: str, positions: list[str]) -> dict[str, Any]:
    """The CLI's plan over the selected letters (its stale check included), then each
    record sent back to its original topic and audited."""
    with _audited(request, "redrive", topic, topic):
        if topic not in DLQ_NAMES:
            raise Unselected("topic", "is not a dead-letter topic of the catalog")
        wanted = set(positions)
        kept = [
            x for x in request.app[STORE].letters(topic) if f"{x.partition}:{x.offset}" in wanted
        ]
        if not wanted or len(kept) != len(wanted):
            raise Unselected("letters", "select one or more dead letters of this topic")
    letters = [
        Letter(x.partition, x.offset, 0, ops.unb64(x.key), ops.unb64(x.value), _headers(x))
        for x in kept
    ]
    newest: dict[str, int] = {}
    if topic == ACCESS_COMMANDS.dlq:
        cluster: Any = request.app[CLUSTER]
        customers = {c for c in (x.customer() for x in letters) if c is not None}
        newest = await newest_sequences(cluster, customers)
    plan = plan_redrive(topic, letters, newest)
    actions = request.app.get(ACTIONS)
    if actions is None:
        raise _refused(
            request, web.HTTPServiceUnavailable, "actions are not configured (no producer)"
        )
    actor = _actor(request)
    sent = []
    for item in plan.items:
        try:
            await actions.send_raw(item.topic, item.key, item.value, item.headers)
        except SendError as err:
            request.app[STORE].record_action(
                actor, "redrive", subject=f"{topic}:{item.origin}", topic=item.topic,
                result="failed", detail=str(err),
            )  # fmt: skip
            raise _refused(request, web.HTTPServiceUnavailable, str(err)) from None
        request.app[STORE].record_action(
            actor, "redrive", subject=f"{topic}:{item.origin}", topic=item.topic,
            event_id=item.event.event_id,
        )  # fmt: skip
        sent.append(f"{topic}:{item.origin}")
    # What the plan held back was not sent: one row each, with the plan's words.
    for kept_back in [*plan.refused, *plan.duplicates, *plan.stale]:
        request.app[STORE].record_action(
            actor, "redrive", subject=topic, topic=topic, result="refused", detail=kept_back
        )
    return {
        "sent": sent,
        "refused": plan.refused,
        "duplicates": plan.duplicates,
        "stale": plan.stale,
    }


def _headers(x: ops.DeadLetter) -> dict[str, str]:
    h = {"reason": x.reason, "field": x.field, "service": x.service}
    if x.source_topic is not None:
        h["topic"] = x.source_topic
        h["partition"] = str(x.source_partition)
        h["offset"] = str(x.source_offset)
    return h


async def redrive_form(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    topic = posted.get("topic")
    chosen = [v for v in posted.getall("letter", []) if isinstance(v, str)]
    try:
        result = await _redrive(request, topic if isinstance(topic, str) else "", chosen)
    except Refused as err:
        return await letters_page(request, _refusal(err))
    if result["refused"] or result["stale"] or result["duplicates"]:
        return await letters_page(request, result)
    raise _back(request, "/dead-letters")


async def redrive_api(request: web.Request) -> web.Response:
    doc = await _body(request)
    positions = doc.get("letters")
    chosen = [p for p in positions if isinstance(p, str)] if isinstance(positions, list) else []
    try:
        result = await _redrive(request, _text(doc, "topic"), chosen)
    except Refused as err:
        return web.json_response(_refusal(err), status=400)
    return web.json_response(result, status=202 if result["sent"] else 200)


# ---- holds ----------------------------------------------------------------------------------


async def _place(request: web.Request, doc: dict[str, Any]) -> Any:
    customer = request.match_info["customer_id"]
    with _audited(request, "hold.placed", customer, CONTROL.name):
        event = build_placed(
            customer, _text(doc, "kind"), _text(doc, "reason"), _actor(request), _now(),
            invoice=_optional(doc, "invoice"), amount=_optional(doc, "amount"),
            until=_optional(doc, "until"),
        )  # fmt: skip
    await _send(request, CONTROL.name, event, "hold.placed", customer)
    return event


async def _release(request: web.Request, doc: dict[str, Any]) -> Any:
    customer = request.match_info["customer_id"]
    hold_id = request.match_info["hold_id"]
    with _audited(request, "hold.released", customer, CONTROL.name):
        event = build_released(customer, hold_id, _text(doc, "reason"), _actor(request), _now())
    await _send(request, CONTROL.name, event, "hold.released", customer)
    return event


def _hold_refused(request: web.Request, err: Refused, form: dict[str, str]) -> web.Response:
    customer = request.match_info["customer_id"]
    return _render(
        request,
        "hold_refused.html.j2",
        status=400,
        customer_id=customer,
        holds=[],
        kinds=KINDS,
        error=_refusal(err),
        form=form,
        release=request.match_info.get("hold_id"),
    )


async def hold_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        await _place(request, form)
    except Refused as err:
        return _hold_refused(request, err, form)
    raise _back(request, f"/customers/{quote(request.match_info['customer_id'], safe='')}")


async def release_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        await _release(request, form)
    except Refused as err:
        return _hold_refused(request, err, form)
    raise _back(request, f"/customers/{quote(request.match_info['customer_id'], safe='')}")


async def hold_api(request: web.Request) -> web.Response:
    try:
        event = await _place(request, await _body(request))
    except Refused as err:
        return web.json_response(_refusal(err), status=400)
    body = {"event_id": event.event_id, "hold_id": event.data.hold_id, "topic": CONTROL.name}
    return web.json_response(body, status=202)


async def release_api(request: web.Request) -> web.Response:
    try:
        event = await _release(request, await _body(request))
    except Refused as err:
        return web.json_response(_refusal(err), status=400)
    return web.json_response({"event_id": event.event_id, "topic": CONTROL.name}, status=202)


# ---- the overview's operational part --------------------------------------------------------


def operations(request: web.Request) -> dict[str, Any]:
    """Waiting approvals, cases per status, dead letters per topic, the consumer's lag."""
    store = request.app[STORE]
    progress = request.app.get(PROGRESS)
    return {
        "parked": len(store.parked()),
        "cases": store.case_counts(),
        "letters": store.letter_counts(),
        "lag": ops.lag_per_topic(dict(progress.lag)) if progress is not None else {},
        "as_of": store.as_of(),
    }


async def operations_api(request: web.Request) -> web.Response:
    return web.json_response(operations(request))


# ---- audit ----------------------------------------------------------------------------------

AUDIT_PAGE = 50


def _audit(request: web.Request) -> dict[str, Any]:
    """One page of the audit, newest first; `page` from 1 (a bad one is the first)."""
    store = request.app[STORE]
    raw = request.query.get("page", "1")
    page = int(raw) if raw.isdigit() and int(raw) >= 1 else 1
    total = store.action_count()
    items = store.actions(limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE)
    return {
        "items": [asdict(a) for a in items],
        "total": total,
        "page": page,
        "per_page": AUDIT_PAGE,
        "pages": max(1, -(-total // AUDIT_PAGE)),
    }


async def audit_page(request: web.Request) -> web.Response:
    return _render(request, "audit.html.j2", audit=_audit(request))


async def audit_api(request: web.Request) -> web.Response:
    return web.json_response(_audit(request))
