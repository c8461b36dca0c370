"""The console's OpenAPI 3.1 document: every route, its parameters, bodies, answers, sign-in."""

from __future__ import annotations

import functools
import json
from importlib.metadata import version
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from billstate_console.domain.auth import CSRF_FIELD, SESSION_COOKIE
from billstate_console.domain.cases import STATUSES
from billstate_console.domain.i18n import SUPPORTED
from billstate_console.domain.projection import KINDS
from billstate_console.store import ORDERS, RESULTS, SORTS
from billstate_shared.contracts.events import (
    Hold,
    OpenTicket,
    PendingPayment,
    PolicyRef,
    ProviderExchange,
)
from billstate_shared.operator.holds import KINDS as HOLD_KINDS
from billstate_shared.operator.letters import DLQ_NAMES

Doc = dict[str, Any]

PATH = "/api/openapi.json"
SCHEMAS = "#/components/schemas/"
# Who may call a route: anyone signed in (the default) and, to act, a browser's CSRF token.
SIGNED_IN: list[Doc] = [{"bearer": []}, {"session": []}, {"proxy": []}]
ACTING: list[Doc] = [{"bearer": []}, {"session": [], "csrf": []}, {"proxy": [], "csrf": []}]
OPEN: list[Doc] = []


# ---- building blocks ------------------------------------------------------------------------


def ref(name: str) -> Doc:
    return {"$ref": SCHEMAS + name}


def _text(description: str = "") -> Doc:
    return {"type": "string", "description": description} if description else {"type": "string"}


def _maybe(kind: str, description: str = "") -> Doc:
    schema: Doc = {"type": [kind, "null"]}
    return {**schema, "description": description} if description else schema


def _list(items: Doc) -> Doc:
    return {"type": "array", "items": items}


def _counts(description: str) -> Doc:
    return {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": description,
    }


def _object(description: str, properties: dict[str, Doc], *, optional: tuple[str, ...] = ()) -> Doc:
    """A closed object: a field the code adds without documenting it fails the tests."""
    closed: Doc = {
        "type": "object",
        "properties": properties,
        "required": [p for p in properties if p not in optional],
        "additionalProperties": False,
    }
    return {**closed, "description": description} if description else closed


def _json(description: str, schema: Doc) -> Doc:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _html(description: str) -> Doc:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _plain(description: str) -> Doc:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _answers(*names: str, **more: Doc) -> Doc:
    """The shared answers by status (components/responses), then a route's own."""
    shared = {name[:3]: {"$ref": f"#/components/responses/{RESPONSES[name]}"} for name in names}
    return {**more, **shared}


# The shared answers, by status ("404t": a 404 said in text, aiohttp's HTTPNotFound).
RESPONSES = {
    "303": "ToSignIn",
    "400": "Refused",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "404t": "NotFoundText",
    "503": "Unavailable",
    "503j": "UnavailableJson",
}


def _path(name: str, description: str) -> Doc:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": _text(),
        "description": description,
    }


def _query(name: str, description: str, schema: Doc | None = None) -> Doc:
    return {"name": name, "in": "query", "schema": schema or _text(), "description": description}


LANG = _query(
    "lang",
    "The page's language; else the browser's Accept-Language; else English.",
    {"type": "string", "enum": list(SUPPORTED)},
)
CUSTOMER = _path("customer_id", "The customer's id, as the contracts name it.")
CASE = _path("case_id", "The event id of the access.failed or access.drift.")
COMMAND = _path("command_id", "The parked suspension's command id.")
HOLD = _path("hold_id", "The hold's id, as collections state reports it.")
STATUS = _query(
    "status", "Only the cases with this status (any other value: all).", {"enum": list(STATUSES)}
)
LETTERS_TOPIC = _query(
    "topic",
    "Only this dead-letter topic's letters (any other value: all).",
    {"enum": list(DLQ_NAMES)},
)
AUDIT_PAGE = _query(
    "page", "The page, from 1 (any other value: the first).", {"type": "integer", "minimum": 1}
)
LISTING = [
    _query("stage", "Only customers at this stage."),
    _query("q", "Id or name contains this (case-insensitive)."),
    _query("tag", "Only customers with this tag."),
    _query(
        "currency", "Only customers owing in this ISO 4217 currency.", {"pattern": "^[A-Z]{3}$"}
    ),
    _query("sort", "The order's key.", {"enum": list(SORTS), "default": "id"}),
    _query("order", "Ascending or descending.", {"enum": list(ORDERS), "default": "asc"}),
    _query("page", "The page, from 1.", {"type": "integer", "minimum": 1, "default": 1}),
    _query(
        "per_page",
        "Customers per page (default: the console's PAGE_SIZE).",
        {"type": "integer", "minimum": 1, "maximum": 500},
    ),
]


