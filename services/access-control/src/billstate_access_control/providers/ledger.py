"""The built-in provider: records access in the service's own store and counts its calls."""

from __future__ import annotations

from billstate_access_control.providers.base import Change, Desired
from billstate_access_control.store import Store


class LedgerProvider:
    """Applies access by writing it down: the reference provider, and what tests and the demo
    use to see exactly which changes were made and how often (`calls` per subscription)."""

    name = "ledger"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(self, change: Change) -> None:
        self.store.ledger_apply(change.customer_id, change.subscription_id, change.desired)

    async def observe(self, customer_id: str, subscription_id: str) -> Desired | None:
        status = self.store.ledger_status(customer_id, subscription_id)
        return status if status in ("active", "suspended") else None  # type: ignore[return-value]

    async def close(self) -> None:
        return None
