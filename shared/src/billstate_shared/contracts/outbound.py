"""Events billstate itself decides, kept as JSON-ready data and encoded without re-validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from billstate_shared.contracts.codec import decode, encode
from billstate_shared.contracts.events import Event, EventBase


@dataclass(frozen=True, slots=True)
class Outbound:
    """One outbound event: the envelope plus `data` as JSON-ready values (str, int, bool,
    None, lists and dicts of them; money and dates already as strings).

    The engines emit these instead of models: their inputs were validated at the border and
    their outputs are built by code, so validating every output again only costs time. The
    bytes are identical to `encode(model)` (a test holds them to it), and `model()` gives the
    validated contract model when one is wanted.
    """

    event_id: str
    event_type: str
    occurred_at: datetime
    customer_id: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "event_type": self.event_type,
                "schema_version": 1,
                "occurred_at": self.occurred_at.isoformat(),
                "customer_id": self.customer_id,
                "data": self.data,
            }
        )

    def model(self) -> Event:
        """The contract model, validated; raises ContractError if the engine built it wrong."""
        return decode(self.encode())


@dataclass(frozen=True, slots=True)
class Amount:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class AgedData:
    invoice_id: str
    due_on: date
    as_of: date
    days_past_due: int
    outstanding: Amount
    subscription_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Aged:
    """`invoice.aged` as invoicing emits it: the same attributes as the InvoiceAged model,
    built without validation because the aging core made every value itself.

    Aged events are most of what the engine handles (four in five in a realistic year),
    so their cost decides replay throughput.
    """

    event_id: str
    occurred_at: datetime
    customer_id: str
    data: AgedData
    event_type: ClassVar[str] = "invoice.aged"

    def encode(self) -> bytes:
        d = self.data
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "event_type": "invoice.aged",
                "schema_version": 1,
                "occurred_at": self.occurred_at.isoformat(),
                "customer_id": self.customer_id,
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

    def model(self) -> Event:
        return decode(self.encode())


# What the engines hand back: validated models where a caller built them, the light forms
# where the cores did. Every one has `event_type`, `event_id`, `customer_id` and bytes.
Produced = EventBase | Aged | Outbound


def to_bytes(produced: Produced) -> bytes:
    if isinstance(produced, EventBase):
        return encode(produced)
    return produced.encode()
