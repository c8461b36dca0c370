"""The wire contracts: round trips, one refusal per field, codec errors, amount properties."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from billstate_shared.contracts import (
    EVENT_TYPES,
    INBOUND_TYPES,
    Amount,
    ContractError,
    EventBase,
    InvoiceIssuedData,
    Money,
    NonNegativeAmount,
    PositiveAmount,
    SignedAmount,
    decode,
    encode,
)
from billstate_shared.contracts.events import MAX_EXCHANGES
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.contracts.types import (
    AMOUNT_PATTERN,
    MAX_HOLDS,
    MAX_SUBSCRIPTIONS,
    NON_NEGATIVE_AMOUNT_PATTERN,
    POSITIVE_AMOUNT_PATTERN,
    SIGNED_AMOUNT_PATTERN,
)
from billstate_shared.domain.currencies import ISO_4217_CODES

Doc = dict[str, Any]
Path = tuple[str | int, ...]


def doc_of(event_type: str) -> Doc:
    result: Doc = json.loads(encode(EXAMPLES[event_type]))
    return result


def refusal(doc: Any) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode(json.dumps(doc))
    return info.value


def dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


def replaced(doc: Doc, path: Path, value: Any) -> Doc:
    copy: Any = json.loads(json.dumps(doc))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    result: Doc = copy
    return result


def removed(doc: Doc, path: Path) -> Doc:
    copy: Any = json.loads(json.dumps(doc))
    target = copy
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    result: Doc = copy
    return result


def field_paths(value: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every object member in an example, nested objects and the first list item included."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key), child
            # facts is free-form JSON: any value inside it is valid by definition.
            if prefix != ("data",) or key != "facts":
                yield from field_paths(child, (*prefix, key))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        yield from field_paths(value[0], (*prefix, 0))


def wrong_json_type(value: Any) -> Any:
    """A value of a JSON type the field never accepts (strict mode: no coercion)."""
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int):
        return "1"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return "not-a-list"
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return {"not": "a value"}  # null: every nullable field is a string, int or object


# ---------------------------------------------------------------------------------------
# Examples and round trips
# ---------------------------------------------------------------------------------------


def test_examples_cover_every_event_type_in_catalog_order() -> None:
    assert list(EXAMPLES) == list(EVENT_TYPES)
    assert len(EVENT_TYPES) == 35
    for event_type, event in EXAMPLES.items():
        assert type(event) is EVENT_TYPES[event_type]


def test_inbound_types_are_known_event_types() -> None:
    assert set(EVENT_TYPES) >= INBOUND_TYPES
    assert {
        "customer.upserted",
        "invoice.issued",
        "invoice.adjusted",
        "invoice.voided",
        "payment.received",
        "payment.reversed",
        "payment.failed",
        "payment.pending",
        "cost.recorded",
        "clock.tick",
        "hold.placed",
        "hold.released",
        "support.requested",
        "support.resolved",
    } == INBOUND_TYPES


@pytest.mark.parametrize("event_type", list(EXAMPLES))
def test_example_round_trips(event_type: str) -> None:
    event = EXAMPLES[event_type]
    raw = encode(event)
    assert decode(raw) == event
    assert decode(raw.decode("utf-8")) == event
    assert decode(bytearray(raw)) == event
    assert encode(decode(raw)) == raw


@pytest.mark.parametrize("event_type", list(EXAMPLES))
def test_example_json_carries_every_field(event_type: str) -> None:
    # The per-field refusal tests walk the example JSON, so it must show every field.
    doc = doc_of(event_type)
    model = EVENT_TYPES[event_type]
    assert list(doc) == list(model.model_fields)
    data_model = type(EXAMPLES[event_type].data)
    assert list(doc["data"]) == list(data_model.model_fields)


def test_encode_is_compact_utf8_in_contract_order() -> None:
    raw = encode(EXAMPLES["invoice.issued"])
    assert raw.startswith(
        b'{"event_id":"inv-2026-0001-issued","event_type":"invoice.issued","schema_version":1,'
        b'"occurred_at":"2026-11-01T09:30:00+00:00","customer_id":"contoso","data":{'
    )
    assert b'"amount":"1450.00"' in raw
    assert b'"issued_on":"2026-11-01"' in raw
    assert b", " not in raw
    assert b": " not in raw


def test_encode_keeps_non_ascii_text_as_utf8() -> None:
    event = EXAMPLES["customer.upserted"]
    renamed = event.model_copy(
        update={"data": event.data.model_copy(update={"name": "Zoë Café 株式会社"})}
    )
    raw = encode(renamed)
    assert "Zoë Café 株式会社".encode() in raw
    assert decode(raw) == renamed


def test_models_are_frozen() -> None:
    event = EXAMPLES["invoice.issued"]
    with pytest.raises(ValidationError):
        event.customer_id = "fabrikam"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# One refusal per field, for every event type
# ---------------------------------------------------------------------------------------

_WRONG_TYPE_CASES = [
    pytest.param(event_type, path, id=f"{event_type}:{dotted(path)}")
    for event_type in EXAMPLES
    for path, _ in field_paths(doc_of(event_type))
]


@pytest.mark.parametrize(("event_type", "path"), _WRONG_TYPE_CASES)
def test_wrong_json_type_is_refused_at_its_field(event_type: str, path: Path) -> None:
    doc = doc_of(event_type)
    original: Any = doc_of(event_type)
    for part in path:
        original = original[part]
    err = refusal(replaced(doc, path, wrong_json_type(original)))
    assert err.field == dotted(path)
    assert str(err) == f"{err.field}: {err.reason}"
    if path != ("event_type",):
        assert err.event_type == event_type


_ID = ["", "has space", "tab\there", "x" * 129]
_DATE = ["2026-02-30", "2026-11-01T00:00:00+00:00", "01/11/2026", "20261101", "2026-1-1"]
_DATE += ["1999-12-31", "2200-01-01", "0001-01-01", "9999-12-31"]
_TEXT = ["x" * 1001, "bell\x07", "nul\x00", "c1\x85"]
_LABEL = ["x" * 129, "line\nbreak"]
_TOO_MANY_MONEY = [{"amount": "1.00", "currency": "USD"}] * (len(ISO_4217_CODES) + 1)
_EXCHANGE = {"at": "2027-01-12T09:00:00Z", "method": "PATCH", "path": "/v1/x", "status": 409}
# Right JSON type, wrong content: keyed by the field's own name, wherever it appears.
_BAD_VALUES: dict[str, list[Any]] = {
    "event_id": ["", "x" * 129, "line\nbreak", "nul\x00"],
    "event_type": ["invoice.paid", "", "INVOICE.ISSUED"],
    "schema_version": [2, 0, True, 1.0],
    "occurred_at": [
        "2026-11-01T09:30:00",
        "2026-11-01",
        "2026-11-01T09:30+00:00",
        "2026-13-01T09:30:00Z",
        "1 Nov 2026 09:30 UTC",
        "",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59+00:00",
        "2200-01-01T00:00:00Z",
        "2000-01-01T23:59:59Z",
        "2000-01-01T09:59:59-14:00",
        "2199-12-31T00:00:00Z",
        "2199-12-31T14:00:00+14:00",
    ],
    "customer_id": ["has space", "x" * 65, "", "*", "ünïcode"],
    "amount": ["1.23456", "1e3", "", "abc", "1.", ".5", "+1", " 1.00", "1,000.00", "NaN"],
    "amount_delta": ["0.00", "1.00001", "-", "1000000000000", "-999999999999999999.9999"],
    "currency": ["usd", "ABC", "US", "EURO", ""],
    "invoice_id": _ID,
    "payment_id": _ID,
    "hold_id": _ID,
    "command_id": _ID,
    "notice_id": _ID,
    "subscription_id": [*_ID, "x" * 65, "back\\slash", "ü"],
    "anchor_invoice_id": _ID,
    "trigger_event_id": ["", "x" * 129],
    "case_id": ["", "x" * 129, "line\nbreak"],
    "subscription_ids": [[""], ["has space"], [1], ["s"] * 251, ["x" * 65], ['q"uote'], ["é"]],
    "suspended_subscription_ids": [[""], ["s"] * 251, ["x" * 65]],
    "issued_on": _DATE,
    "due_on": _DATE,
    "as_of": _DATE,
    "until": _DATE,
    "placed_on": _DATE,
    "earliest_on": _DATE,
    "anchor_due_on": _DATE,
    "expected_by": _DATE,
    "period_start": _DATE,
    "period_end": _DATE,
    "charge_start": _DATE,
    "charge_end": _DATE,
    "term_end": _DATE,
    "renews_on": _DATE,
    "cancellable_until": ["2027-01-31", "2027-01-31T00:00:00", "", "2200-01-01T00:00:00Z"],
    "cost_id": _ID,
    "invoice_ref": _ID,
    "auto_renew": [1, "yes", None],
    "term_cost": [{"amount": "1.00"}, {"amount": 1, "currency": "USD"}, "USD 1.00"],
    "exposure": [[{"amount": "1.00"}], [{"amount": 1, "currency": "USD"}], _TOO_MANY_MONEY],
    "batch_id": _ID,
    "guard": ["", "wall_clock", "Brake"],
    "outcome": ["", "done", "Approved"],
    "count": [0, -1, 1.5, "3"],
    "customer_ids": [[], ["has space"], ["*"], ["c"] * 11],
    "pending_payments": [
        [{"payment_id": "p"}],
        ["PAY-1"],
        [{"payment_id": "p", "amount": "1.00", "currency": "USD", "expected_by": "2027-01-01"}]
        * 17,
    ],
    "waiting": _TEXT,
    "tickets": [
        [{"ticket_id": "T-1"}],
        ["T-1"],
        [{"ticket_id": "T-1", "topic": "refund", "opened_on": "2026-12-18"}],
        [{"ticket_id": "T-1", "topic": "dispute", "opened_on": "2026-12-18"}] * 17,
    ],
    "timezone": ["Mars/Olympus", "localtime", "", 8, "x" * 65],
    "digest": ["", "ABC", "0" * 63, "g" * 64],
    "stages": [[], [""] * 0, ["x" * 129], ["s"] * 65],
    "migrate": [{"a": "x" * 129}, ["a"]],
    "group": _LABEL,
    "locale": ["english!", "e", "en_US", "", "en-"],
    "billing_email": ["not-an-email", "a@b", "a b@c.example", ""],
    "partner_contact_email": ["not-an-email", ""],
    "name": ["", "x" * 1001, "nul\x00"],
    "kind": ["", "x" * 129],
    "audience": ["everyone", "Customer"],
    "desired": ["deleted"],
    "attempts": [0, -1, 1.5, 10**9 + 1],
    "version": [0, -3, 10**9 + 1],
    "days_past_due": [1.5, "15", 100_001, -100_001, 10**30],
    "sequence": [-1, 2**53 + 1, 1.5, "4", True],
    "delinquent": [1, "yes", None],
    "will_retry": [0, "no", None],
    "tags": [[1], [None], [""], ["x" * 65], ["t"] * 33, ["nul\x00"]],
    "overdue": [[{"amount": "1.00"}], [{"amount": 1, "currency": "USD"}], _TOO_MANY_MONEY],
    "reason": _TEXT,
    "text": _TEXT,
    "error": _TEXT,
    "observed": _TEXT,
    "note": _TEXT,
    "exchanges": [
        ["PATCH"],
        [{**_EXCHANGE, "status": 99}],
        [{**_EXCHANGE, "at": "2027-01-12T09:00:00"}],
        [{**_EXCHANGE, "path": "x" * 1001}],
        [_EXCHANGE] * 11,
    ],
    "by": _LABEL,
    "stage": _LABEL,
    "previous": _LABEL,
    "rule": _LABEL,
    "provider": _LABEL,
    "channel": _LABEL,
    "ticket_id": _ID,
    "topic": ["refund", "", 1, None],
    "summary": _TEXT,
    "resolution": ["", *_TEXT],
    "outstanding": [{"amount": "1.00"}, {"amount": "1.00", "currency": "USD", "x": 1}],
    "facts": [["a"], "text"],
    "data": [None, "x"],
}


def _semantic_cases() -> Iterator[Any]:
    for event_type in EXAMPLES:
        for path, _ in field_paths(doc_of(event_type)):
            name = path[-1]
            for value in _BAD_VALUES.get(str(name), []):
                bad = value
                if (
                    event_type in ("clock.tick", "policy.accepted")
                    and name == "customer_id"
                    and bad == "*"
                ):
                    bad = "contoso"
                if event_type == "hold.placed" and name == "kind" and bad == "":
                    bad = "refund"
                yield pytest.param(event_type, path, bad, id=f"{event_type}:{dotted(path)}={bad!r}")


@pytest.mark.parametrize(("event_type", "path", "bad"), list(_semantic_cases()))
def test_invalid_value_is_refused_at_its_field(event_type: str, path: Path, bad: Any) -> None:
    err = refusal(replaced(doc_of(event_type), path, bad))
    field = dotted(path)
    # A bad list item or sub-object member is reported below the field, e.g. `.0.amount`.
    assert err.field == field or err.field.startswith(field + "."), str(err)


def test_every_data_field_has_a_content_check_or_is_free_text() -> None:
    # Free text has a length check too (in _BAD_VALUES); what is left is objects checked
    # member by member, and the list of holds (its length: test_holds_in_force_are_capped).
    free_text = {"holds", "next", "why", "policy"}
    for event_type in EXAMPLES:
        for name in doc_of(event_type)["data"]:
            assert name in _BAD_VALUES or name in free_text, (event_type, name)


def _required_paths() -> Iterator[Any]:
    for event_type, event in EXAMPLES.items():
        for name, info in type(event).model_fields.items():
            if info.is_required():
                yield pytest.param(event_type, (name,), id=f"{event_type}:{name}")
        for name, info in type(event.data).model_fields.items():
            if info.is_required():
                yield pytest.param(event_type, ("data", name), id=f"{event_type}:data.{name}")


@pytest.mark.parametrize(("event_type", "path"), list(_required_paths()))
def test_missing_required_field_is_refused(event_type: str, path: Path) -> None:
    err = refusal(removed(doc_of(event_type), path))
    assert err.field == dotted(path)
    assert err.reason == "is required"


@pytest.mark.parametrize(
    ("event_type", "path"),
    [
        ("invoice.issued", ("schema_version",)),
        ("payment.received", ("data", "invoice_id")),
        ("payment.failed", ("data", "invoice_id")),
        ("payment.failed", ("data", "payment_id")),
        ("customer.upserted", ("data", "timezone")),
        ("collections.state", ("data", "pending_payments")),
        ("collections.state", ("data", "waiting")),
        ("collections.state", ("data", "exposure")),
        ("collections.state", ("data", "tickets")),
        ("invoice.issued", ("data", "period_start")),
        ("invoice.issued", ("data", "period_end")),
        ("access.commitment", ("data", "exchanges")),
        ("hold.placed", ("data", "invoice_id")),
        ("hold.placed", ("data", "amount")),
        ("notice.delivered", ("data", "error")),
    ],
)
def test_optional_field_may_be_absent(event_type: str, path: Path) -> None:
    decode(json.dumps(removed(doc_of(event_type), path)))


# ---------------------------------------------------------------------------------------
# Named cases from the brief
# ---------------------------------------------------------------------------------------


def test_float_amount_is_refused_with_a_reason() -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("data", "amount"), 1450.0))
    assert err.field == "data.amount"
    assert "JSON number" in err.reason
    assert err.event_type == "invoice.issued"


def test_integer_amount_is_refused() -> None:
    err = refusal(replaced(doc_of("payment.received"), ("data", "amount"), 100))
    assert err.field == "data.amount"


def test_five_fractional_digits_are_refused() -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("data", "amount"), "10.00001"))
    assert err.field == "data.amount"
    assert "4 fractional digits" in err.reason


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("invoice.issued", ("data", "amount"), "0"),
        ("invoice.issued", ("data", "amount"), "-1.00"),
        ("payment.received", ("data", "amount"), "0.0000"),
        ("invoice.adjusted", ("data", "amount_delta"), "0"),
        ("invoice.adjusted", ("data", "amount_delta"), "-0.00"),
    ],
)
def test_amount_sign_rules(event_type: str, path: Path, value: str) -> None:
    assert refusal(replaced(doc_of(event_type), path, value)).field == dotted(path)


def test_negative_adjustment_and_negative_outstanding_are_valid() -> None:
    decode(json.dumps(replaced(doc_of("invoice.adjusted"), ("data", "amount_delta"), "-0.0001")))
    doc = replaced(doc_of("invoice.aged"), ("data", "outstanding", "amount"), "-5.00")
    decode(json.dumps(doc))


def test_lowercase_currency_is_refused() -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("data", "currency"), "usd"))
    assert err.field == "data.currency"
    assert "upper-case" in err.reason


def test_unknown_currency_is_refused() -> None:
    err = refusal(replaced(doc_of("payment.received"), ("data", "currency"), "ABC"))
    assert err.field == "data.currency"
    assert "ISO 4217" in err.reason


@pytest.mark.parametrize("code", ["USD", "EUR", "TWD", "JPY", "CHF", "ZAR"])
def test_common_currencies_are_accepted(code: str) -> None:
    decode(json.dumps(replaced(doc_of("invoice.issued"), ("data", "currency"), code)))


def test_naive_occurred_at_is_refused() -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("occurred_at",), "2026-11-01T09:30:00"))
    assert err.field == "occurred_at"
    assert "offset" in err.reason


def test_numeric_occurred_at_is_refused() -> None:
    err = refusal(replaced(doc_of("clock.tick"), ("occurred_at",), 1793525400))
    assert err.field == "occurred_at"
    assert "RFC 3339" in err.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01t09:30:00z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01 09:30:00+00:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        (
            "2026-11-01T09:30:00.123456789+05:30",
            datetime(2026, 11, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5.5))),
        ),
    ],
)
def test_rfc3339_variants_are_accepted(text: str, expected: datetime) -> None:
    event = decode(json.dumps(replaced(doc_of("clock.tick"), ("occurred_at",), text)))
    assert event.occurred_at == expected
    assert event.occurred_at.utcoffset() == expected.utcoffset()


def test_occurred_at_keeps_its_offset_on_the_wire() -> None:
    doc = replaced(doc_of("clock.tick"), ("occurred_at",), "2026-11-01T09:30:00+05:30")
    assert b'"occurred_at":"2026-11-01T09:30:00+05:30"' in encode(decode(json.dumps(doc)))


@pytest.mark.parametrize("customer_id", ["has space", "x" * 65])
def test_bad_customer_id_is_refused(customer_id: str) -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("customer_id",), customer_id))
    assert err.field == "customer_id"


def test_customer_id_of_64_allowed_characters_is_accepted() -> None:
    customer_id = ("Ab0._:-" * 10)[:64]
    decode(json.dumps(replaced(doc_of("invoice.issued"), ("customer_id",), customer_id)))


def test_star_customer_id_is_only_for_clock_ticks() -> None:
    assert refusal(replaced(doc_of("invoice.issued"), ("customer_id",), "*")).field == (
        "customer_id"
    )
    assert refusal(replaced(doc_of("clock.tick"), ("customer_id",), "contoso")).field == (
        "customer_id"
    )


def test_unknown_event_type_is_refused() -> None:
    err = refusal(replaced(doc_of("invoice.issued"), ("event_type",), "invoice.paid"))
    assert err.field == "event_type"
    assert "unknown" in err.reason
    assert "invoice.issued" in err.reason  # the reason lists what is known
    assert err.event_type == "invoice.paid"


def test_missing_event_type_is_refused() -> None:
    err = refusal(removed(doc_of("invoice.issued"), ("event_type",)))
    assert err.field == "event_type"
    assert err.event_type is None


@pytest.mark.parametrize("raw", ["", "{", "not json", '{"event_id": }', "{'a': 1}", "[1,]"])
def test_bad_json_is_refused_as_a_whole(raw: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(raw)
    assert info.value.field == "$"
    assert info.value.reason.startswith("invalid JSON")
    assert info.value.event_type is None


@pytest.mark.parametrize("raw", ["[]", "3", '"invoice.issued"', "null", "true", "[{}]"])
def test_non_object_json_is_refused_as_a_whole(raw: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(raw)
    assert info.value.field == "$"
    assert "object" in info.value.reason


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe{}", b'{"event_id":"\xc3"}', encode(EXAMPLES["clock.tick"]) + b"\x80"]
)
def test_non_utf8_bytes_are_refused_as_a_whole(raw: bytes) -> None:
    with pytest.raises(ContractError) as info:
        decode(raw)
    assert info.value.field == "$"
    assert "UTF-8" in info.value.reason


def test_lone_surrogate_text_is_refused_as_a_whole() -> None:
    with pytest.raises(ContractError) as info:
        decode('{"event_id":"\ud800"}')
    assert info.value.field == "$"


@pytest.mark.parametrize(
    ("path", "expected"),
    [(("color",), "color"), (("data", "color"), "data.color")],
)
def test_unknown_field_is_refused(path: Path, expected: str) -> None:
    err = refusal(replaced(doc_of("invoice.issued"), path, "blue"))
    assert err.field == expected
    assert "not a field" in err.reason


def test_unknown_field_in_clock_tick_data_is_refused() -> None:
    assert refusal(replaced(doc_of("clock.tick"), ("data", "x"), 1)).field == "data.x"


def test_contract_error_is_a_value_error_and_pickles() -> None:
    err = ContractError("data.amount", "must be greater than zero", "invoice.issued")
    assert isinstance(err, ValueError)
    assert str(err) == "data.amount: must be greater than zero"
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301  (our own bytes, just written)
    assert (copy.field, copy.reason, copy.event_type) == (err.field, err.reason, err.event_type)


def test_reasons_do_not_quote_personal_data() -> None:
    doc = replaced(doc_of("customer.upserted"), ("data", "billing_email"), "jane.doe@@x.example")
    assert "jane" not in str(refusal(doc))


# ---------------------------------------------------------------------------------------
# Cross-field rules
# ---------------------------------------------------------------------------------------


def _hold(**data: Any) -> Doc:
    doc = doc_of("hold.placed")
    doc["data"] = {"hold_id": "HOLD-1", "reason": "r", "by": "bob", **data}
    return doc


def test_due_on_before_issued_on_is_refused_at_due_on() -> None:
    doc = replaced(doc_of("invoice.issued"), ("data", "due_on"), "2026-10-31")
    err = refusal(doc)
    assert err.field == "data.due_on"
    assert "issued_on" in err.reason


def test_due_on_equal_to_issued_on_is_accepted() -> None:
    decode(json.dumps(replaced(doc_of("invoice.issued"), ("data", "due_on"), "2026-11-01")))


def test_due_on_rule_holds_for_python_construction() -> None:
    with pytest.raises(ValidationError):
        InvoiceIssuedData(
            invoice_id="I-1",
            currency="USD",
            amount=Decimal("1.00"),
            issued_on=date(2026, 11, 2),
            due_on=date(2026, 11, 1),
            subscription_ids=[],
        )


def test_charge_end_before_charge_start_is_refused_and_a_one_day_charge_accepted() -> None:
    doc = replaced(doc_of("cost.recorded"), ("data", "charge_end"), "2026-11-30")
    err = refusal(doc)
    assert err.field == "data.charge_end"
    assert "charge_start" in err.reason
    decode(json.dumps(replaced(doc_of("cost.recorded"), ("data", "charge_end"), "2026-12-01")))


def test_a_cost_may_be_a_credit_but_not_zero() -> None:
    doc = replaced(doc_of("cost.recorded"), ("data", "amount"), "-12.40")
    assert decode(json.dumps(doc)).data.amount == Decimal("-12.40")  # type: ignore[union-attr]
    assert refusal(replaced(doc, ("data", "amount"), "0.00")).field == "data.amount"


def test_dispute_requires_invoice_id() -> None:
    err = refusal(_hold(kind="dispute"))
    assert err.field == "data.invoice_id"
    assert "dispute" in err.reason
    assert refusal(_hold(kind="dispute", invoice_id=None)).field == "data.invoice_id"


def test_dispute_with_invoice_and_amount_is_accepted() -> None:
    event = decode(json.dumps(_hold(kind="dispute", invoice_id="INV-1", amount="100.00")))
    assert event.data.amount == Decimal("100.00")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "extra"), [("manual", {}), ("promise_to_pay", {"until": "2027-01-10"})]
)
def test_amount_is_only_for_disputes(kind: str, extra: dict[str, str]) -> None:
    err = refusal(_hold(kind=kind, amount="10.00", **extra))
    assert err.field == "data.amount"
    assert "dispute" in err.reason


def test_promise_to_pay_requires_until() -> None:
    err = refusal(_hold(kind="promise_to_pay"))
    assert err.field == "data.until"
    assert "promise_to_pay" in err.reason


def test_manual_hold_needs_nothing_more() -> None:
    decode(json.dumps(_hold(kind="manual")))


def test_hold_rules_apply_inside_collections_state() -> None:
    doc = replaced(doc_of("collections.state"), ("data", "holds", 0, "kind"), "dispute")
    assert refusal(doc).field == "data.holds.0.invoice_id"


def test_notice_failed_requires_an_error() -> None:
    doc = replaced(doc_of("notice.failed"), ("data", "error"), None)
    assert refusal(doc).field == "data.error"
    assert refusal(replaced(doc_of("notice.failed"), ("data", "error"), "")).field == "data.error"


def test_access_command_needs_a_subscription() -> None:
    for event_type in ("access.suspend", "access.restore"):
        doc = replaced(doc_of(event_type), ("data", "subscription_ids"), [])
        assert refusal(doc).field == "data.subscription_ids"


def test_facts_accept_any_json() -> None:
    facts = {"a": [1, 2.5, None, True, {"b": "c"}], "suspension_on": "2027-01-11"}
    event = decode(json.dumps(replaced(doc_of("notice.requested"), ("data", "facts"), facts)))
    assert event.data.facts == facts  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------
# Amounts: exact text, Python construction, agreement with the published patterns
# ---------------------------------------------------------------------------------------

_AMOUNT_TEXT = st.from_regex(AMOUNT_PATTERN[1:-1], fullmatch=True)
_MONEY = TypeAdapter(Money)


def _canonical(text: str) -> bool:
    digits = text.lstrip("-").split(".")[0]
    return digits == "0" or not digits.startswith("0")


@given(_AMOUNT_TEXT)
def test_any_valid_amount_string_round_trips(text: str) -> None:
    raw = json.dumps({"amount": text, "currency": "EUR"}).encode()
    money = _MONEY.validate_json(raw)
    assert money.amount == Decimal(text)
    written = json.loads(_MONEY.dump_json(money))["amount"]
    if _canonical(text):
        assert written == text
    # Redundant leading zeros are the one thing not kept; the value and scale always are.
    assert Decimal(written).as_tuple() == Decimal(text).as_tuple()
    assert _MONEY.validate_json(_MONEY.dump_json(money)) == money


@given(_AMOUNT_TEXT)
def test_amount_checks_agree_with_schema_patterns(text: str) -> None:
    for amount_type, pattern in [
        (Amount, AMOUNT_PATTERN),
        (PositiveAmount, POSITIVE_AMOUNT_PATTERN),
        (SignedAmount, SIGNED_AMOUNT_PATTERN),
        (NonNegativeAmount, NON_NEGATIVE_AMOUNT_PATTERN),
    ]:
        try:
            TypeAdapter(amount_type).validate_json(json.dumps(text))
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == bool(re.fullmatch(pattern, text)), (amount_type, text)


@given(st.floats(allow_nan=True) | st.integers())
def test_numbers_are_never_amounts(number: float) -> None:
    with pytest.raises(ValidationError):
        _MONEY.validate_json(json.dumps({"amount": number, "currency": "USD"}))


@pytest.mark.parametrize("text", ["123.40", "-0.5000", "0", "0.0001", "999999999999999999.9999"])
def test_amount_text_is_kept_exactly(text: str) -> None:
    raw = json.dumps({"amount": text, "currency": "USD"})
    assert json.loads(_MONEY.dump_json(_MONEY.validate_json(raw)))["amount"] == text


def test_amount_integer_part_is_capped_so_sums_stay_exact() -> None:
    with pytest.raises(ValidationError):
        _MONEY.validate_json(json.dumps({"amount": "1" * 19, "currency": "USD"}))


def test_python_construction_takes_decimals_not_floats() -> None:
    assert Money(amount=Decimal("1E+2"), currency="USD").model_dump_json() == (
        '{"amount":"100","currency":"USD"}'
    )
    assert Money(amount="5.10", currency="USD").amount == Decimal("5.10")  # type: ignore[arg-type]
    for bad in (1.5, 2, True, Decimal("NaN"), Decimal("1.00001")):
        with pytest.raises(ValidationError):
            Money(amount=bad, currency="USD")  # type: ignore[arg-type]


def test_model_dump_keeps_python_types() -> None:
    data = EXAMPLES["invoice.issued"].model_dump()["data"]
    assert data["amount"] == Decimal("1450.00")
    assert data["due_on"] == date(2026, 12, 1)


# ---------------------------------------------------------------------------------------
# Robustness: decode either returns an event or raises ContractError, nothing else
# ---------------------------------------------------------------------------------------


def outcome(raw: bytes | str) -> EventBase | ContractError:
    """decode's result or its ContractError; anything else propagates and fails the test."""
    try:
        return decode(raw)
    except ContractError as err:
        return err


