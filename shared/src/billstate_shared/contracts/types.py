"""Annotated field types shared by the wire contracts: money, ids, dates, locales."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
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
from billstate_shared.domain.policy import known_zone

__all__ = [
    "AMOUNT_PATTERN",
    "EARLIEST_DATE",
    "LATEST_DATE",
    "MAX_COUNT",
    "MAX_DAYS",
    "MAX_HOLDS",
    "MAX_ID",
    "MAX_INPUT_AMOUNT",
    "MAX_LABEL",
    "MAX_SUBSCRIPTIONS",
    "MAX_SUBSCRIPTION_ID",
    "MAX_TAG",
    "MAX_TAGS",
    "MAX_TEXT",
    "NON_NEGATIVE_AMOUNT_PATTERN",
    "POSITIVE_AMOUNT_PATTERN",
    "SIGNED_AMOUNT_PATTERN",
    "Amount",
    "Currency",
    "CustomerId",
    "Date",
    "DayCount",
    "Email",
    "EventId",
    "Id",
    "Label",
    "Locale",
    "NonEmptyStr",
    "NonEmptyText",
    "NonNegativeAmount",
    "PositiveAmount",
    "PositiveInt",
    "SchemaVersion",
    "SignedAmount",
    "SubscriptionId",
    "Subscriptions",
    "Tag",
    "Text",
    "TimeZoneName",
    "Timestamp",
    "parse_date",
]

# ---------------------------------------------------------------------------------------
# Limits: every string and list has a ceiling, so that no value (and no state a service keeps
# from values) can outgrow a Kafka record. docs/contracts.md ("Limits") lists them.
# ---------------------------------------------------------------------------------------

MAX_ID = 128  # characters of an id or an event id
MAX_TEXT = 1_000  # characters of free text: reasons, names, errors, explanations
MAX_LABEL = 128  # characters of a short name: who, a stage, a rule, a provider, a channel
MAX_TAG = 64  # characters of one customer tag
MAX_TAGS = 32  # tags on one customer
MAX_SUBSCRIPTION_ID = 64  # characters (ASCII) of a subscription id
MAX_SUBSCRIPTIONS = 250  # subscription ids in one list
MAX_HOLDS = 16  # holds in force on one customer, as collections state lists them
MAX_DAYS = 100_000  # |days| in a day count: beyond any span inside the date range
MAX_COUNT = 1_000_000_000  # attempts, policy versions
# Every date, and every timestamp's own local date, lies in this range: the engines add
# policy periods to dates and convert times between zones, which must never leave Python's
# date range (years 1 to 9999).
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2199, 12, 31)
_EARLIEST_UTC = date(2000, 1, 2)  # a timestamp's UTC date: a day inside, for every zone
_LATEST_UTC = date(2199, 12, 30)

# ---------------------------------------------------------------------------------------
# Money amounts
# ---------------------------------------------------------------------------------------

# The integer part is capped at 18 digits so that sums of amounts stay exact in the default
# 28-digit decimal context: an unbounded string could silently round in a later addition.
# What producers send (invoice, payment, adjustment and dispute amounts) is capped lower, below
# 10^12: the sums billstate publishes (overdue and open amounts, per currency) of up to a
# million such amounts still fit the 18 digits of its own outputs.
_AMOUNT_BODY = r"[0-9]{1,18}(\.[0-9]{1,4})?"
_INPUT_BODY = r"[0-9]{1,12}(\.[0-9]{1,4})?"
MAX_INPUT_AMOUNT = Decimal("999999999999.9999")
AMOUNT_PATTERN = rf"^-?{_AMOUNT_BODY}$"
_AMOUNT_RE = re.compile(rf"-?{_AMOUNT_BODY}")
_INPUT_RE = re.compile(rf"-?{_INPUT_BODY}")
# The lookahead demands a non-zero digit; it keeps the published patterns as strict as the
# Python checks, so a producer validating against the JSON Schema gets the same answer.
POSITIVE_AMOUNT_PATTERN = rf"^(?=[0-9.]*[1-9]){_INPUT_BODY}$"
SIGNED_AMOUNT_PATTERN = rf"^-?(?=[0-9.]*[1-9]){_INPUT_BODY}$"
NON_NEGATIVE_AMOUNT_PATTERN = rf"^{_AMOUNT_BODY}$"

_AMOUNT_SHAPE = 'a decimal string such as "123.45" (at most 18 integer and 4 fractional digits)'
_INPUT_SHAPE = 'a decimal string such as "123.45" (at most 12 integer and 4 fractional digits)'


def _parse_amount(value: object) -> Decimal:
    return _parse_amount_as(value, _AMOUNT_RE, _AMOUNT_SHAPE)


def _parse_input_amount(value: object) -> Decimal:
    return _parse_amount_as(value, _INPUT_RE, _INPUT_SHAPE)


def _parse_amount_as(value: object, pattern: re.Pattern[str], shape: str) -> Decimal:
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "amount_type",
            "must be {shape}, not a JSON number: binary numbers cannot hold money exactly",
            {"shape": shape},
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PydanticCustomError("amount_format", "must be a finite amount")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise PydanticCustomError("amount_type", "must be {shape}", {"shape": shape})
    if not pattern.fullmatch(text):
        raise PydanticCustomError("amount_format", "must be {shape}", {"shape": shape})
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
_InputDecimalString = Annotated[
    Decimal,
    PlainValidator(_parse_input_amount),
    PlainSerializer(_format_amount, return_type=str, when_used="json"),
]

Amount = Annotated[
    _DecimalString,
    _amount_schema(AMOUNT_PATTERN, "Decimal string, at most 4 fractional digits."),
]
PositiveAmount = Annotated[
    _InputDecimalString,
    AfterValidator(_positive),
    _amount_schema(POSITIVE_AMOUNT_PATTERN, "Decimal string greater than zero, below 10^12."),
]
SignedAmount = Annotated[
    _InputDecimalString,
    AfterValidator(_non_zero),
    _amount_schema(
        SIGNED_AMOUNT_PATTERN,
        "Non-zero decimal string below 10^12 either way; negative is a credit.",
    ),
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
    str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=rf"^[^{_CONTROL}]+$")
]
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=rf"^[^\s{_CONTROL}]+$")
]
# Free text may hold line breaks and tabs, not the other control characters.
Text = Annotated[
    str,
    StringConstraints(max_length=MAX_TEXT, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"),
]
NonEmptyText = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+$",
    ),
]
Label = Annotated[str, StringConstraints(max_length=MAX_LABEL, pattern=rf"^[^{_CONTROL}]*$")]
Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TAG, pattern=rf"^[^{_CONTROL}]+$")
]
# A subscription id goes into a provider's URL path (Partner Center's are GUIDs): printable
# ASCII, no space, quote or backslash, so that a list of them has a size known in bytes.
SubscriptionId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SUBSCRIPTION_ID, pattern=r"^[!#-\[\]-~]+$"),
]
Subscriptions = Annotated[list[SubscriptionId], Field(max_length=MAX_SUBSCRIPTIONS)]
DayCount = Annotated[int, Field(ge=-MAX_DAYS, le=MAX_DAYS)]
CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
]
Locale = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
]
# Deliberately loose: deliverability is the mail server's verdict, not the contract's.
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
NonEmptyStr = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL, pattern=rf"^[^{_CONTROL}]+$")
]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_COUNT)]


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
        return _in_range(value)
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date string YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_value", "is not a calendar date") from None
    return _in_range(parsed)


parse_date = _parse_date  # the Date type's validator, for the codec's quick path


def _in_range(day: date) -> date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise PydanticCustomError("date_range", "must be between 2000-01-01 and 2199-12-31")
    return day


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
    # A day inside the date range in UTC is inside it in every time zone (offsets are at most
    # 14 hours), so the business date of any policy's zone is a valid date. The first test
    # keeps the conversion itself inside Python's date range.
    if not EARLIEST_DATE <= parsed.date() <= LATEST_DATE or not (
        _EARLIEST_UTC <= parsed.astimezone(UTC).date() <= _LATEST_UTC
    ):
        raise PydanticCustomError(
            "timestamp_range", "must be between 2000-01-02T00:00:00Z and 2199-12-30T23:59:59Z"
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
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": "^2[01][0-9]{2}-[0-9]{2}-[0-9]{2}$",
            "description": "A date from 2000-01-01 to 2199-12-31.",
        }
    ),
]

Timestamp = Annotated[
    datetime,
    PlainValidator(_parse_timestamp),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": "^2[01][0-9]{2}-",
            "description": "RFC 3339 timestamp with a UTC offset, from 2000-01-02T00:00:00Z to"
            " 2199-12-30T23:59:59Z.",
        }
    ),
]


# An IANA time zone name ("Asia/Taipei"), checked against the zone data the service has.
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(known_zone)]
