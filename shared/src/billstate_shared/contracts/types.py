"""Annotated field types shared by the wire contracts: money, ids, dates, locales."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from billstate_shared.domain.currencies import ISO_4217_CODES

__all__ = [
    "AMOUNT_PATTERN",
    "NON_NEGATIVE_AMOUNT_PATTERN",
    "POSITIVE_AMOUNT_PATTERN",
    "SIGNED_AMOUNT_PATTERN",
    "Amount",
    "Currency",
    "CustomerId",
    "Date",
    "Email",
    "EventId",
    "Id",
    "Locale",
    "NonEmptyStr",
    "NonNegativeAmount",
    "PositiveAmount",
    "PositiveInt",
    "SchemaVersion",
    "SignedAmount",
    "Timestamp",
]

# ---------------------------------------------------------------------------------------
# Money amounts
# ---------------------------------------------------------------------------------------

# The integer part is capped at 18 digits so that sums of amounts stay exact in the default
# 28-digit decimal context: an unbounded string could silently round in a later addition.
_AMOUNT_BODY = r"[0-9]{1,18}(\.[0-9]{1,4})?"
AMOUNT_PATTERN = rf"^-?{_AMOUNT_BODY}$"
_AMOUNT_RE = re.compile(rf"-?{_AMOUNT_BODY}")
# The lookahead demands a non-zero digit; it keeps the published patterns as strict as the
# Python checks, so a producer validating against the JSON Schema gets the same answer.
POSITIVE_AMOUNT_PATTERN = rf"^(?=[0-9.]*[1-9]){_AMOUNT_BODY}$"
SIGNED_AMOUNT_PATTERN = rf"^-?(?=[0-9.]*[1-9]){_AMOUNT_BODY}$"
NON_NEGATIVE_AMOUNT_PATTERN = rf"^{_AMOUNT_BODY}$"

_AMOUNT_SHAPE = 'a decimal string such as "123.45" (at most 18 integer and 4 fractional digits)'


def _parse_amount(value: object) -> Decimal:
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "amount_type",
            "must be {shape}, not a JSON number: binary numbers cannot hold money exactly",
            {"shape": _AMOUNT_SHAPE},
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PydanticCustomError("amount_format", "must be a finite amount")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise PydanticCustomError("amount_type", "must be {shape}", {"shape": _AMOUNT_SHAPE})
    if not _AMOUNT_RE.fullmatch(text):
        raise PydanticCustomError("amount_format", "must be {shape}", {"shape": _AMOUNT_SHAPE})
    return Decimal(text)


def _format_amount(value: Decimal) -> str:
    # "f" keeps the exponent the value was parsed with, so "123.40" is written as "123.40".
    return format(value, "f")


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise PydanticCustomError("amount_not_positive", "must be greater than zero")
    return value


def _non_zero(value: Decimal) -> Decimal:
    if value == 0:
        raise PydanticCustomError("amount_zero", "must not be zero")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value.is_signed():
        raise PydanticCustomError("amount_negative", "must not be negative")
    return value


def _amount_schema(pattern: str, description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": pattern,
            "description": description,
            "examples": ["123.45"],
        }
    )


_DecimalString = Annotated[
    Decimal,
    PlainValidator(_parse_amount),
    PlainSerializer(_format_amount, return_type=str, when_used="json"),
]

Amount = Annotated[
    _DecimalString,
    _amount_schema(AMOUNT_PATTERN, "Decimal string, at most 4 fractional digits."),
]
PositiveAmount = Annotated[
    _DecimalString,
    AfterValidator(_positive),
    _amount_schema(POSITIVE_AMOUNT_PATTERN, "Decimal string greater than zero."),
]
SignedAmount = Annotated[
    _DecimalString,
    AfterValidator(_non_zero),
    _amount_schema(SIGNED_AMOUNT_PATTERN, "Non-zero decimal string; negative is a credit."),
]
NonNegativeAmount = Annotated[
    _DecimalString,
    AfterValidator(_non_negative),
    _amount_schema(NON_NEGATIVE_AMOUNT_PATTERN, "Decimal string, zero or more."),
]

# ---------------------------------------------------------------------------------------
# Currency
# ---------------------------------------------------------------------------------------

_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _parse_currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value):
        raise PydanticCustomError(
            "currency_format", 'must be an ISO 4217 code of 3 upper-case letters, such as "USD"'
        )
    if value not in ISO_4217_CODES:
        raise PydanticCustomError("currency_unknown", "is not an active ISO 4217 currency code")
    return value


Currency = Annotated[
    str,
    PlainValidator(_parse_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "enum": sorted(ISO_4217_CODES),
            "description": "Active ISO 4217 currency code.",
        }
    ),
]

# ---------------------------------------------------------------------------------------
# Identifiers and text
# ---------------------------------------------------------------------------------------

# C0 and C1 control characters: they break logs, terminals and Kafka tooling.
_CONTROL = r"\x00-\x1f\x7f-\x9f"

EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=rf"^[^{_CONTROL}]+$")
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=rf"^[^\s{_CONTROL}]+$")]
CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
]
Locale = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
]
# Deliberately loose: deliverability is the mail server's verdict, not the contract's.
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1)]


def _parse_schema_version(value: object) -> Literal[1]:
    # Literal[1] alone would also take `true` and `1.0`, even in strict mode.
    if type(value) is not int or value != 1:
        raise PydanticCustomError("schema_version", "must be the integer 1 (the only version)")
    return 1


SchemaVersion = Annotated[
    Literal[1],
    PlainValidator(_parse_schema_version),
    WithJsonSchema({"type": "integer", "const": 1}),
]

# ---------------------------------------------------------------------------------------
# Dates and timestamps
# ---------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _parse_date(value: object) -> date:
    # datetime is a date subclass; a timestamp where a date is meant is a producer bug.
    if isinstance(value, datetime):
        raise PydanticCustomError("date_type", "must be a date YYYY-MM-DD, not a timestamp")
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_value", "is not a calendar date") from None


def _parse_timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _TIMESTAMP_RE.fullmatch(value):
        text = value.upper()
        # fromisoformat keeps microseconds only; RFC 3339 allows more digits, so cut them.
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise PydanticCustomError("timestamp_value", "is not a valid date and time") from None
    else:
        raise PydanticCustomError(
            "timestamp_format",
            'must be an RFC 3339 timestamp string with offset, such as "2026-11-01T09:30:00+00:00"',
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PydanticCustomError(
            "timestamp_naive", "must carry a UTC offset (Z or +HH:MM); a naive time is ambiguous"
        )
    return parsed


def _format_date(value: date) -> str:
    return value.isoformat()


def _format_timestamp(value: datetime) -> str:
    return value.isoformat()


Date = Annotated[
    date,
    PlainValidator(_parse_date),
    PlainSerializer(_format_date, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
]

Timestamp = Annotated[
    datetime,
    PlainValidator(_parse_timestamp),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 timestamp with a UTC offset.",
        }
    ),
]