@given(st.binary(max_size=200))
def test_decode_never_crashes_on_bytes(raw: bytes) -> None:
    result = outcome(raw)
    assert isinstance(result, EventBase) or result.field


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(st.sampled_from(list(EXAMPLES)), st.data())
def test_decode_never_crashes_on_mutated_examples(event_type: str, data: st.DataObject) -> None:
    doc = doc_of(event_type)
    paths = [path for path, _ in field_paths(doc)]
    path = data.draw(st.sampled_from(paths))
    mutated = replaced(doc, path, data.draw(_JSON))
    result = outcome(json.dumps(mutated))
    assert isinstance(result, EventBase) or result.field


# ---------------------------------------------------------------------------------------
# Limits: the largest values are accepted, one more is refused (docs/contracts.md "Limits")
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "path"),
    [
        ("invoice.issued", ("data", "amount")),
        ("payment.received", ("data", "amount")),
        ("invoice.adjusted", ("data", "amount_delta")),
    ],
)
def test_input_amounts_are_below_ten_to_the_twelve(event_type: str, path: Path) -> None:
    decode(json.dumps(replaced(doc_of(event_type), path, "999999999999.9999")))
    err = refusal(replaced(doc_of(event_type), path, "1000000000000"))
    assert err.field == dotted(path)
    assert "12 integer" in err.reason


