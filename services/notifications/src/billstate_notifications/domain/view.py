"""Facts to template context: every value checked and formatted for one locale, up front.

`facts` is producer input (`dict[str, JsonValue]`); templates only ever see strings, ints,
bools, lists and None, already formatted with Babel, so a template cannot format money or
dates by hand and a fact of the wrong shape fails here, with its path, not mid-template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from babel.dates import format_date, get_day_names
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal
from pydantic import JsonValue

from billstate_notifications.domain.errors import RenderError
from billstate_shared.domain.policy import WEEKDAYS

_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,4})?")
_FACTS = "data.facts"

Context = dict[str, Any]


class Formatter:
    """Money, dates and lists in one Babel locale."""

    def __init__(self, babel_locale: str) -> None:
        self.locale = babel_locale

    def money(self, amount: Decimal, currency: str) -> str:
        # No quantization: amounts are exact to 4 places and a notice must not round them.
        return format_currency(amount, currency, locale=self.locale, decimal_quantization=False)

    def date(self, value: date) -> str:
        return format_date(value, format="long", locale=self.locale)

    def join(self, items: list[str]) -> str:
        return format_list(items, locale=self.locale) if items else ""

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def weekday(self, index: int, width: Literal["wide", "abbreviated"]) -> str:
        """Day `index` (0 is Monday) as `wide` ("Monday", "星期一") or `abbreviated` ("週一")."""
        return str(get_day_names(width, locale=self.locale)[index])


def _missing(value: JsonValue | None) -> bool:
    return value is None


def _str(obj: Mapping[str, JsonValue], key: str, path: str) -> str | None:
    value = obj.get(key)
    if _missing(value):
        return None
    if not isinstance(value, str):
        raise RenderError(f"{path}.{key}", "must be a string")
    return value


def _int(obj: Mapping[str, JsonValue], key: str, path: str) -> int | None:
    value = obj.get(key)
    if _missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenderError(f"{path}.{key}", "must be an integer")
    return value


def _bool(obj: Mapping[str, JsonValue], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if _missing(value):
        return None
    if not isinstance(value, bool):
        raise RenderError(f"{path}.{key}", "must be true or false")
    return value


def _date(obj: Mapping[str, JsonValue], key: str, path: str, fmt: Formatter) -> str | None:
    text = _str(obj, key, path)
    if text is None:
        return None
    try:
        return fmt.date(date.fromisoformat(text))
    except ValueError:
        raise RenderError(f"{path}.{key}", "must be a date YYYY-MM-DD") from None


def _obj(value: JsonValue | None, path: str) -> dict[str, JsonValue] | None:
    if _missing(value):
        return None
    if not isinstance(value, dict):
        raise RenderError(path, "must be an object")
    return value


def _list(obj: Mapping[str, JsonValue], key: str, path: str) -> list[JsonValue]:
    value = obj.get(key)
    if _missing(value):
        return []
    if not isinstance(value, list):
        raise RenderError(f"{path}.{key}", "must be a list")
    return value


def _money(obj: Mapping[str, JsonValue], amount_key: str, path: str, fmt: Formatter) -> str | None:
    amount, currency = obj.get(amount_key), obj.get("currency")
    if _missing(amount) and _missing(currency):
        return None
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise RenderError(f"{path}.{amount_key}", 'must be a decimal string such as "123.45"')
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise RenderError(f"{path}.currency", "must be an ISO 4217 code such as USD")
    try:
        return fmt.money(Decimal(amount), currency)
    except (InvalidOperation, ValueError):
        raise RenderError(f"{path}.{amount_key}", "is not a formattable amount") from None


def _invoice(value: JsonValue, path: str, fmt: Formatter) -> dict[str, str | None]:
    obj = _obj(value, path)
    if obj is None:
        raise RenderError(path, "must be an object")
    return {
        "invoice_id": _str(obj, "invoice_id", path),
        "due_on": _date(obj, "due_on", path, fmt),
        "open": _money(obj, "open", path, fmt),
    }


def _str_list(obj: Mapping[str, JsonValue], key: str, path: str) -> list[str]:
    items = _list(obj, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RenderError(f"{path}.{key}.{i}", "must be a string")
    return [str(item) for item in items]


def _moneys(facts: Mapping[str, JsonValue], key: str, fmt: Formatter) -> list[str]:
    p = _FACTS
    found: list[str] = []
    for i, item in enumerate(_list(facts, key, p)):
        entry = _obj(item, f"{p}.{key}.{i}")
        money = None if entry is None else _money(entry, "amount", f"{p}.{key}.{i}", fmt)
        if money is None:
            raise RenderError(f"{p}.{key}.{i}", "must be an object with amount and currency")
        found.append(money)
    return found


def _above(facts: Mapping[str, JsonValue], fmt: Formatter) -> list[dict[str, Any]]:
    """`exposure_high`'s currencies above their threshold, each with its subscriptions."""
    p = f"{_FACTS}.above"
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(_list(facts, "above", _FACTS)):
        entry = _obj(item, f"{p}.{i}")
        if entry is None:
            raise RenderError(f"{p}.{i}", "must be an object")
        subs = _str_list(entry, "subscription_ids", f"{p}.{i}")
        rows.append(
            {
                "amount": _money(entry, "amount", f"{p}.{i}", fmt),
                "threshold": _money(entry, "threshold", f"{p}.{i}", fmt),
                "subscription_ids": subs,
                "subscriptions_text": fmt.join(subs) or None,
            }
        )
    return rows


