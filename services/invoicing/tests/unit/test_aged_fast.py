"""The fast forms of an aged event (Aged.build, the tick loop, the encoder) are the plain ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from billstate_invoicing.domain.aging import Aging, Register
from billstate_shared.contracts import ContractError, encode
from billstate_shared.contracts.outbound import Aged, AgedData, Amount, to_bytes
from billstate_shared.domain.ids import readable_id
from billstate_shared.domain.ledger import Invoice
from billstate_shared.policy_file import load_policy

POLICY = Path(__file__).resolve().parents[4] / "policies" / "standard.yaml"


def _invoice(invoice_id: str = "inv-1") -> Invoice:
    return Invoice(
        invoice_id,
        "USD",
        Decimal("12.50"),
        date(2026, 3, 1),
        date(2026, 3, 31),
        ("sub-b", "sub-a"),
        open=Decimal("12.50"),
    )


def test_build_equals_the_dataclass_constructor() -> None:
    when = datetime(2026, 4, 5, 9, tzinfo=timezone(timedelta(hours=8)))
    built = Aged.build(
        "e", when, "c", "i", date(2026, 4, 1), date(2026, 4, 5), 4, Decimal("1.0"), "EUR", ("s",)
    )
    plain = Aged(
        "e",
        when,
        "c",
        AgedData("i", date(2026, 4, 1), date(2026, 4, 5), 4, Amount(Decimal("1.0"), "EUR"), ("s",)),
    )
    assert built == plain
    assert hash(built) == hash(plain)
    assert repr(built) == repr(plain)


def aged_event(customer_id: str, invoice: Invoice, as_of: date, occurred_at: datetime) -> Aged:
    """An aged event built from an invoice outside the tick loop."""
    return Aged.build(
        readable_id("aged", customer_id, invoice.invoice_id, as_of),
        occurred_at,
        customer_id,
        invoice.invoice_id,
        invoice.due_on,
        as_of,
        (as_of - invoice.due_on).days,
        invoice.open,
        invoice.currency,
        invoice.subscription_ids,
    )


def _reference(aged: Aged) -> bytes:
    """The encoder as first written: every value turned into JSON-ready text by hand."""
    d = aged.data
    return orjson.dumps(
        {
            "event_id": aged.event_id,
            "event_type": "invoice.aged",
            "schema_version": 1,
            "occurred_at": aged.occurred_at.isoformat(),
            "customer_id": aged.customer_id,
            "data": {
                "invoice_id": d.invoice_id,
                "due_on": d.due_on.isoformat(),
                "as_of": d.as_of.isoformat(),
                "days_past_due": d.days_past_due,
                "outstanding": {
                    "amount": str(d.outstanding.amount),
                    "currency": d.outstanding.currency,
                },
                "subscription_ids": list(d.subscription_ids),
            },
        }
    )


def test_encode_is_the_reference_also_for_odd_offsets_and_old_dates() -> None:
    zones = [
        UTC,
        timezone(timedelta(hours=8)),
        timezone(timedelta(hours=-3)),
        timezone(timedelta(hours=5, minutes=30, seconds=15)),  # orjson would drop the seconds
    ]
    for zone in zones:
        for when in (datetime(2026, 4, 5, 9, tzinfo=zone), datetime(999, 1, 2, 3, 4, 5, 6, zone)):
            aged = aged_event("c.1:x", _invoice('inv\\1"x"é'), when.date(), when)
            raw = to_bytes(aged)
            assert raw == _reference(aged)
            if when.year < 2000:  # the fast path pads old years; the contract refuses them
                with pytest.raises(ContractError, match="occurred_at"):
                    aged.model()
            elif zone.utcoffset(None).seconds % 60 == 0:  # the contract: minute offsets only
                assert raw == encode(aged.model())


def test_tick_ids_are_readable_ids_short_or_hashed() -> None:
    aging = Aging(load_policy(POLICY))
    for customer in ("c1", "c" * 120):
        register = Register(customer)
        register.ledger.issue(
            "inv-1",
            "USD",
            Decimal(5),
            issued_on=date(2026, 3, 1),
            due_on=date(2026, 3, 31),
            subscription_ids=(),
        )
        aging.watch(register)
        when = datetime(2026, 4, 1 + len(customer) // 100, 9, tzinfo=UTC)
        [aged] = aging.tick(when, {customer: register}.get)
        assert aged.event_id == readable_id("aged", customer, "inv-1", aging.today)