def test_dispute_amount_is_below_ten_to_the_twelve() -> None:
    decode(json.dumps(_hold(kind="dispute", invoice_id="I-1", amount="999999999999.9999")))
    err = refusal(_hold(kind="dispute", invoice_id="I-1", amount="1000000000000.00"))
    assert err.field == "data.amount"


def test_output_money_keeps_eighteen_digits_for_sums() -> None:
    # Sums of input amounts are published as money: they may exceed the input ceiling.
    doc = replaced(
        doc_of("collections.state"), ("data", "overdue", 0, "amount"), "999999999999999999.9999"
    )
    decode(json.dumps(doc))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("occurred_at",), "2000-01-02T00:00:00Z"),
        (("occurred_at",), "2000-01-01T10:00:00-14:00"),
        (("occurred_at",), "2199-12-30T23:59:59.999999+00:00"),
        (("occurred_at",), "2199-12-31T13:59:59+14:00"),
        (("data", "issued_on"), "2000-01-01"),
        (("data", "due_on"), "2199-12-31"),
        (("data", "subscription_ids"), [f"sub-{i:0>60}" for i in range(MAX_SUBSCRIPTIONS)]),
    ],
)
def test_values_at_their_limits_are_accepted(path: Path, value: Any) -> None:
    decode(json.dumps(replaced(doc_of("invoice.issued"), path, value)))


