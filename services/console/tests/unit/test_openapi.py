"""The OpenAPI document: valid OpenAPI 3.1, every route the app registers documented and
nothing else, and the app's real answers (a real history, both back ends) as documented."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from billstate_console.domain.auth import AuthConfig
from billstate_console.handlers import ConsoleHandler
from billstate_console.openapi import document
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_console.web_support import HELPDESK, ZENDESK
from billstate_shared.contracts import Event, decode, encode
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.webhooks import new_secret, signed_headers

VIEWER, OPERATOR = "viewer-token-for-tests", "operator-token-for-tests"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
AUTH = AuthConfig(tokens=((VIEWER, "viewer"), (OPERATOR, "operator")), secret=b"s" * 32)
AT = datetime(2026, 12, 20, 9, tzinfo=UTC)
SECRET = new_secret()
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
Client = TestClient[web.Request, web.Application]


def _event(event_id: str, event_type: str, minutes: int, data: dict[str, Any], **env: Any) -> Event:
    body = {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": (AT + timedelta(minutes=minutes)).isoformat(),
        "customer_id": "contoso",
        "data": data,
        **env,
    }
    return decode(json.dumps(body))


EXCHANGE = {
    "at": "2026-12-20T09:00:01Z", "method": "PATCH", "path": "/v1/customers/t-1/subscriptions/s",
    "status": 409, "request_id": "req-123", "correlation_id": "corr-456", "answer": "800002",
}  # fmt: skip


def operations() -> list[Event]:
    """Cases (one with the provider's exchanges), a step, a parked suspension."""
    return [
        _event("failed-1", "access.failed", 0, {
            "command_id": "cmd-1", "subscription_id": "sub-7c1e9a", "provider": "partner_center",
            "attempts": 3, "error": "409 locked", "exchanges": [EXCHANGE]}),
        _event("drift-1", "access.drift", 5, {
            "subscription_id": "sub-55d0f2", "provider": "partner_center",
            "desired": "suspended", "observed": "active"}),
        _event("ack-1", "case.acknowledged", 10,
               {"case_id": "failed-1", "by": "ops-anna", "note": "asked MS"}),
        _event("parked-1", "access.parked", 30, {
            "command_id": "cmd-7", "subscription_ids": ["sub-7c1e9a"], "provider": "builtin",
            "guard": "brake", "reason": "11 suspensions today"}),
    ]  # fmt: skip


def fabrikam() -> list[Event]:
    """A customer with a hold and a payment in flight: what the contracts' schemas cover."""
    who = {"customer_id": "fabrikam"}
    profile = {
        "name": "Fabrikam", "locale": "en", "billing_email": "ap@fabrikam.example",
        "partner_contact_email": "am@partner.example", "tags": ["gov"],
        "subscription_ids": ["sub-f1"],
    }  # fmt: skip
    state = {
        "stage": "overdue", "delinquent": True,
        "overdue": [{"currency": "EUR", "amount": "120.50"}],
        "anchor_due_on": "2026-12-01", "days_past_due": 19, "as_of": "2026-12-20",
        "holds": [{"hold_id": "h-1", "kind": "dispute", "invoice_id": "INV-F-1",
                   "amount": "20.00", "until": None, "reason": "wrong seats", "by": "ops-anna",
                   "placed_on": "2026-12-18"}],
        "suspended_subscription_ids": [],
        "next": {"stage": "final_notice", "earliest_on": "2026-12-27"},
        "policy": {"name": "standard", "version": 3},
        "pending_payments": [{"payment_id": "p-1", "amount": "50.00", "currency": "EUR",
                              "expected_by": "2026-12-22"}],
        "tickets": [{"ticket_id": "ZD-2", "topic": "dispute", "opened_on": "2026-12-20",
                     "holds_until": None}],
    }  # fmt: skip
    return [
        _event("cust-fabrikam", "customer.upserted", -60, profile, **who),
        _event("state-fabrikam", "collections.state", 1, state, **who),
        # support (issue 17): a dispute of fabrikam's, an access problem of contoso's
        _event("sr-f-1", "support.requested", 2, {
            "ticket_id": "ZD-2", "topic": "dispute", "channel": "email",
            "summary": "seats are wrong"}, **who),
        _event("sr-c-1", "support.requested", 3, {
            "ticket_id": "ZD-1", "topic": "access_problem", "channel": "web"}),
    ]  # fmt: skip


@dataclass(frozen=True)
class Rec:
    """A consumed record as the runtime hands it over (aiokafka's fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 1_797_000_000_000
    headers: tuple[tuple[str, bytes], ...] = ()


def letter() -> Rec:
    dlq = {
        "reason": "is required", "field": "data.invoice_id", "topic": "billing.invoices.v1",
        "partition": "2", "offset": "17", "service": "invoicing", "event_type": "invoice.issued",
    }  # fmt: skip
    headers = tuple((f"billstate.dlq.{k}", v.encode()) for k, v in dlq.items())
    bad = b'{"event_type": "invoice.issued", "customer_id": "contoso"}'
    return Rec("billing.invoices.v1.dlq", 0, 0, b"contoso", bad, headers=headers)


ZENDESK_SECRET = "zendesk-secret"


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    """The app on the lifecycle's history (both back ends), with operations, a customer
    with holds, a dead letter and an audit row."""
    handler = ConsoleHandler(store)
    topics = {"case": "operations.cases.v1"}
    for n, event in enumerate(operations()):
        topic = topics.get(event.event_type.split(".")[0], "access.events.v1")
        assert await handler(Rec(topic, 0, n, b"contoso", encode(event))) == []
    assert await handler(letter()) == []
    for event in fabrikam():
        store.apply(event)
    store.record_action(
        "token:operator", "case.acknowledged", subject="failed-1", topic="operations.cases.v1",
        event_id="case-acknowledged-1",
    )  # fmt: skip
    progress = Progress()
    progress.set_lag("access.events.v1", 0, 4)
    app = build_app(store, AUTH, progress=progress, metrics=Metrics("console"))
    app[HELPDESK] = SECRET
    app[ZENDESK] = ZENDESK_SECRET
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_the_helpdesk_hook_answers_as_documented(client: Client) -> None:
    hook = "/hooks/helpdesk"
    body = json.dumps(
        {"event_type": "support.resolved", "customer_id": "contoso", "data": {"ticket_id": "x"}}
    ).encode()
    now = datetime.now(UTC)
    signed = signed_headers(SECRET, "msg-1", body, now)
    refused = await check(client, "POST", hook, hook, 422, data=body, headers=signed)
    assert refused["field"] == "data.resolution"
    forged = signed_headers(new_secret(), "msg-1", body, now)
    await check(client, "POST", hook, hook, 401, data=body, headers=forged)
    await check(client, "POST", hook, hook, 400, data=body)
    good = json.dumps({
        "event_type": "support.resolved", "customer_id": "contoso",
        "data": {"ticket_id": "ZD-1", "resolution": "fixed"}}).encode()  # fmt: skip
    # Valid, but no producer: 503, and the id stays free for the helpdesk's retry.
    signed = signed_headers(SECRET, "msg-2", good, now)
    await check(client, "POST", hook, hook, 503, data=good, headers=signed)
    assert document()["paths"][hook]["post"]["security"] == []


async def test_the_zendesk_hook_answers_as_documented(client: Client) -> None:
    hook = "/hooks/zendesk"
    body = json.dumps({"zendesk": {
        "ticket_id": "9", "customer_id": "contoso", "tags": "dispute", "via": "Web form",
        "title": "Wrong amount", "status": "Open"}}).encode()  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    signed = {
        "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Invocation-Id": "inv-1",
    }
    await check(client, "POST", hook, hook, 503, data=body, headers=signed)  # no producer
    forged = {**signed, "X-Zendesk-Webhook-Signature": base64.b64encode(b"x" * 32).decode()}
    await check(client, "POST", hook, hook, 401, data=body, headers=forged)
    await check(client, "POST", hook, hook, 400, data=body)
    assert document()["paths"][hook]["post"]["security"] == []


# ---- the document ---------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def _expand(template: str, pattern: re.Pattern[str] | None) -> list[str]:
    """A route's paths as the document writes them: a `{name:a|b}` parameter is one path
    per word; any other parameter stays `{name}`."""
    paths = [template]
    for name, words in re.findall(
        r"\(\?P<(\w+)>([\w-]+(?:\|[\w-]+)+)\)", pattern.pattern if pattern else ""
    ):
        paths = [p.replace(f"{{{name}}}", w) for p in paths for w in words.split("|")]
    return paths


def registered(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one per GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("path") or info["formatter"]
        for path in _expand(template, info.get("pattern")):
            found.add((route.method, path))
    return found


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_documented_path_is_a_route() -> None:
    app = build_app(Store(":memory:"), AUTH, progress=Progress(), metrics=Metrics("console"))
    routes = registered(app)
    assert ("POST", "/api/cases/{case_id}/resolve") in routes
    assert routes - documented() == set(), "routes the document does not describe"
    assert documented() - routes == set(), "documented paths the app does not serve"


# ---- the app's answers against it ----------------------------------------------------------


def _answer(doc: dict[str, Any], method: str, template: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template}: {status} is not documented"
    found: dict[str, Any] = responses[str(status)]
    if "$ref" in found:
        found = doc["components"]["responses"][found["$ref"].rsplit("/", 1)[1]]
    return found


def _matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path.split("?", maxsplit=1)[0]) is not None


async def check(
    client: Client, method: str, template: str, path: str, status: int, **kwargs: Any
) -> Any:
    """Call the app; its status, media type and JSON body as the document says."""
    assert _matches(template, path), (template, path)
    doc = document()
    answer = await client.request(method, path, allow_redirects=False, **kwargs)
    assert answer.status == status, (method, path, await answer.text())
    documented_as = _answer(doc, method, template, status)
    if "content" not in documented_as:
        return None
    assert answer.content_type in documented_as["content"], (method, path, answer.content_type)
    if answer.content_type != "application/json":
        return await answer.text()
    body = await answer.json()
    schema = {
        **documented_as["content"]["application/json"]["schema"],
        "components": doc["components"],
    }
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]
    assert errors == [], (method, path, errors)
    return body


READS = [
    ("/api/overview", "/api/overview"),
    ("/api/customers", "/api/customers"),
    ("/api/customers", "/api/customers?tag=gov&sort=overdue&order=desc&per_page=1"),
    ("/api/customers/{customer_id}", "/api/customers/contoso"),
    ("/api/customers/{customer_id}", "/api/customers/fabrikam"),
    ("/api/customers/{customer_id}/timeline", "/api/customers/contoso/timeline"),
    ("/api/operations", "/api/operations"),
    ("/api/cases", "/api/cases"),
    ("/api/cases", "/api/cases?status=acknowledged"),
    ("/api/cases/{case_id}", "/api/cases/failed-1"),
    ("/api/cases/{case_id}", "/api/cases/drift-1"),
    ("/api/cases/{case_id}/pack", "/api/cases/failed-1/pack"),
    ("/api/approvals", "/api/approvals"),
    ("/api/dead-letters", "/api/dead-letters"),
    ("/api/openapi.json", "/api/openapi.json"),
    ("/", "/?lang=zh-TW"),
    ("/customers", "/customers?stage=overdue"),
    ("/customers/{customer_id}", "/customers/fabrikam"),
    ("/escalations", "/escalations"),
    ("/cases/{case_id}", "/cases/failed-1"),
    ("/cases/{case_id}/pack", "/cases/failed-1/pack"),
    ("/approvals", "/approvals"),
    ("/dead-letters", "/dead-letters"),
    ("/api/audit", "/api/audit"),
    ("/api/audit", "/api/audit?page=2"),
    ("/audit", "/audit"),
    ("/support", "/support?lang=zh-TW"),
    ("/api/support", "/api/support"),
    ("/customers/{customer_id}/support/{ticket_id}", "/customers/contoso/support/ZD-1"),
    ("/api/customers/{customer_id}/support/{ticket_id}", "/api/customers/contoso/support/ZD-1"),
    ("/cases/{case_id}/pack", "/cases/failed-1/pack?ticket=ZD-1"),
]


def test_every_documented_read_is_called_below() -> None:
    # A route documented later is also checked against its schema, or this fails.
    gets = {path for method, path in documented() if method == "GET"}
    probes = {"/healthz", "/readyz", "/startupz", "/metrics"}
    assert gets - probes - {"/signin"} == {t for t, _ in READS}


@pytest.mark.parametrize("headers", [AS_VIEWER, AS_OPERATOR], ids=["viewer", "operator"])
async def test_every_read_answers_as_documented(client: Client, headers: dict[str, str]) -> None:
    for template, path in READS:
        await check(client, "GET", template, path, 200, headers=headers)
    detail = await check(
        client, "GET", "/api/customers/{customer_id}", "/api/customers/fabrikam", 200,
        headers=headers,
    )  # fmt: skip
    assert detail["holds"][0]["hold_id"] == "h-1"  # the contract's schema checked it
    assert detail["pending_payments"][0]["payment_id"] == "p-1"
    assert ("contacts" in detail) is (headers is AS_OPERATOR)
    pack = await check(
        client, "GET", "/api/cases/{case_id}/pack", "/api/cases/failed-1/pack", 200,
        headers=headers,
    )  # fmt: skip
    assert pack["exchanges"][0]["request_id"] == "req-123"


async def test_the_served_document_is_the_document_and_needs_an_identity(client: Client) -> None:
    served = await check(
        client, "GET", "/api/openapi.json", "/api/openapi.json", 200, headers=AS_VIEWER
    )
    assert served == json.loads(json.dumps(document()))
    await check(client, "GET", "/api/openapi.json", "/api/openapi.json", 401)


async def test_probes_are_open_and_documented(client: Client) -> None:
    for probe in ("/healthz", "/readyz", "/startupz"):
        answer = await client.get(probe)
        await check(client, "GET", probe, probe, answer.status)
    assert "billstate" in await check(client, "GET", "/metrics", "/metrics", 200)
    await check(client, "GET", "/signin", "/signin", 200)
    for path in ("/healthz", "/readyz", "/startupz", "/metrics", "/signin"):
        assert document()["paths"][path]["get"]["security"] == []


async def test_errors_answer_as_documented(client: Client) -> None:
    api = "/api/customers/{customer_id}"
    await check(client, "GET", api, "/api/customers/nobody", 404, headers=AS_VIEWER)
    await check(
        client, "GET", api + "/timeline", "/api/customers/nobody/timeline", 404, headers=AS_VIEWER
    )
    await check(client, "GET", "/api/cases/{case_id}", "/api/cases/nope", 404, headers=AS_VIEWER)
    await check(
        client, "GET", "/api/cases/{case_id}/pack", "/api/cases/nope/pack", 404, headers=AS_VIEWER
    )
    await check(
        client, "GET", "/customers/{customer_id}", "/customers/nobody", 404, headers=AS_VIEWER
    )
    await check(client, "GET", "/cases/{case_id}", "/cases/nope", 404, headers=AS_VIEWER)
    bad = await check(
        client, "GET", "/api/customers", "/api/customers?sort=bogus&page=0", 400, headers=AS_VIEWER
    )
    assert {f["field"] for f in bad["fields"]} == {"sort", "page"}
    await check(client, "GET", "/api/overview", "/api/overview", 401)
    await check(client, "GET", "/", "/", 303, headers={"Accept": "text/html"})
    wrong = {"Authorization": "Bearer nope"}
    await check(client, "GET", "/api/cases", "/api/cases", 401, headers=wrong)


REFUSED = [
    ("/api/cases/{case_id}/resolve", "/api/cases/failed-1/resolve", {"note": " "}, "note"),
    ("/api/cases/{case_id}/acknowledge", "/api/cases/failed-1/acknowledge", {}, "note"),
    ("/api/approvals/{command_id}/approve", "/api/approvals/cmd-7/approve", {}, "reason"),
    ("/api/approvals/{command_id}/reject", "/api/approvals/cmd-7/reject", {"reason": ""}, "reason"),
    (
        "/api/customers/{customer_id}/holds",
        "/api/customers/contoso/holds",
        {"kind": "promise_to_pay", "reason": "promised"},
        "until",
    ),
    (
        "/api/customers/{customer_id}/holds/{hold_id}/release",
        "/api/customers/fabrikam/holds/h-1/release",
        {},
        "reason",
    ),
    (
        "/api/dead-letters/redrive",
        "/api/dead-letters/redrive",
        {"topic": "billing.invoices.v1.dlq", "letters": ["9:9"]},
        "letters",
    ),
    ("/api/dead-letters/redrive", "/api/dead-letters/redrive", {"topic": "nope"}, "topic"),
]


async def test_refused_actions_answer_as_documented(client: Client) -> None:
    for template, path, body, field in REFUSED:
        refused = await check(client, "POST", template, path, 400, json=body, headers=AS_OPERATOR)
        assert refused["field"] == field, path
        await check(client, "POST", template, path, 403, json=body, headers=AS_VIEWER)
        await check(client, "POST", template, path, 401, json=body)
    # Valid, but nothing can send it (no producer): 503, said in text; and an unknown case.
    note = {"note": "asked again"}
    ack = "/api/cases/{case_id}/acknowledge"
    await check(
        client, "POST", ack, "/api/cases/failed-1/acknowledge", 503, json=note, headers=AS_OPERATOR
    )
    await check(
        client, "POST", ack, "/api/cases/nope/acknowledge", 404, json=note, headers=AS_OPERATOR
    )
    audit = await check(client, "GET", "/api/audit", "/api/audit", 200, headers=AS_VIEWER)
    assert {a["result"] for a in audit["items"]} >= {"sent", "refused"}
    gone = "/api/approvals/{command_id}/approve"
    await check(
        client,
        "POST",
        gone,
        "/api/approvals/nope/approve",
        404,
        json={"reason": "x"},
        headers=AS_OPERATOR,
    )


FORMS = [
    ("/cases/{case_id}/acknowledge", "/cases/failed-1/acknowledge?lang=en", {"note": " "}),
    ("/cases/{case_id}/resolve", "/cases/failed-1/resolve", {"note": ""}),
    ("/approvals/{command_id}/approve", "/approvals/cmd-7/approve", {}),
    ("/approvals/{command_id}/reject", "/approvals/cmd-7/reject", {"reason": " "}),
    ("/dead-letters/redrive", "/dead-letters/redrive", {"topic": "billing.invoices.v1.dlq"}),
    ("/customers/{customer_id}/holds", "/customers/contoso/holds", {"kind": "dispute"}),
    (
        "/customers/{customer_id}/holds/{hold_id}/release",
        "/customers/fabrikam/holds/h-1/release",
        {},
    ),
]


def test_every_documented_action_is_called_below() -> None:
    posts = {path for method, path in documented() if method == "POST"}
    called = {t for t, *_ in REFUSED} | {t for t, *_ in FORMS} | {"/signin", "/signout"}
    called |= {"/hooks/helpdesk"}  # test_the_helpdesk_hook_answers_as_documented
    called |= {"/hooks/zendesk"}  # test_the_zendesk_hook_answers_as_documented
    assert posts == called


async def test_refused_forms_answer_as_documented(client: Client) -> None:
    for template, path, form in FORMS:
        page = await check(client, "POST", template, path, 400, data=form, headers=AS_OPERATOR)
        assert 'class="error"' in page or "-error" in page, path
        await check(client, "POST", template, path, 403, data=form, headers=AS_VIEWER)
    await check(client, "POST", "/signin", "/signin", 401, data={"token": "nope"})
    await check(client, "POST", "/signin", "/signin", 303, data={"token": VIEWER})
    await check(client, "POST", "/signout", "/signout", 303, headers=AS_OPERATOR)
    await check(client, "POST", "/signout", "/signout", 401)