def _moment(obj: Mapping[str, JsonValue], key: str, path: str, fmt: Formatter) -> str | None:
    """An instant as the locale's date and the UTC time (`commitment_alert`'s window end)."""
    text = _str(obj, key, path)
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise RenderError(f"{path}.{key}", "must be an ISO 8601 timestamp") from None
    at = at.astimezone(UTC) if at.tzinfo is not None else at
    return f"{fmt.date(at.date())} {at:%H:%M} UTC"


_HOUR = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def day_spans(indexes: set[int]) -> list[tuple[int, int]]:
    """Weekday indexes (0 is Monday) as runs of consecutive days, Monday first: {0..4, 6} is
    [(0, 4), (6, 6)], read "Monday to Friday and Sunday"."""
    spans: list[tuple[int, int]] = []
    for day in sorted(indexes):
        if spans and spans[-1][1] == day - 1:
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


def _support(facts: Mapping[str, JsonValue], fmt: Formatter) -> dict[str, Any] | None:
    """The partner's billing support terms (docs/policy.md "Support requests"), or None."""
    p = f"{_FACTS}.support"
    support = _obj(facts.get("support"), p)
    if support is None:
        return None
    hours = _obj(support.get("hours"), f"{p}.hours")
    if hours is None:
        raise RenderError(f"{p}.hours", "must be an object")
    days: set[int] = set()
    for i, name in enumerate(_str_list(hours, "days", f"{p}.hours")):
        if name not in WEEKDAYS:
            raise RenderError(f"{p}.hours.days.{i}", "must be a weekday such as monday")
        days.add(WEEKDAYS.index(name))
    if not days:
        raise RenderError(f"{p}.hours.days", "must name at least one weekday")
    times = {}
    for key in ("opens", "closes"):
        value = _str(hours, key, f"{p}.hours")
        if value is None or not _HOUR.fullmatch(value):
            raise RenderError(f"{p}.hours.{key}", 'must be a time "HH:MM"')
        times[key] = value
    zone = _str(hours, "timezone", f"{p}.hours")
    if not zone:
        raise RenderError(f"{p}.hours.timezone", "must be a time zone such as Asia/Taipei")
    contact = _obj(support.get("contact"), f"{p}.contact") or {}
    return {
        "days": [
            {
                "first": fmt.weekday(first, "wide"),
                "last": None if last == first else fmt.weekday(last, "wide"),
                "first_abbr": fmt.weekday(first, "abbreviated"),
                "last_abbr": None if last == first else fmt.weekday(last, "abbreviated"),
            }
            for first, last in day_spans(days)
        ],
        "opens": times["opens"],
        "closes": times["closes"],
        "timezone": zone,
        "email": _str(contact, "email", f"{p}.contact"),
        "phone": _str(contact, "phone", f"{p}.contact"),
        "web": _str(contact, "web", f"{p}.contact"),
        "languages": _str_list(support, "languages", p),
        "cost": _str(support, "cost", p),
    }


