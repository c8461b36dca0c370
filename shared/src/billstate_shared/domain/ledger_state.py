"""A ledger as JSON-ready data and back, for state stores and their changelogs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billstate_shared.domain.ledger import Ledger, Past


def front(before: str, text: str) -> str | list[Any]:
    """`text` told against the one before it, when they share a start: [characters kept
    from `before`, what follows]. Ids of one customer mostly differ only in their end."""
    n = 0
    for a, b in zip(before, text, strict=False):
        if a != b:
            break
        n += 1
    return [n, text[n:]] if n > 3 else text


def unfront(before: str, item: str | list[Any]) -> str:
    return item if isinstance(item, str) else before[: item[0]] + item[1]


def _subs(subs: tuple[str, ...]) -> list[Any]:
    return [front(subs[n - 1] if n else "", sub) for n, sub in enumerate(subs)]


def _unsubs(data: list[Any]) -> tuple[str, ...]:
    out: list[str] = []
    for item in data:
        out.append(unfront(out[-1] if out else "", item))
    return tuple(out)


def _dump_past(past: Past) -> list[Any]:
    """[floor, [horizon, key + kind, ...], ...]: the ids grouped by the horizon that forgot
    them, oldest first (horizons only grow, so each group is one run)."""
    out: list[Any] = [None if past.floor is None else past.floor.isoformat()]
    for key, (kind, horizon) in past.ids.items():
        day = horizon.isoformat()
        if len(out) == 1 or out[-1][0] != day:
            out.append([day])
        out[-1].append(key + kind)
    return out


def _load_past(data: list[Any]) -> Past:
    past = Past(floor=None if data[0] is None else date.fromisoformat(data[0]))
    for day, *keys in data[1:]:
        horizon = date.fromisoformat(day)
        for key in keys:
            past.ids[key[:-1]] = (key[-1], horizon)
    return past


def dump_ledger(ledger: Ledger) -> dict[str, Any]:
    """What the ledger was told, not what it derived: allocation is rebuilt on load.

    The ledger's serializer, so it reads the ledger's private records of what it was told.
    Parts that are empty are left out: most ledgers have no adjustment, void or reversal."""
    invoices: list[Any] = []
    before = ""
    for i in ledger.invoices.values():
        invoices.append(
            [front(before, i.invoice_id), i.currency, str(i.amount), i.issued_on.isoformat(),
             i.due_on.isoformat(), _subs(i.subscription_ids)]
            # Only when given: every other invoice's bytes stay as they were.
            + ([i.period[0].isoformat(), i.period[1].isoformat()] if i.period else [])
        )  # fmt: skip
        before = i.invoice_id
    payments: list[Any] = []
    before = ""
    for p in ledger.payments.values():
        payments.append(
            [front(before, p.payment_id), p.currency, str(p.amount), p.invoice_id,
             p.received_at.isoformat()]
        )  # fmt: skip
        before = p.payment_id
    data: dict[str, Any] = {"invoices": invoices, "payments": payments}
    if ledger._adjustments:  # noqa: SLF001
        data["adjustments"] = [
            [eid, inv, str(delta)]
            for eid, (inv, delta) in ledger._adjustments.items()  # noqa: SLF001
        ]
    if ledger._voided:  # noqa: SLF001
        data["voided"] = sorted(ledger._voided)  # noqa: SLF001
    if ledger._reversed:  # noqa: SLF001
        data["reversed"] = sorted(ledger._reversed)  # noqa: SLF001
    data["version"] = ledger.version
    # What forgetting left (docs/policy.md "What a book keeps"); absent before it ran.
    if ledger.horizon is not None:
        data["horizon"] = ledger.horizon.isoformat()
    if ledger._carry:  # noqa: SLF001
        data["carry"] = [[c, str(amount)] for c, amount in ledger._carry.items()]  # noqa: SLF001
    if ledger._frontier:  # noqa: SLF001
        data["frontier"] = [
            [c, due.isoformat(), issued.isoformat(), invoice_id]
            for c, (due, issued, invoice_id) in ledger._frontier.items()  # noqa: SLF001
        ]
    if ledger.past.ids or ledger.past.floor is not None:
        data["past"] = _dump_past(ledger.past)
    return data


def load_ledger(data: dict[str, Any]) -> Ledger:
    """Rebuild through the ledger's own operations; allocation is order independent, so the
    result equals the ledger that was dumped. What forgetting left is set around them: the
    carry first (it is part of every allocation), the rest after (it must not turn away
    what the ledger kept)."""
    ledger = Ledger()
    carry = {c: Decimal(amount) for c, amount in data.get("carry", ())}
    ledger._carry = carry  # noqa: SLF001
    for event_id, invoice_id, delta in data.get("adjustments", ()):
        ledger.adjust(event_id, invoice_id, Decimal(delta))
    for invoice_id in data.get("voided", ()):
        ledger.void(invoice_id)
    for payment_id in data.get("reversed", ()):
        ledger.reverse(payment_id)
    invoice_id = ""
    for told, currency, amount, issued_on, due_on, subs, *period in data["invoices"]:
        invoice_id = unfront(invoice_id, told)
        ledger.issue(
            invoice_id,
            currency,
            Decimal(amount),
            issued_on=date.fromisoformat(issued_on),
            due_on=date.fromisoformat(due_on),
            subscription_ids=_unsubs(subs),
            period=(date.fromisoformat(period[0]), date.fromisoformat(period[1]))
            if period
            else None,
        )
    payment_id = ""
    for told, currency, amount, named, received_at in data["payments"]:
        payment_id = unfront(payment_id, told)
        ledger.receive(
            payment_id, currency, Decimal(amount), named, datetime.fromisoformat(received_at)
        )
    for currency in carry:
        if currency not in ledger._credit:  # noqa: SLF001  (nothing else of it is kept)
            ledger._recompute(currency)  # noqa: SLF001
    ledger._frontier = {  # noqa: SLF001
        c: (date.fromisoformat(due), date.fromisoformat(issued), invoice_id)
        for c, due, issued, invoice_id in data.get("frontier", ())
    }
    if "past" in data:
        ledger.past = _load_past(data["past"])
    if "horizon" in data:
        ledger.horizon = date.fromisoformat(data["horizon"])
    ledger.version = data["version"]
    return ledger
