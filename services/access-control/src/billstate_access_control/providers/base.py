"""What a provider adapter is: something that sets a subscription's access and can read it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from billstate_access_control.domain import Access
from billstate_shared.contracts import ProviderExchange
from billstate_shared.errors import ExternalError

# The exchanges of the work in progress: a context variable rather than an argument, so the
# Provider protocol stays as it is and an adapter with nothing to record needs no change.
_journal: ContextVar[list[ProviderExchange] | None] = ContextVar("provider_journal", default=None)


@dataclass(frozen=True, slots=True)
class Change:
    """One subscription brought to `desired` on behalf of `command_id`.

    `reason` and `stage` come from the command (empty when the reconciler re-applies); a
    provider that forwards the change (the webhook) sends them along, and uses
    `command_id` + `subscription_id` as the idempotency key of the delivery.
    """

    customer_id: str
    subscription_id: str
    desired: Access
    command_id: str
    reason: str = ""
    stage: str = ""


class ProviderError(ExternalError):
    """A provider could not apply a change (or read one back).

    `retryable` says whether trying again can help (a timeout, a 429 or a 5xx can; a 404 or
    a refused transition cannot); `retry_after` is the wait in seconds the far side asked
    for (a 429's Retry-After), honoured by the retry policy within its ceiling.
    """


class Provider(Protocol):
    """A provider adapter (the built-in one, Partner Center, a webhook).

    `apply` must be idempotent: setting the state a subscription already has is a success.
    """

    name: str

    async def apply(self, change: Change) -> None:
        """Set the subscription's access; raise ProviderError on failure."""
        ...

    async def observe(self, customer_id: str, subscription_id: str) -> Access | None:
        """The state the provider reports now, for the reconciler; None when it cannot tell
        (a webhook provider, or a subscription it does not know)."""
        ...

    async def close(self) -> None:
        """Release connections; called once when the service stops."""
        ...


@contextmanager
def recording() -> Iterator[list[ProviderExchange]]:
    """Collect, in order, the exchanges the provider calls inside the block make (what an
    adapter `note`s): the evidence `access.failed` and `access.drift` carry. Blocks nest; an
    inner block keeps its exchanges to itself."""
    journal: list[ProviderExchange] = []
    token = _journal.set(journal)
    try:
        yield journal
    finally:
        _journal.reset(token)


def note(exchange: ProviderExchange) -> None:
    """An adapter's record of one request and its answer; nothing when nobody is recording."""
    journal = _journal.get()
    if journal is not None:
        journal.append(exchange)