def build_context(facts: Mapping[str, JsonValue], fmt: Formatter) -> Context:
    """Every name a template may use, present even when the fact is absent (as None or [])."""
    p = _FACTS
    overdue: list[str] = []
    for i, item in enumerate(_list(facts, "overdue", p)):
        entry = _obj(item, f"{p}.overdue.{i}")
        money = None if entry is None else _money(entry, "amount", f"{p}.overdue.{i}", fmt)
        if money is None:
            raise RenderError(f"{p}.overdue.{i}", "must be an object with amount and currency")
        overdue.append(money)
    invoices = [
        _invoice(item, f"{p}.invoices.{i}", fmt)
        for i, item in enumerate(_list(facts, "invoices", p))
    ]
    count = _int(facts, "count", p)
    customer_ids = _str_list(facts, "customer_ids", p)
    guard = _str(facts, "guard", p)
    if guard not in {None, "brake", "stale_payment_feed"}:
        raise RenderError(f"{p}.guard", "must be brake or stale_payment_feed")
    single = facts.get("invoice")
    policy = _obj(facts.get("policy"), f"{p}.policy") or {}
    return {
        "stage": _str(facts, "stage", p),
        "as_of": _date(facts, "as_of", p, fmt),
        "days_past_due": _int(facts, "days_past_due", p),
        "overdue": overdue,
        "overdue_text": fmt.join(overdue) or None,
        "invoices": invoices,
        "suspension_on": _date(facts, "suspension_on", p, fmt),
        "subscription_ids": _str_list(facts, "subscription_ids", p),
        "still_delinquent": _bool(facts, "still_delinquent", p),
        "invoice": None if _missing(single) else _invoice(single, f"{p}.invoice", fmt),
        "days_before_due": _int(facts, "days_before_due", p),
        "hold_id": _str(facts, "hold_id", p),
        "promised_until": _date(facts, "promised_until", p, fmt),
        "invoice_id": _str(facts, "invoice_id", p),
        "will_retry": _bool(facts, "will_retry", p),
        "policy_name": _str(policy, "name", f"{p}.policy"),
        # Staff notices about access (built from access.events.v1).
        "subscription_id": _str(facts, "subscription_id", p),
        "provider": _str(facts, "provider", p),
        "command_id": _str(facts, "command_id", p),
        "attempts": _int(facts, "attempts", p),
        "error": _str(facts, "error", p),
        "desired": _str(facts, "desired", p),
        "observed": _str(facts, "observed", p),
        # Staff notice about parked suspensions (access.approval_needed).
        "batch_id": _str(facts, "batch_id", p),
        "guard": guard,
        "count": count,
        "count_text": None if count is None else fmt.number(count),
        "customer_ids": customer_ids,
        "customers_text": fmt.join(customer_ids) or None,
        "reason": _str(facts, "reason", p),
        # Staff notice about a commitment at stake (access.commitment).
        "term_end": _date(facts, "term_end", p, fmt),
        "renews_on": _date(facts, "renews_on", p, fmt),
        "cancellable_until": _moment(facts, "cancellable_until", p, fmt),
        "auto_renew": _bool(facts, "auto_renew", p),
        "term_cost": _money(
            _obj(facts.get("term_cost"), f"{p}.term_cost") or {}, "amount", f"{p}.term_cost", fmt
        ),
        # The partner's exposure to Microsoft (docs/policy.md "Exposure"), partner notices.
        "exposure_text": fmt.join(_moneys(facts, "exposure", fmt)) or None,
        "above": _above(facts, fmt),
        # Billing support terms, told in the footer of customer notices.
        "support": _support(facts, fmt),
    }
