"""Bytes to events and back: `decode`, `encode` and the one error type, `ContractError`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from billstate_shared.contracts.events import (
    EVENT_TYPES,
    CostRecorded,
    CostRecordedData,
    Event,
    EventBase,
    InvoiceIssued,
    InvoiceIssuedData,
    PaymentReceived,
    PaymentReceivedData,
)
from billstate_shared.contracts.types import (
    MAX_ID,
    MAX_SUBSCRIPTION_ID,
    MAX_SUBSCRIPTIONS,
    POSITIVE_AMOUNT_PATTERN,
    SIGNED_AMOUNT_PATTERN,
    parse_date,
)
from billstate_shared.domain.currencies import ISO_4217_CODES
from billstate_shared.errors import Refused

__all__ = ["ContractError", "decode", "encode", "validate"]

# Built once: constructing a TypeAdapter compiles the validator, far costlier than a decode.
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_KNOWN_TYPES = ", ".join(EVENT_TYPES)


class ContractError(Refused):
    """A message that does not satisfy the wire contract.

    `field` is the dotted path of the first offending field (`data.amount`, `event_type`),
    or `$` when the message as a whole is unreadable (not UTF-8, not JSON, not an object).
    Reasons never quote the offending value, so they are safe to log and to put in a DLQ
    record even when the value is an e-mail address.
    """


def decode(raw: bytes | bytearray | str) -> Event:
    """Parse and validate one message value; raise ContractError on the first problem."""
    if type(raw) is bytes:
        quick = _quick(raw)
        if quick is not None:
            return quick
    return validate(raw)


def validate(raw: bytes | bytearray | str) -> Event:
    """`decode` through the pydantic validator alone (what the quick path must equal)."""
    try:
        # Checked up front so that bad encoding gets its own reason instead of a JSON one.
        if isinstance(raw, str):
            raw.encode("utf-8")
        else:
            bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise ContractError("$", f"not valid UTF-8: {exc.reason} at position {exc.start}") from None
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _translate(exc.errors(include_url=False, include_input=False)[0]) from None


def encode(event: EventBase) -> bytes:
    """Compact UTF-8 JSON, fields in declaration order; `decode(encode(e)) == e`."""
    return event.model_dump_json().encode("utf-8")


_REASONS = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this event type",
}


def _translate(error: ErrorDetails) -> ContractError:
    kind = error["type"]
    loc = error["loc"]
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        return ContractError("$", f"invalid JSON: {ctx.get('error', error['msg'])}")
    if kind == "union_tag_not_found":
        return ContractError("event_type", "is required")
    if kind == "union_tag_invalid":
        # Capped: the tag is producer input and ends up in logs and DLQ records.
        tag = str(ctx.get("tag"))[:128]
        return ContractError(
            "event_type", f"unknown event type {tag!r}; expected one of: {_KNOWN_TYPES}", tag
        )
    # A tagged union prefixes every error inside a member with that member's tag.
    event_type: str | None = None
    if loc and isinstance(loc[0], str) and loc[0] in EVENT_TYPES:
        event_type = loc[0]
        loc = loc[1:]
    if not loc:
        reason = "must be a JSON object" if kind in {"dict_type", "model_type"} else error["msg"]
        return ContractError("$", reason, event_type)
    field = ".".join(str(part) for part in loc)
    return ContractError(field, _REASONS.get(kind, error["msg"]), event_type)


# ---- the quick path -------------------------------------------------------------------------
# Four in five inbound records are cost lines, invoices and payments. For those, when every
# value has the plain shape producers send, the model is built here from orjson's parse with
# the same values the validator would make (a test holds them equal on every line of a
# simulated history and on mutated ones). Anything else, doubtful or wrong, returns None and
# goes to the validator, which accepts it or says why not: this path never refuses.

_EVENT_ID = re.compile(rf"[^\x00-\x1f\x7f-\x9f]{{1,{MAX_ID}}}")  # EventId's pattern, exactly
_ID = re.compile(rf"[!-~]{{1,{MAX_ID}}}")  # printable ASCII: a subset of Id's pattern
_CUSTOMER = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SUB = re.compile(rf"[!#-\[\]-~]{{1,{MAX_SUBSCRIPTION_ID}}}")
_POSITIVE = re.compile(POSITIVE_AMOUNT_PATTERN)
_SIGNED = re.compile(SIGNED_AMOUNT_PATTERN)
# A timestamp of one exact shape and a year from 2001 to 2198: inside the contract's range
# whatever its offset, so fromisoformat alone gives the validator's value.
_STAMP = re.compile(
    r"2(?:00[1-9]|0[1-9][0-9]|1[0-8][0-9]|19[0-8])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"[+-][0-9]{2}:[0-9]{2}"
)
_ENVELOPE = frozenset(
    ("event_id", "event_type", "schema_version", "occurred_at", "customer_id", "data")
)

_days: dict[str, date] = {}  # a year's history names a few hundred distinct dates
_MAX_DAYS_KEPT = 4096

_new: Any = object.__new__
_set_dict: Any = object.__setattr__
_set_fields: Any = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Any = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Any = BaseModel.__dict__["__pydantic_private__"].__set__


def _model(cls: type[BaseModel], values: dict[str, Any], given: set[str]) -> Any:
    """What validation makes of `values` (all fields, in declaration order)."""
    model = _new(cls)
    _set_dict(model, "__dict__", values)
    _set_fields(model, given)
    _set_extra(model, None)
    _set_private(model, None)
    return model


def _day(value: object) -> date | None:
    if type(value) is not str:
        return None
    day = _days.get(value)
    if day is None:
        try:
            day = parse_date(value)
        except PydanticCustomError:
            return None
        if len(_days) >= _MAX_DAYS_KEPT:
            _days.clear()
        _days[value] = day
    return day


def _stamp(value: object) -> datetime | None:
    if type(value) is not str or not _STAMP.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _is_id(value: object) -> bool:
    return type(value) is str and _ID.fullmatch(value) is not None


def _subs(value: object) -> list[str] | None:
    if type(value) is not list or len(value) > MAX_SUBSCRIPTIONS:
        return None
    for sub in value:
        if type(sub) is not str or not _SUB.fullmatch(sub):
            return None
    return value


def _amount(value: object, pattern: re.Pattern[str]) -> Decimal | None:
    if type(value) is not str or not pattern.fullmatch(value):
        return None
    return Decimal(value)


def _currency(value: object) -> bool:
    return type(value) is str and value in ISO_4217_CODES


_COST_KEYS = frozenset(CostRecordedData.model_fields)


def _cost(d: dict[str, Any]) -> CostRecordedData | None:
    if d.keys() != _COST_KEYS:
        return None
    start, end = _day(d["charge_start"]), _day(d["charge_end"])
    amount = _amount(d["amount"], _SIGNED)
    if (
        start is None
        or end is None
        or end < start
        or amount is None
        or not _is_id(d["cost_id"])
        or not _is_id(d["invoice_ref"])
        or not _currency(d["currency"])
        or type(d["subscription_id"]) is not str
        or not _SUB.fullmatch(d["subscription_id"])
    ):
        return None
    values = {
        "cost_id": d["cost_id"],
        "subscription_id": d["subscription_id"],
        "charge_start": start,
        "charge_end": end,
        "amount": amount,
        "currency": d["currency"],
        "invoice_ref": d["invoice_ref"],
    }
    data: CostRecordedData = _model(CostRecordedData, values, set(_COST_KEYS))
    return data


_INVOICE_KEYS = frozenset(InvoiceIssuedData.model_fields)
_INVOICE_REQUIRED = _INVOICE_KEYS - {"period_start", "period_end"}


def _optional_day(d: dict[str, Any], key: str) -> tuple[bool, date | None]:
    """(ok, value) of an optional date field."""
    if key not in d or d[key] is None:
        return True, None
    day = _day(d[key])
    return day is not None, day


def _invoice(d: dict[str, Any]) -> InvoiceIssuedData | None:
    keys = d.keys()
    if not (_INVOICE_REQUIRED <= keys <= _INVOICE_KEYS):
        return None
    issued, due = _day(d["issued_on"]), _day(d["due_on"])
    amount = _amount(d["amount"], _POSITIVE)
    subs = _subs(d["subscription_ids"])
    start_ok, start = _optional_day(d, "period_start")
    end_ok, end = _optional_day(d, "period_end")
    if (
        issued is None
        or due is None
        or due < issued
        or amount is None
        or subs is None
        or not start_ok
        or not end_ok
        or not _is_id(d["invoice_id"])
        or not _currency(d["currency"])
    ):
        return None
    values = {
        "invoice_id": d["invoice_id"],
        "currency": d["currency"],
        "amount": amount,
        "issued_on": issued,
        "due_on": due,
        "subscription_ids": subs,
        "period_start": start,
        "period_end": end,
    }
    data: InvoiceIssuedData = _model(InvoiceIssuedData, values, set(keys))
    return data


_PAYMENT_KEYS = frozenset(PaymentReceivedData.model_fields)
_PAYMENT_REQUIRED = _PAYMENT_KEYS - {"invoice_id"}


def _payment(d: dict[str, Any]) -> PaymentReceivedData | None:
    keys = d.keys()
    if not (_PAYMENT_REQUIRED <= keys <= _PAYMENT_KEYS):
        return None
    amount = _amount(d["amount"], _POSITIVE)
    invoice_id = d.get("invoice_id")
    if (
        amount is None
        or not _is_id(d["payment_id"])
        or not _currency(d["currency"])
        or (invoice_id is not None and not _is_id(invoice_id))
    ):
        return None
    values = {
        "payment_id": d["payment_id"],
        "currency": d["currency"],
        "amount": amount,
        "invoice_id": invoice_id,
    }
    data: PaymentReceivedData = _model(PaymentReceivedData, values, set(keys))
    return data


_QUICK: dict[str, tuple[type[EventBase], Callable[[dict[str, Any]], BaseModel | None]]] = {
    "cost.recorded": (CostRecorded, _cost),
    "invoice.issued": (InvoiceIssued, _invoice),
    "payment.received": (PaymentReceived, _payment),
}


def _quick(raw: bytes) -> Event | None:
    """The model of a common record of the plain shape, or None: ask the validator."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(envelope) is not dict or envelope.keys() != _ENVELOPE:
        return None
    event_type = envelope["event_type"]
    kind = _QUICK.get(event_type) if type(event_type) is str else None
    if kind is None:
        return None
    event_id, customer_id, data = (
        envelope["event_id"],
        envelope["customer_id"],
        envelope["data"],
    )
    version = envelope["schema_version"]
    occurred_at = _stamp(envelope["occurred_at"])
    if (
        occurred_at is None
        or type(version) is not int
        or version != 1
        or type(event_id) is not str
        or not _EVENT_ID.fullmatch(event_id)
        or type(customer_id) is not str
        or not _CUSTOMER.fullmatch(customer_id)
        or type(data) is not dict
    ):
        return None
    cls, build = kind
    payload = build(data)
    if payload is None:
        return None
    values = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": occurred_at,
        "customer_id": customer_id,
        "data": payload,
    }
    event: Event = _model(cls, values, set(_ENVELOPE))
    return event
