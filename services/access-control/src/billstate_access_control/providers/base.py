"""What a provider adapter is: something that sets a subscription's access and can read it back."""

from __future__ import annotations

from typing import Literal, Protocol

Desired = Literal["active", "suspended"]


class ProviderError(Exception):
    """A provider could not apply a change; `retryable` says whether trying again can help
    (a timeout, a 429 or a 5xx can; a 404 or a refused transition cannot)."""

    def __init__(self, retryable: bool, message: str) -> None:
        super().__init__(message)
        self.retryable, self.message = retryable, message


class Provider(Protocol):
    """A provider adapter (the ledger, Partner Center, a webhook).

    `apply` must be idempotent: setting the state a subscription already has is a success.
    """

    name: str

    async def apply(self, customer_id: str, subscription_id: str, desired: Desired) -> None:
        """Set the subscription's access; raise ProviderError on failure."""
        ...

    async def observe(self, customer_id: str, subscription_id: str) -> str | None:
        """The state the provider reports now (None: unknown there); for the reconciler."""
        ...