def test_text_and_lists_at_their_limits_are_accepted() -> None:
    doc = doc_of("customer.upserted")
    doc["data"]["name"] = "N" * 1000
    doc["data"]["tags"] = [f"{i:x>64}" for i in range(32)]
    decode(json.dumps(doc))
    hold = _hold(kind="manual", reason="line one\nline two\ttabbed" + "r" * 975, by="b" * 128)
    decode(json.dumps(hold))


def test_holds_in_force_are_capped() -> None:
    doc = doc_of("collections.state")
    hold = doc["data"]["holds"][0]
    doc["data"]["holds"] = [{**hold, "hold_id": f"H-{i}"} for i in range(MAX_HOLDS)]
    decode(json.dumps(doc))
    doc["data"]["holds"].append({**hold, "hold_id": "H-extra"})
    assert refusal(doc).field == "data.holds"


def test_command_sequence_is_optional_and_bounded() -> None:
    for event_type in ("access.suspend", "access.restore"):
        event = decode(json.dumps(removed(doc_of(event_type), ("data", "sequence"))))
        assert event.data.sequence is None  # type: ignore[union-attr]
        doc = replaced(doc_of(event_type), ("data", "sequence"), 2**53)
        assert decode(json.dumps(doc)).data.sequence == 2**53  # type: ignore[union-attr]


def test_provider_exchanges_are_capped_and_optional() -> None:
    for event_type in ("access.failed", "access.drift"):
        doc = doc_of(event_type)
        doc["data"]["exchanges"] = [_EXCHANGE] * MAX_EXCHANGES
        assert len(decode(json.dumps(doc)).data.exchanges) == MAX_EXCHANGES  # type: ignore[union-attr]
        doc["data"]["exchanges"].append(_EXCHANGE)
        assert refusal(doc).field == "data.exchanges"
        assert decode(json.dumps(removed(doc_of(event_type), ("data", "exchanges"))))


def test_case_notes_name_their_case_by_event_id() -> None:
    for event_type in ("case.acknowledged", "case.resolved"):
        assert refusal(removed(doc_of(event_type), ("data", "case_id"))).field == "data.case_id"
        doc = replaced(doc_of(event_type), ("data", "note"), "line one\nline two")
        assert decode(json.dumps(doc)).data.note == "line one\nline two"  # type: ignore[union-attr]
