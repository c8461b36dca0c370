"""The built-in provider: records access in the service's own store and counts its calls.

It was called `ledger` until the name was taken for the receivables ledger; the settings
still accept `ledger` and mean this provider.
"""

from __future__ import annotations

from billstate_access_control.domain import Access
from billstate_access_control.providers.base import Change
from billstate_access_control.store import Store

NAME = "builtin"


class BuiltinProvider:
    """Applies access by writing it down: the reference provider, and what tests and the demo
    use to see exactly which changes were made and how often (`calls` per subscription)."""

    name = NAME

    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(self, change: Change) -> None:
        self.store.builtin_apply(change.customer_id, change.subscription_id, change.desired)

    async def observe(self, customer_id: str, subscription_id: str) -> Access | None:
        return self.store.builtin_status(customer_id, subscription_id)

    async def close(self) -> None:
        return None
