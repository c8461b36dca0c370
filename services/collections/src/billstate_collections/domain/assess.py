"""Rules 2-5 and 8 on a business date: overdue, delinquent, anchor and age, target, scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from billstate_collections.domain.book import CURRENT, Book
from billstate_shared.domain.ledger import ZERO, Invoice
from billstate_shared.domain.policy import Policy


@dataclass(frozen=True, slots=True)
class Assessment:
    as_of: date
    overdue: tuple[tuple[str, Decimal], ...]  # (currency, amount) with amount > 0, by currency
    delinquent_currencies: tuple[str, ...]
    anchor: Invoice | None
    days_past_due: int | None
    target: int
    blocked_by: str | None  # "exempt tag x" / "manual hold h": why there is no target
    scope: tuple[str, ...]  # subscriptions a suspension would cover now (rule 8)
    overdue_invoices: tuple[
        tuple[Invoice, Decimal], ...
    ]  # counted invoices of delinquent currencies

    @property
    def delinquent(self) -> bool:
        return bool(self.delinquent_currencies)


def disputed(book: Book) -> dict[str, Decimal | None]:
    """Disputed amount per invoice; None means the whole open amount (rule 2)."""
    found: dict[str, Decimal | None] = {}
    for hold in book.holds.values():
        if hold.kind == "dispute" and hold.invoice_id is not None:
            if hold.amount is None or found.get(hold.invoice_id, ZERO) is None:
                found[hold.invoice_id] = None
            else:
                found[hold.invoice_id] = (found.get(hold.invoice_id) or ZERO) + hold.amount
    return found


def countable(invoice: Invoice, disputes: dict[str, Decimal | None]) -> Decimal:
    """The open amount that counts toward collections: open minus what is disputed."""
    if invoice.invoice_id not in disputes:
        return invoice.open
    held = disputes[invoice.invoice_id]
    if held is None:
        return ZERO
    rest = invoice.open - held
    return rest if rest > ZERO else ZERO  # noqa: FURB136  (max() is 5x slower)


def target_stage(policy: Policy, days_past_due: int) -> int:
    """The last stage whose day the customer has reached (rule 5), or CURRENT."""
    target = CURRENT
    for index, stage in enumerate(policy.stages):
        if days_past_due >= stage.days_past_due:
            target = index
        else:
            break
    return target


def assess(book: Book, as_of: date, policy: Policy) -> Assessment:
    # Called for every event that can change a decision, so written for speed; the rules are
    # those of the docstring at the top, spelled out where a helper would cost a call each.
    disputes = disputed(book) if book.holds else None
    totals: dict[str, Decimal] = {}
    counted: list[tuple[Invoice, Decimal]] = []
    for invoice in book.ledger.open_invoices():
        # Rule 2: a due date ends at midnight, so an invoice due today is not overdue yet.
        if invoice.due_on < as_of:
            amount = countable(invoice, disputes) if disputes else invoice.open
            if amount > ZERO:
                counted.append((invoice, amount))
                currency = invoice.currency
                totals[currency] = totals.get(currency, ZERO) + amount
    currencies = sorted(totals)
    delinquent = tuple(c for c in currencies if totals[c] >= policy.threshold(c))
    if len(delinquent) == len(currencies):
        in_scope = counted
    else:
        in_scope = [(inv, amt) for inv, amt in counted if inv.currency in delinquent]
    if not in_scope:
        anchor = None
    elif len(delinquent) == 1:
        # open_invoices() lists a currency's invoices oldest first: the first is the anchor.
        anchor = in_scope[0][0]
    else:
        anchor = min((inv for inv, _ in in_scope), key=lambda i: i.order)
    dpd = (as_of - anchor.due_on).days if anchor is not None else None
    blocked_by = _blocked_by(book, policy)
    target = CURRENT if dpd is None or blocked_by is not None else target_stage(policy, dpd)
    a: Assessment = _new(Assessment)
    _set_as_of(a, as_of)
    _set_overdue(a, tuple([(c, totals[c]) for c in currencies]))
    _set_delinquent_currencies(a, delinquent)
    _set_anchor(a, anchor)
    _set_days_past_due(a, dpd)
    _set_target(a, target)
    _set_blocked_by(a, blocked_by)
    _set_scope(a, _scope(book, policy, in_scope))
    _set_overdue_invoices(a, tuple(in_scope))
    return a


# `assess` builds its frozen Assessment through the slots' own setters: the generated
# __init__ goes through object.__setattr__ for each of the nine fields, twice the time.
_new: Any = object.__new__
_set_as_of: Any = Assessment.__dict__["as_of"].__set__
_set_overdue: Any = Assessment.__dict__["overdue"].__set__
_set_delinquent_currencies: Any = Assessment.__dict__["delinquent_currencies"].__set__
_set_anchor: Any = Assessment.__dict__["anchor"].__set__
_set_days_past_due: Any = Assessment.__dict__["days_past_due"].__set__
_set_target: Any = Assessment.__dict__["target"].__set__
_set_blocked_by: Any = Assessment.__dict__["blocked_by"].__set__
_set_scope: Any = Assessment.__dict__["scope"].__set__
_set_overdue_invoices: Any = Assessment.__dict__["overdue_invoices"].__set__


def _blocked_by(book: Book, policy: Policy) -> str | None:
    if book.profile is not None and policy.exempt_tags:
        tags = sorted(book.profile.tags.intersection(policy.exempt_tags))
        if tags:
            return f"exempt tag {tags[0]}"
    if not book.holds:
        return None
    for hold in sorted(book.holds.values(), key=lambda h: h.hold_id):
        if hold.kind == "manual":
            return f"manual hold {hold.hold_id}"
    return None


def _scope(book: Book, policy: Policy, in_scope: list[tuple[Invoice, Decimal]]) -> tuple[str, ...]:
    index = policy.suspend_stage_index
    if index is None:
        return ()
    if policy.stages[index].scope == "all_subscriptions":
        subs = set(book.profile.subscription_ids) if book.profile else set()
        for invoice in book.ledger.invoices.values():
            subs.update(invoice.subscription_ids)
        return tuple(sorted(subs))
    # Rule 8: only what the overdue invoices bill; a paid-up annual subscription stays on.
    if not in_scope:
        return ()
    return tuple(sorted({s for inv, _ in in_scope for s in inv.subscription_ids}))