# ---- schemas --------------------------------------------------------------------------------

AMOUNT = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "description": "A decimal string."}
MONEY = _object("An amount in one currency.", {"currency": _text("ISO 4217."), "amount": AMOUNT})


def _contracts() -> dict[str, Doc]:
    """The contracts' own schemas for what the console passes through from the events."""
    _, top = models_json_schema(
        [
            (m, "serialization")
            for m in (Hold, PendingPayment, PolicyRef, ProviderExchange, OpenTicket)
        ],
        ref_template=SCHEMAS + "{model}",
    )
    found: dict[str, Doc] = top["$defs"]
    return found


CUSTOMER_FIELDS: dict[str, Doc] = {
    "customer_id": _text(),
    "name": _maybe("string"),
    "locale": _maybe("string"),
    "tags": _list(_text()),
    "stage": _maybe("string", "The collections stage; null before any state is read."),
    "since": _maybe("string", "When the customer entered the stage (UTC)."),
    "why": _maybe("string", "Why, in words, as collections decided."),
    "why_rule": _maybe("string", "The policy rule that decided."),
    "overdue": _list(ref("Money")),
    "exposure": {
        **_list(ref("Money")),
        "description": "What Microsoft has billed the partner for the periods the customer has"
        " not paid for, per Microsoft billing currency (docs/policy.md, Exposure).",
    },
    "days_past_due": _maybe("integer"),
    "next": {
        "anyOf": [
            _object("The next stage and its earliest date.", {"stage": _text(), "on": _text()}),
            {"type": "null"},
        ]
    },
    "as_of": _maybe("string", "The business date of the last state read."),
    "waiting": _maybe("string", "What a due suspension waits for (a payment in flight...)."),
}

ACCESS = ["active", "suspended", "failed", "drift", "parked", "unknown"]
INVOICE = _object(
    "An invoice of the customer's book.",
    {
        "invoice_id": _text(),
        "issued_on": _text(),
        "due_on": _text(),
        "amount": AMOUNT,
        "open": AMOUNT,
        "disputed": AMOUNT,
        "days_past_due": _maybe("integer"),
    },
)

DETAIL_FIELDS: dict[str, Doc] = {
    **CUSTOMER_FIELDS,
    "balances": _list(
        _object(
            "The customer's book in one currency.",
            {
                "currency": _text(),
                "overdue": AMOUNT,
                "open": AMOUNT,
                "credit": AMOUNT,
                "invoices": _list(INVOICE),
            },
        )
    ),
    "holds": _list(ref("Hold")),
    "pending_payments": _list(ref("PendingPayment")),
    "subscriptions": _list(
        _object(
            "A subscription of the profile or of a provider's report, with its access.",
            {
                "subscription_id": _text(),
                "access": {
                    "enum": ACCESS,
                    "description": "`parked` while a parked suspension names it, else `reported`.",
                },
                "reported": {"enum": ACCESS, "description": "What the provider last reported."},
                "provider": _maybe("string"),
                "at": _maybe("string"),
                "detail": _maybe("string"),
                "parked_command": _maybe("string", "The parked suspension's command id."),
            },
        )
    ),
    "next_step": {
        "anyOf": [
            _object(
                "The next stage, its date, what paying stops it, and all that in words.",
                {
                    "stage": _text(),
                    "on": _text(),
                    "unless": _list(ref("Money")),
                    "text": _text("In the request's language."),
                },
            ),
            {"type": "null"},
        ]
    },
    "policy": {"anyOf": [ref("PolicyRef"), {"type": "null"}]},
    "tickets": {
        **_list(ref("OpenTicket")),
        "description": "Collections' open support tickets (a payment claim's hold date).",
    },
    "disputed": {
        "type": "boolean",
        "description": "An open support ticket (ours or collections') says `dispute`.",
    },
    "contacts": _object(
        "Only for an operator.",
        {"billing_email": _maybe("string"), "partner_contact_email": _maybe("string")},
    ),
}

