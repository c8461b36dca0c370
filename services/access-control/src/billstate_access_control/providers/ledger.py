"""The built-in provider: records access in the service's own store and counts its calls."""

from __future__ import annotations

from billstate_access_control.providers.base import Desired
from billstate_access_control.store import Store


class LedgerProvider:
    """Applies access by writing it down: the reference provider, and what tests and the demo
    use to see exactly which changes were made and how often (`calls` per subscription)."""

    name = "ledger"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(self, customer_id: str, subscription_id: str, desired: Desired) -> None:
        self.store.ledger_apply(customer_id, subscription_id, desired)

    async def observe(self, customer_id: str, subscription_id: str) -> str | None:
        return self.store.ledger_status(customer_id, subscription_id)
