"""Events billstate itself decides, kept as JSON-ready data and encoded without re-validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from billstate_shared.contracts.codec import decode
from billstate_shared.contracts.events import Event


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