SUPPORT_TOPICS = ("billing_question", "payment_claimed", "dispute", "access_problem")
TICKET_FIELDS: dict[str, Doc] = {
    "customer_id": _text(),
    "name": _maybe("string", "The customer's name (the list only)."),
    "ticket_id": _text(),
    "topic": {"enum": [*SUPPORT_TOPICS, None]},
    "channel": _maybe("string"),
    "summary": _maybe("string", "The customer's words."),
    "opened_at": _maybe("string"),
    "age_days": _maybe("integer", "Whole days since the request."),
    "age": _maybe("string", "The age in words, in the request's language."),
    "resolved_at": _maybe("string"),
    "resolution": _maybe("string"),
}

CASE_FIELDS: dict[str, Doc] = {
    "case_id": _text("The event id of the access.failed or access.drift."),
    "customer_id": _text(),
    "occurred_at": _text(),
    "kind": {"enum": ["access.failed", "access.drift"]},
    "subscription_id": _text(),
    "provider": _text(),
    "command_id": _maybe("string", "null for a drift."),
    "error": _text(),
    "status": {"enum": list(STATUSES)},
}

NOTE = _object(
    "A person's step on a case.",
    {
        "event_id": _text(),
        "case_id": _text(),
        "customer_id": _text(),
        "step": {"enum": ["acknowledged", "resolved"]},
        "by": _text("An operator id."),
        "note": _text(),
        "occurred_at": _text(),
    },
)

ERROR = _object(
    "A refusal: why, and the field it is about when there is one.",
    {"error": _text(), "field": _text()},
    optional=("field",),
)


