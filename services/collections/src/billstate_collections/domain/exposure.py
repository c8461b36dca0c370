"""Exposure: what Microsoft billed the partner for the customer's unpaid periods, per currency."""

from __future__ import annotations

from decimal import Decimal

from billstate_collections.domain import book as books
from billstate_collections.domain.book import MAX_COSTS, Book, CostLine
from billstate_shared.domain.ledger import ZERO
from billstate_shared.errors import Refused


def add_cost(book: Book, line: CostLine) -> bool:
    """Record a cost line once; True when the book changed.

    The first line with an id wins: the same line again changes nothing, another amount or
    period under the same id is refused (the record goes to the DLQ with the reason). Past
    MAX_COSTS lines the oldest by charge end is dropped (a line older than all kept is not
    taken), so the book keeps the newest whatever order they came in. A line the book would
    forget at once (book.keeps) is not taken either: its redelivery changes nothing."""
    known = book.costs.get(line.cost_id)
    if known is not None:
        if known == line:
            return False
        raise Refused(
            "data.cost_id",
            f"cost line {line.cost_id} was recorded before with {known.currency}"
            f" {known.amount} for {known.subscription_id} {known.start.isoformat()}.."
            f"{known.end.isoformat()}; the first recorded stands",
            "cost.recorded",
        )
    limit = book.ledger.horizon
    if (
        limit is not None
        and line.end < limit
        and not books.keeps(line, books.billed(book.ledger), limit)
    ):
        return False
    costs = book.costs
    if len(costs) >= MAX_COSTS:
        oldest = min(costs.values(), key=lambda c: c.order)
        if line.order < oldest.order:
            return False
        del costs[oldest.cost_id]
    costs[line.cost_id] = line
    return True


def exposure(book: Book) -> list[tuple[str, Decimal, tuple[str, ...]]]:
    """(currency, amount, subscriptions behind it) for each currency above zero, by currency.

    A cost line counts, once, when its charge period overlaps the billing period of at least
    one unpaid invoice (open amount > 0) that bills its subscription (an invoice naming no
    subscription bills them all); a currency whose lines sum below zero counts as zero."""
    if not book.costs:
        return []
    periods = [
        (*inv.billed, frozenset(inv.subscription_ids)) for inv in book.ledger.open_invoices()
    ]
    if not periods:
        return []
    totals: dict[str, Decimal] = {}
    subs: dict[str, set[str]] = {}
    for c in book.costs.values():
        for start, end, billed in periods:
            if c.start <= end and start <= c.end and (not billed or c.subscription_id in billed):
                totals[c.currency] = totals.get(c.currency, ZERO) + c.amount
                subs.setdefault(c.currency, set()).add(c.subscription_id)
                break
    return [
        (currency, totals[currency], tuple(sorted(subs[currency])))
        for currency in sorted(totals)
        if totals[currency] > ZERO
    ]


def money(found: list[tuple[str, Decimal, tuple[str, ...]]]) -> list[dict[str, str]]:
    """Exposure as the contracts' money list."""
    return [{"amount": format(amount, "f"), "currency": c} for c, amount, _ in found]
