"""Billed reconciliation line items to `cost.recorded` events (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from billstate_shared.contracts import CostRecorded, CostRecordedData
from billstate_shared.domain.ids import readable_id
from billstate_shared.errors import Refused

CENTS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Line:
    """One billed line, mapped to billstate's customer and subscription ids."""

    customer_id: str
    subscription_id: str
    charge_start: date
    charge_end: date
    amount: Decimal
    currency: str


def _day(item: Mapping[str, Any], field: str) -> date:
    value = item.get(field)
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        raise Refused(field, f"not a date: {str(value)[:40]!r}") from None


def _amount(item: Mapping[str, Any]) -> Decimal:
    value = item.get("subtotal")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Refused("subtotal", "missing or not a number")
    try:
        # Through str: a JSON float becomes the decimal it was written as, not its binary twin.
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Refused("subtotal", f"not a number: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise Refused("subtotal", "not a finite number")
    return amount


def line(
    item: Mapping[str, Any],
    customer_of: Callable[[str], str | None],
    subscription_of: Callable[[str], str],
) -> Line | None:
    """The line as billstate's, or None when its tenant is no customer of ours. The amount
    is `subtotal`: what Microsoft charges before tax (tax the partner usually recovers)."""
    customer = customer_of(str(item.get("customerId", "")))
    if customer is None:
        return None
    sid = item.get("subscriptionId")
    currency = item.get("currency")
    if not isinstance(sid, str) or not sid:
        raise Refused("subscriptionId", "missing")
    if not isinstance(currency, str) or len(currency) != 3:
        raise Refused("currency", "not an ISO 4217 code")
    return Line(
        customer_id=customer,
        subscription_id=subscription_of(sid),
        charge_start=_day(item, "chargeStartDate"),
        charge_end=_day(item, "chargeEndDate"),
        amount=_amount(item),
        currency=currency.upper(),
    )


def costs(invoice: str, billed_on: date, lines: Iterable[Line]) -> list[CostRecorded]:
    """One `cost.recorded` per customer, subscription and charge period of the invoice: the
    sum of its lines (a credit line lowers it). Ids come from the invoice, subscription and
    period alone, so a re-read sends the same events again, which consumers dedupe."""
    sums: dict[tuple[str, str, date, date], tuple[Decimal, str]] = {}
    for one in lines:
        key = (one.customer_id, one.subscription_id, one.charge_start, one.charge_end)
        total, currency = sums.get(key, (Decimal(0), one.currency))
        if currency != one.currency:
            raise Refused("currency", f"invoice {invoice} mixes {currency} and {one.currency}")
        sums[key] = (total + one.amount, currency)
    at = datetime(billed_on.year, billed_on.month, billed_on.day, tzinfo=UTC)
    out = []
    for (customer, sid, start, end), (exact, currency) in sorted(sums.items()):
        # Contracts carry 4 fractional digits; Microsoft's unit prices may carry more.
        total = exact.quantize(CENTS, rounding=ROUND_HALF_EVEN)
        if not total:
            continue  # a charge and its credit cancel out: nothing at stake
        # The customer too: a subscription id is unique only within its tenant.
        parts = (invoice, customer, sid, start.isoformat(), end.isoformat())
        out.append(
            CostRecorded(
                event_id=readable_id("cost", *parts),
                event_type="cost.recorded",
                occurred_at=at,
                customer_id=customer,
                data=CostRecordedData(
                    cost_id=readable_id(*parts),
                    subscription_id=sid,
                    charge_start=start,
                    charge_end=end,
                    amount=total,
                    currency=currency,
                    invoice_ref=invoice,
                ),
            )
        )
    return out