def schemas() -> dict[str, Doc]:
    own: dict[str, Doc] = {
        "Error": ERROR,
        "QueryError": _object(
            "A customers query refused: each parameter and why.",
            {
                "error": _text(),
                "fields": _list(_object("", {"field": _text(), "reason": _text()})),
            },
        ),
        "Money": MONEY,
        "Customer": _object("A customer as the list shows it.", CUSTOMER_FIELDS),
        "CustomersPage": _object(
            "One page of customers.",
            {
                "items": _list(ref("Customer")),
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "pages": {"type": "integer"},
            },
        ),
        "CustomerDetail": _object(
            "A customer with the page's detail; `contacts` only for an operator.",
            DETAIL_FIELDS,
            optional=("contacts",),
        ),
        "TimelineEntry": _object(
            "One event of the customer's history.",
            {
                "event_id": _text(),
                "occurred_at": _text(),
                "kind": {"enum": list(KINDS)},
                "event_type": _text(),
                "summary": _text("In the request's language (`lang`, Accept-Language)."),
                "why": _maybe("string"),
                "why_lang": _maybe("string", "The why's language when it is not the request's."),
                "raw": _text("The event's JSON; e-mail addresses `[redacted]` for a viewer."),
            },
        ),
        "Timeline": _object(
            "A customer's history, newest first.",
            {"customer_id": _text(), "items": _list(ref("TimelineEntry"))},
        ),
        "Overview": _object(
            "Customers per stage, overdue and exposure totals, the furthest business date read.",
            {
                "customers": {"type": "integer"},
                "per_stage": _counts("Customers per stage."),
                "overdue": _list(ref("Money")),
                "exposure": {
                    **_list(ref("Money")),
                    "description": "The exposure to Microsoft of every customer, per currency.",
                },
                "as_of": _maybe("string"),
            },
        ),
        "Operations": _object(
            "What waits for people, and how far behind the console reads.",
            {
                "parked": {"type": "integer", "description": "Suspensions waiting for approval."},
                "cases": _object("Cases per status.", {s: {"type": "integer"} for s in STATUSES}),
                "letters": _counts("Dead letters per DLQ topic."),
                "lag": _counts("Records behind the end, per topic."),
                "as_of": _maybe("string"),
            },
        ),
        "Case": _object("An escalation case.", CASE_FIELDS),
        "Cases": _object("Cases, newest first.", {"items": _list(ref("Case"))}),
        "CaseDetail": _object(
            "A case, the provider's exchanges and the notes.",
            {**CASE_FIELDS, "exchanges": _list(ref("ProviderExchange")), "notes": _list(NOTE)},
        ),
        "Pack": _object(
            "The escalation pack: what Microsoft support asks for.",
            {
                **{k: v for k, v in CASE_FIELDS.items() if k != "status"},
                "tenant_id": _maybe("string", "Not recorded by any event yet."),
                "status": {"enum": list(STATUSES)},
                "exchanges": _list(ref("ProviderExchange")),
                "notes": _list(
                    _object(
                        "A step on the case.",
                        {
                            "step": {"enum": ["acknowledged", "resolved"]},
                            "by": _text(),
                            "at": _text(),
                            "note": _text(),
                        },
                    )
                ),
            },
        ),
        "Parked": _object(
            "A suspension a guard parked, waiting for a decision.",
            {
                "customer_id": _text(),
                "command_id": _text(),
                "subscription_ids": _list(_text()),
                "provider": _text(),
                "guard": _text(),
                "reason": _text(),
                "parked_at": _text(),
                "age": _text("How long it has waited: `45m`, `3h 05m`, `2d 04h`."),
            },
        ),
        "Approvals": _object("Parked suspensions, oldest first.", {"items": _list(ref("Parked"))}),
        "DeadLetter": _object(
            "A record of a DLQ topic, where it came from and why.",
            {
                "topic": {"enum": list(DLQ_NAMES)},
                "partition": {"type": "integer"},
                "offset": {"type": "integer"},
                "source_topic": _maybe("string"),
                "source_partition": _maybe("integer"),
                "source_offset": _maybe("integer"),
                "reason": _text(),
                "field": _text(),
                "service": _text(),
                "event_type": _maybe("string"),
                "at": _maybe("string"),
                "customer_id": _maybe("string", "The record's key."),
                "value": _maybe("string", "The original value as text (UTF-8, replaced)."),
            },
        ),
        "DeadLetters": _object(
            "Dead letters per topic, and the letters.",
            {"counts": _counts("Letters per DLQ topic."), "items": _list(ref("DeadLetter"))},
        ),
        "AuditEntry": _object(
            "An action taken from the console, and how it ended.",
            {
                "at": _text(),
                "actor": _text("The operator id."),
                "action": _text(),
                "subject": _text(),
                "topic": _text(),
                "event_id": _text("The event sent; empty when nothing was."),
                "result": {"enum": list(RESULTS)},
                "detail": _text("The refusal or the failure, in words."),
            },
        ),
        "Audit": _object(
            "One page of the audit, newest first.",
            {
                "items": _list(ref("AuditEntry")),
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "pages": {"type": "integer"},
            },
        ),
        "Sent": _object(
            "The event the action produced, acknowledged by the broker; it shows once read back.",
            {"event_id": _text(), "topic": _text()},
        ),
        "HoldPlaced": _object(
            "The hold.placed event sent, and the hold's id (derived as the CLI derives it).",
            {"event_id": _text(), "hold_id": _text(), "topic": _text()},
        ),
        "Redrive": _object(
            "Each selected letter: sent back to its topic, or why not.",
            {
                "sent": _list(_text("`<dlq>:<P>:<O>`.")),
                "refused": _list(_text("`<dlq>:<P>:<O>: <field>: <reason>`.")),
                "duplicates": _list(_text()),
                "stale": _list(_text("Access commands older than the newest of the customer.")),
            },
        ),
        "Probe": _object("A probe's verdict.", {"ok": {"type": "boolean"}, "why": _text()}),
        "SupportRequest": _object(
            "A support ticket as the console read it.",
            TICKET_FIELDS,
            optional=("name",),
        ),
        "SupportRequests": _object(
            "Open support requests, oldest first.", {"items": _list(ref("SupportRequest"))}
        ),
        "TicketDetail": _object(
            "A support ticket, its customer's state, access and what to escalate.",
            {
                "ticket": ref("SupportRequest"),
                "holds_until": _maybe("string", "A payment claim's hold, as collections says."),
                "customer": ref("Customer"),
                "disputed": {"type": "boolean"},
                "subscriptions": DETAIL_FIELDS["subscriptions"],
                "access_problems": DETAIL_FIELDS["subscriptions"],
                "cases": _list(
                    _object(
                        "A case of the customer; `pack` (open cases) marks it with the ticket.",
                        {
                            "case_id": _text(),
                            "kind": {"enum": ["access.failed", "access.drift"]},
                            "subscription_id": _text(),
                            "provider": _text(),
                            "error": _text(),
                            "status": {"enum": list(STATUSES)},
                            "pack": _maybe("string"),
                        },
                    )
                ),
            },
        ),
        "HookAnswer": _object(
            "What the receiver did with a delivery.",
            {
                "result": {"enum": ["sent", "duplicate"]},
                "event_id": _text(),
                "topic": _text(),
            },
            optional=("event_id", "topic"),
        ),
    }
    contracts = _contracts()
    assert not set(contracts) & set(own), "a contract schema named like one of ours"
    return {**own, **contracts}


