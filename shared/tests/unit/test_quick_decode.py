"""The codec's quick path gives exactly the validator's model, or leaves the record to it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billstate_shared.contracts import ContractError
from billstate_shared.contracts.codec import _quick, decode, validate

# Values near the edges of each field's rules, valid and not: the quick path must take the
# first kind only where the validator does, and leave the rest to it.
_IDS = st.one_of(
    st.sampled_from(["INV-1", "a", "x" * 128, "x" * 129, "", "a b", "é", "a\x85", "a\u00a0b", 7]),
    st.text(max_size=6),
)
_AMOUNTS = st.one_of(
    st.sampled_from(["1", "0", "0.00", "-0", "-1.5", "12.3456", "1.23456", "1e3", " 1", "1.", 5]),
    st.from_regex(r"-?[0-9]{1,13}(\.[0-9]{0,5})?", fullmatch=True),
)
_DATES = st.one_of(
    st.sampled_from(["2026-01-31", "2026-02-30", "1999-12-31", "2200-01-01", "2026-1-1", None]),
    st.dates().map(lambda d: d.isoformat()),
)
_STAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T09:00:00+08:00",
            "2026-01-01t09:00:00+08:00",
            "2026-01-01T09:00:00Z",
            "2000-01-01T00:00:00+14:00",
            "2198-12-31T23:59:59-23:59",
            "2026-01-01T24:00:00+08:00",
            "2026-01-01T09:00:00.123+08:00",
            "2026-01-01T09:00:00+24:00",
            "2026-01-01T09:00:00",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
)
_CURRENCIES = st.sampled_from(["USD", "EUR", "TWD", "usd", "XXY", "", 1])
_SUBS = st.lists(st.sampled_from(["SUB-1", "SUB-2", "a b", 'a"b', "x" * 65, ""]), max_size=3)


def _maybe(d: dict[str, Any], key: str, value: Any, draw: st.DrawFn) -> None:
    if draw(st.booleans()):
        d[key] = value


@st.composite
def records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["cost.recorded", "invoice.issued", "payment.received"]))
    if kind == "cost.recorded":
        data: dict[str, Any] = {
            "cost_id": draw(_IDS),
            "subscription_id": draw(st.sampled_from(["SUB-1", "a b", "", "x" * 65])),
            "charge_start": draw(_DATES),
            "charge_end": draw(_DATES),
            "amount": draw(_AMOUNTS),
            "currency": draw(_CURRENCIES),
            "invoice_ref": draw(_IDS),
        }
    elif kind == "invoice.issued":
        data = {
            "invoice_id": draw(_IDS),
            "currency": draw(_CURRENCIES),
            "amount": draw(_AMOUNTS),
            "issued_on": draw(_DATES),
            "due_on": draw(_DATES),
            "subscription_ids": draw(_SUBS),
        }
        _maybe(data, "period_start", draw(_DATES), draw)
        _maybe(data, "period_end", draw(_DATES), draw)
    else:
        data = {
            "payment_id": draw(_IDS),
            "currency": draw(_CURRENCIES),
            "amount": draw(_AMOUNTS),
        }
        _maybe(data, "invoice_id", draw(st.one_of(st.none(), _IDS)), draw)
    if draw(st.booleans()):  # most records: a field dropped or one too many
        key = draw(st.sampled_from(sorted(data)))
        if draw(st.booleans()):
            del data[key]
        else:
            data["extra"] = 1
    envelope: dict[str, Any] = {
        "event_id": draw(st.sampled_from(["e-1", "e 1", "", "e\x01", "é-1", "x" * 129])),
        "event_type": kind,
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, True, 1.0])),
        "occurred_at": draw(_STAMPS),
        "customer_id": draw(st.sampled_from(["cust-1", "c:1.x_y", "c 1", "", "x" * 65])),
        "data": data,
    }
    if draw(st.integers(0, 9)) == 0:
        del envelope["schema_version"]
    return orjson.dumps(envelope)


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert repr(a) == repr(b)
    assert list(a.__dict__.items()) == list(b.__dict__.items())
    assert a.model_fields_set == b.model_fields_set
    assert a.data.model_fields_set == b.data.model_fields_set
    assert a.model_dump_json() == b.model_dump_json()


@settings(max_examples=300, deadline=None)
@given(records())
def test_quick_path_equals_the_validator(raw: bytes) -> None:
    try:
        expected = validate(raw)
    except ContractError as err:
        refused = str(err)
    else:
        quick = _quick(raw)
        if quick is not None:
            _same(quick, expected)
        _same(decode(raw), expected)
        return
    assert _quick(raw) is None  # never accepts what the validator refuses
    with pytest.raises(ContractError) as caught:
        decode(raw)
    assert str(caught.value) == refused


def test_plain_records_take_the_quick_path() -> None:
    """The shapes producers send do not reach the validator (otherwise nothing is faster)."""
    lines = [
        (
            b'{"event_id":"c-1","event_type":"cost.recorded","schema_version":1,'
            b'"occurred_at":"2026-02-01T00:00:05+08:00","customer_id":"cust-1","data":{"cost_id":'
            b'"C-1","subscription_id":"SUB-1","charge_start":"2026-01-01","charge_end":"2026-01-31",'
            b'"amount":"-12.50","currency":"USD","invoice_ref":"MS-1"}}'
        ),
        (
            b'{"event_id":"i-1","event_type":"invoice.issued","schema_version":1,'
            b'"occurred_at":"2026-02-01T00:00:05+08:00","customer_id":"cust-1","data":{"invoice_id":'
            b'"INV-1","currency":"EUR","amount":"100.00","issued_on":"2026-02-01","due_on":'
            b'"2026-03-01","subscription_ids":["SUB-1"],"period_start":null}}'
        ),
        (
            b'{"event_id":"p-1","event_type":"payment.received","schema_version":1,'
            b'"occurred_at":"2026-02-01T00:00:05-05:30","customer_id":"cust-1","data":{"payment_id":'
            b'"P-1","currency":"TWD","amount":"3","invoice_id":"INV-1"}}'
        ),
    ]
    for raw in lines:
        quick = _quick(raw)
        assert quick is not None
        _same(quick, validate(raw))
