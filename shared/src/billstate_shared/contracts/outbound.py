"""Events billstate itself decides, kept as JSON-ready data and encoded without re-validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from billstate_shared.contracts.codec import decode, encode
from billstate_shared.contracts.events import Event, EventBase

_stamp: tuple[datetime | None, str] = (None, "")


def _isoformat(when: datetime) -> str:
    """`when.isoformat()`, remembered for the last datetime seen: every event a tick causes
    carries the tick's own datetime object, and formatting its offset is the slow part."""
    global _stamp  # noqa: PLW0603  (a one-entry cache replaced whole; a holder object would add a lookup on the hot path)
    cached = _stamp  # one tuple, read and replaced whole, so threads cannot mix two entries
    if cached[0] is when:
        return cached[1]
    text = when.isoformat()
    _stamp = (when, text)
    return text


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
                "occurred_at": _isoformat(self.occurred_at),
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
        # orjson writes dates and tuples exactly as `isoformat()` and lists would, without
        # the intermediate strings; a datetime's offset it may round (seconds), so that one
        # goes as text.
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "event_type": "invoice.aged",
                "schema_version": 1,
                "occurred_at": _isoformat(self.occurred_at),
                "customer_id": self.customer_id,
                "data": {
                    "invoice_id": d.invoice_id,
                    "due_on": d.due_on,
                    "as_of": d.as_of,
                    "days_past_due": d.days_past_due,
                    "outstanding": {
                        "amount": str(d.outstanding.amount),
                        "currency": d.outstanding.currency,
                    },
                    "subscription_ids": d.subscription_ids,
                },
            }
        )

    def model(self) -> Event:
        return decode(self.encode())

    @staticmethod
    def build(  # noqa: PLR0917  (AgedData's field order; one caller, aging's per-invoice loop)
        event_id: str,
        occurred_at: datetime,
        customer_id: str,
        invoice_id: str,
        due_on: date,
        as_of: date,
        days_past_due: int,
        amount: Decimal,
        currency: str,
        subscription_ids: tuple[str, ...],
    ) -> Aged:
        """The same value as `Aged(event_id, occurred_at, customer_id, AgedData(...))` in half
        the time: aging makes one per open invoice and day, and a frozen dataclass's __init__
        sets each field through `object.__setattr__`, where the slots' own setters suffice."""
        amount_ = _new(Amount)
        _amount_amount(amount_, amount)
        _amount_currency(amount_, currency)
        data = _new(AgedData)
        _data_invoice_id(data, invoice_id)
        _data_due_on(data, due_on)
        _data_as_of(data, as_of)
        _data_days_past_due(data, days_past_due)
        _data_outstanding(data, amount_)
        _data_subscription_ids(data, subscription_ids)
        aged: Aged = _new(Aged)
        _aged_event_id(aged, event_id)
        _aged_occurred_at(aged, occurred_at)
        _aged_customer_id(aged, customer_id)
        _aged_data(aged, data)
        return aged


# The slot setters `Aged.build` uses (typed loosely: mypy sees the fields, not the slots).
_new: Any = object.__new__
_amount_amount: Any = Amount.__dict__["amount"].__set__
_amount_currency: Any = Amount.__dict__["currency"].__set__
_data_invoice_id: Any = AgedData.__dict__["invoice_id"].__set__
_data_due_on: Any = AgedData.__dict__["due_on"].__set__
_data_as_of: Any = AgedData.__dict__["as_of"].__set__
_data_days_past_due: Any = AgedData.__dict__["days_past_due"].__set__
_data_outstanding: Any = AgedData.__dict__["outstanding"].__set__
_data_subscription_ids: Any = AgedData.__dict__["subscription_ids"].__set__
_aged_event_id: Any = Aged.__dict__["event_id"].__set__
_aged_occurred_at: Any = Aged.__dict__["occurred_at"].__set__
_aged_customer_id: Any = Aged.__dict__["customer_id"].__set__
_aged_data: Any = Aged.__dict__["data"].__set__


# What the engines hand back: validated models where a caller built them, the light forms
# where the cores did. Every one has `event_type`, `event_id`, `customer_id` and bytes.
Produced = EventBase | Aged | Outbound


def to_bytes(produced: Produced) -> bytes:
    kind = type(produced)
    if kind is Aged or kind is Outbound:  # the common cases, before a slower isinstance
        return produced.encode()  # type: ignore[union-attr]
    if isinstance(produced, EventBase):
        return encode(produced)
    return produced.encode()