# ---- request bodies -------------------------------------------------------------------------


def _json_body(description: str, properties: dict[str, Doc]) -> Doc:
    schema = {"type": "object", "description": description, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _form_body(fields: dict[str, Doc]) -> Doc:
    """A page's form, with the CSRF field a browser's POST carries."""
    with_csrf = {**fields, CSRF_FIELD: _text("The CSRF token the page's form holds.")}
    schema = {"type": "object", "properties": with_csrf}
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


NOTE_BODY = {"note": _text("Required, not blank.")}
REASON_BODY = {"reason": _text("Required, not blank.")}
HOLD_BODY = {
    "kind": {"enum": list(HOLD_KINDS)},
    "invoice": _text("The disputed invoice (dispute)."),
    "amount": _text("The disputed amount, a decimal string (dispute, optional)."),
    "until": _text("The promised date, YYYY-MM-DD (promise_to_pay)."),
    "reason": _text("Required, not blank."),
}
REDRIVE_BODY = {
    "topic": {"enum": list(DLQ_NAMES)},
    "letters": _list(_text("`<partition>:<offset>` of a letter of that topic.")),
}


# ---- operations -----------------------------------------------------------------------------


def _op(op_id: str, tag: str, summary: str, answers: Doc, **more: Any) -> Doc:
    return {"operationId": op_id, "tags": [tag], "summary": summary, "responses": answers, **more}


def _page(op_id: str, summary: str, *params: Doc, missing: str | None = None) -> Doc:
    extra = {"404": (_plain if missing == "text" else _html)("Not found.")} if missing else {}
    return _op(
        op_id,
        "pages",
        summary,
        _answers("303", "401", "403", **{"200": _html("The page."), **extra}),
        parameters=[LANG, *params],
    )


def _api(op_id: str, summary: str, schema: str, *params: Doc, missing: str = "") -> Doc:
    errors = ("401", "403", missing) if missing else ("401", "403")
    return _op(
        op_id, "api", summary, _answers(*errors, **{"200": _json("OK.", ref(schema))}),
        parameters=list(params),
    )  # fmt: skip


def _form(op_id: str, summary: str, body: Doc, *params: Doc, missing: bool = True) -> Doc:
    own = {"303": {"description": "Sent: back to the page with a message (POST-redirect-GET)."}}
    own["400"] = _html("Refused: the form again with the message next to its field.")
    errors = ("401", "403", "404t", "503") if missing else ("401", "403", "503")
    return _op(
        op_id, "forms", summary, _answers(*errors, **own),
        parameters=[LANG, *params], requestBody=body, security=ACTING,
    )  # fmt: skip


def _act(
    op_id: str, summary: str, body: Doc, result: str, *params: Doc, missing: bool = True
) -> Doc:
    errors = ("400", "401", "403", "404", "503j") if missing else ("400", "401", "403", "503j")
    sent = {"202": _json("Sent and acknowledged by the broker.", ref(result))}
    return _op(
        op_id, "actions", summary, _answers(*errors, **sent),
        parameters=list(params), requestBody=body, security=ACTING,
    )  # fmt: skip


def _steps(*, api: bool) -> dict[str, Doc]:
    found: dict[str, Doc] = {}
    for verb, step in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        summary = f"Mark the case {step}, with a note: case.{step} on operations.cases.v1."
        if api:
            body = _json_body("The note.", NOTE_BODY)
            op = _act(f"{verb}_case", summary, body, "Sent", CASE)
            found[f"/api/cases/{{case_id}}/{verb}"] = {"post": op}
        else:
            op = _form(f"{verb}_case_form", summary, _form_body(NOTE_BODY), CASE)
            found[f"/cases/{{case_id}}/{verb}"] = {"post": op}
    return found


def _decisions(*, api: bool) -> dict[str, Doc]:
    found: dict[str, Doc] = {}
    for verb in ("approve", "reject"):
        summary = f"{verb.capitalize()} a parked suspension: access.{verb} on access.approvals.v1."
        if api:
            body = _json_body("Why.", REASON_BODY)
            op = _act(f"{verb}_parked", summary, body, "Sent", COMMAND)
            found[f"/api/approvals/{{command_id}}/{verb}"] = {"post": op}
        else:
            op = _form(f"{verb}_parked_form", summary, _form_body(REASON_BODY), COMMAND)
            found[f"/approvals/{{command_id}}/{verb}"] = {"post": op}
    return found


def _probes() -> dict[str, Doc]:
    def probe(op_id: str, summary: str) -> Doc:
        answers = {"200": _json("Yes.", ref("Probe")), "503": _json("No, and why.", ref("Probe"))}
        return {"get": _op(op_id, "probes", summary, answers, security=OPEN)}

    metrics = _plain("Prometheus text exposition (the consumer's lag per partition included).")
    return {
        "/healthz": probe("live", "Liveness: not stalled."),
        "/readyz": probe("ready", "Readiness: assigned, not recovering, not blocked."),
        "/startupz": probe("started", "Start-up: assigned once, its state recovered."),
        "/metrics": {
            "get": _op("metrics", "probes", "The scrape.", {"200": metrics}, security=OPEN)
        },
    }


def _signin() -> dict[str, Doc]:
    form = {
        "token": _text("The viewer's or the operator's static token."),
        "next": _text("A path of this site to go to after signing in."),
    }
    signed = {
        "description": f"Signed in: the `{SESSION_COOKIE}` cookie set, and on to `next`.",
        "headers": {"Set-Cookie": {"schema": _text()}, "Location": {"schema": _text()}},
    }
    return {
        "/signin": {
            "get": _op(
                "signin_page",
                "pages",
                "The sign-in form.",
                {"200": _html("The form.")},
                parameters=[LANG, _query("next", "Where to go after signing in.")],
                security=OPEN,
            ),
            "post": _op(
                "signin",
                "forms",
                "Sign in with a static token: a browser session.",
                {"303": signed, "401": _html("A wrong token: the form again.")},
                parameters=[LANG],
                requestBody={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": form, "required": ["token"]}
                        }
                    },
                },
                security=OPEN,
            ),
        },
        "/signout": {
            "post": _op(
                "signout",
                "forms",
                "Sign out: the session cookie cleared.",
                _answers("401", "403", **{"303": {"description": "To the sign-in page."}}),
                parameters=[LANG],
                requestBody=_form_body({}),
                security=ACTING,
            )
        },
    }


def paths() -> dict[str, Doc]:
    redrive = _form(
        "redrive_form",
        "Re-drive the ticked letters.",
        _form_body({"topic": REDRIVE_BODY["topic"], "letter": REDRIVE_BODY["letters"]}),
        missing=False,
    )
    redrive["responses"]["200"] = _html("Some were not sent: the page, with each one's why.")
    pages = {
        "/": {"get": _page("overview_page", "Overview: stages, overdue totals, operations.")},
        "/customers": {
            "get": _page("customers_page", "Customers: filter, search, sort.", *LISTING)
        },
        "/customers/{customer_id}": {
            "get": _page("customer_page", "A customer and its timeline.", CUSTOMER, missing="html")
        },
        "/escalations": {"get": _page("escalations_page", "Escalation cases.", STATUS)},
        "/cases/{case_id}": {"get": _page("case_page", "A case.", CASE, missing="text")},
        "/cases/{case_id}/pack": {
            "get": _op(
                "pack_text",
                "pages",
                "The escalation pack, as text for a support request.",
                _answers("401", "403", "404t", **{"200": _plain("The pack.")}),
                parameters=[
                    CASE,
                    _query("ticket", "A support ticket the pack goes with: its first line."),
                ],
            )
        },
        "/approvals": {"get": _page("approvals_page", "Suspensions waiting for approval.")},
        "/dead-letters": {"get": _page("letters_page", "Dead letters.", LETTERS_TOPIC)},
        "/audit": {"get": _page("audit_page", "The audit: actions taken here.", AUDIT_PAGE)},
    }
    forms = {
        **_steps(api=False),
        **_decisions(api=False),
        "/dead-letters/redrive": {"post": redrive},
        "/customers/{customer_id}/holds": {
            "post": _form(
                "hold_form", "Place a hold.", _form_body(HOLD_BODY), CUSTOMER, missing=False
            )
        },
        "/customers/{customer_id}/holds/{hold_id}/release": {
            "post": _form(
                "release_form",
                "Release a hold.",
                _form_body(REASON_BODY),
                CUSTOMER,
                HOLD,
                missing=False,
            )
        },
    }
    api = {
        "/api/overview": {"get": _api("overview", "The overview.", "Overview")},
        "/api/customers": {
            "get": _op(
                "customers",
                "api",
                "Customers: filter, search, sort, a page.",
                _answers(
                    "401",
                    "403",
                    **{
                        "200": _json("A page.", ref("CustomersPage")),
                        "400": _json("A parameter refused.", ref("QueryError")),
                    },
                ),
                parameters=LISTING,
            )
        },
        "/api/customers/{customer_id}": {
            "get": _api(
                "customer", "A customer with its detail.", "CustomerDetail", CUSTOMER, missing="404"
            )
        },
        "/api/customers/{customer_id}/timeline": {
            "get": _api("timeline", "A customer's timeline.", "Timeline", CUSTOMER, missing="404")
        },
        "/api/operations": {"get": _api("operations", "The overview's operations.", "Operations")},
        "/api/cases": {"get": _api("cases", "Escalation cases.", "Cases", STATUS)},
        "/api/cases/{case_id}": {"get": _api("case", "A case.", "CaseDetail", CASE, missing="404")},
        "/api/cases/{case_id}/pack": {
            "get": _api("pack", "The escalation pack.", "Pack", CASE, missing="404")
        },
        "/api/approvals": {"get": _api("approvals", "Parked suspensions.", "Approvals")},
        "/api/audit": {"get": _api("audit", "The audit, newest first.", "Audit", AUDIT_PAGE)},
        "/api/dead-letters": {
            "get": _api("dead_letters", "Dead letters.", "DeadLetters", LETTERS_TOPIC)
        },
        PATH: {
            "get": _op(
                "openapi",
                "api",
                "This document.",
                _answers("401", "403", **{"200": _json("OpenAPI 3.1.", {"type": "object"})}),
            )
        },
    }
    actions = {
        **_steps(api=True),
        **_decisions(api=True),
        "/api/dead-letters/redrive": {
            "post": _op(
                "redrive",
                "actions",
                "Re-drive letters to their original topics (the CLI's checks, the stale one too).",
                _answers(
                    "400",
                    "401",
                    "403",
                    "503",
                    **{
                        "202": _json("Some were sent.", ref("Redrive")),
                        "200": _json("None was sent: each one's why.", ref("Redrive")),
                    },
                ),
                requestBody=_json_body("The DLQ and its letters.", REDRIVE_BODY),
                security=ACTING,
            )
        },
        "/api/customers/{customer_id}/holds": {
            "post": _act(
                "place_hold",
                "Place a hold: hold.placed on collections.control.v1.",
                _json_body("The hold.", HOLD_BODY),
                "HoldPlaced",
                CUSTOMER,
                missing=False,
            )
        },
        "/api/customers/{customer_id}/holds/{hold_id}/release": {
            "post": _act(
                "release_hold",
                "Release a hold: hold.released on collections.control.v1.",
                _json_body("Why.", REASON_BODY),
                "Sent",
                CUSTOMER,
                HOLD,
                missing=False,
            )
        },
    }
    return {**_probes(), **_signin(), **pages, **forms, **api, **actions, **_support()}


TICKET = _path("ticket_id", "The support ticket's id, as the helpdesk names it.")


def _support() -> dict[str, Doc]:
    hook = {
        "202": _json("Sent to support.requests.v1 and acknowledged.", ref("HookAnswer")),
        "200": _json("A webhook id accepted before: nothing sent.", ref("HookAnswer")),
        "400": _json("Headers missing or malformed.", ref("Error")),
        "401": _json("A bad signature, or a timestamp more than 5 minutes off.", ref("Error")),
        "404": _json("HELPDESK_SECRET is not set.", ref("Error")),
        "422": _json("The body makes no valid support event: the field.", ref("Error")),
        "503": _json("The broker did not acknowledge (or no producer).", ref("Error")),
    }
    signed = {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "schema": _text(),
        "description": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks).",
    }
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": _text()},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": _text()},
        signed,
    ]
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": (
                        "billstate's shape {event_type, customer_id, data} or Zendesk's"
                        " {zendesk: {ticket_id, customer_id, tags, via, title, status}}"
                        " (docs/console.md)."
                    ),
                }
            }
        },
    }
    zendesk_headers = [
        {"name": f"x-zendesk-webhook-{h}", "in": "header", "required": True, "schema": _text()}
        for h in ("signature", "signature-timestamp", "invocation-id")
    ]
    return {
        "/hooks/helpdesk": {
            "post": _op(
                "helpdesk_hook",
                "hooks",
                "The helpdesk's signed webhook: one support event per delivery.",
                hook,
                parameters=headers,
                requestBody=body,
                security=OPEN,
            )
        },
        "/hooks/zendesk": {
            "post": _op(
                "zendesk_hook",
                "hooks",
                "Zendesk's webhook, signed its own way (base64 HMAC-SHA256 of timestamp + body):"
                " the Zendesk body of docs/console.md; one support event per invocation.",
                {**hook, "404": _json("ZENDESK_SECRET is not set.", ref("Error"))},
                parameters=zendesk_headers,
                requestBody=body,
                security=OPEN,
            )
        },
        "/support": {"get": _page("support_page", "Open support requests, oldest first.")},
        "/customers/{customer_id}/support/{ticket_id}": {
            "get": _page(
                "ticket_page",
                "A support ticket: diagnose, escalate.",
                CUSTOMER,
                TICKET,
                missing="html",
            )
        },
        "/api/support": {
            "get": _api("support_requests", "Open support requests.", "SupportRequests")
        },
        "/api/customers/{customer_id}/support/{ticket_id}": {
            "get": _api(
                "ticket", "A support ticket.", "TicketDetail", CUSTOMER, TICKET, missing="404"
            )
        },
    }


def components() -> Doc:
    who = "The identity lacks the role (a viewer acting), or a browser's CSRF token is missing."
    return {
        "schemas": schemas(),
        "responses": {
            "ToSignIn": {
                "description": "No identity, and a browser asked for a page: to /signin?next=...",
                "headers": {"Location": {"schema": _text()}},
            },
            "Refused": _json("Refused: the message and the field it is about.", ref("Error")),
            "Unauthorized": {
                **_json(
                    "No identity, a wrong token, or proxy headers from elsewhere.", ref("Error")
                ),
                "headers": {"WWW-Authenticate": {"schema": _text()}},
            },
            "Forbidden": _json(who, ref("Error")),
            "NotFound": _json("Unknown.", ref("Error")),
            "NotFoundText": _plain("Unknown (said in text)."),
            "Unavailable": _plain("The broker did not acknowledge (or no producer): nothing sent."),
            "UnavailableJson": _json(
                "The broker did not acknowledge (or no producer): nothing sent.", ref("Error")
            ),
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The viewer's or the operator's static token.",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "A browser's session, from POST /signin.",
            },
            "proxy": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Forwarded-User",
                "description": (
                    "The sign-in proxy's user and groups headers (USER_HEADER, GROUPS_HEADER),"
                    " believed only from TRUSTED_PROXIES; the role is the groups'."
                ),
            },
            "csrf": {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRF-Token",
                "description": (
                    "A browser's POST (session or proxy) carries the pages' CSRF token, in this"
                    f" header or the form field `{CSRF_FIELD}`; a bearer token's needs none."
                ),
            },
        },
    }


@functools.cache
def document() -> Doc:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "billstate console",
            "version": version("billstate-console"),
            "description": (
                "The billing-operations console: pages (text/html) and a JSON API (/api/...). Every"
                " route but the probes and /signin needs an identity; a viewer reads, an operator"
                " also acts (POST). Amounts are decimal strings; times UTC ISO 8601."
            ),
        },
        "security": SIGNED_IN,
        "tags": [
            {"name": "api", "description": "JSON reads."},
            {"name": "actions", "description": "JSON actions: an operator's events."},
            {"name": "pages", "description": "HTML pages (`?lang=en` or `zh-TW`)."},
            {"name": "forms", "description": "The pages' forms (CSRF token for a browser)."},
            {"name": "hooks", "description": "Open, but only with a valid signature."},
            {
                "name": "probes",
                "description": "Open: the kubelet and Prometheus carry no credentials.",
            },
        ],
        "paths": paths(),
        "components": components(),
    }


@functools.cache
def _serialized() -> bytes:
    return json.dumps(document(), sort_keys=True).encode()


async def openapi_api(_request: web.Request) -> web.Response:
    return web.Response(body=_serialized(), content_type="application/json")
