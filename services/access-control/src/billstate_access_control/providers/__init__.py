"""Provider adapters: where suspensions and restores are actually applied."""

from __future__ import annotations

from billstate_access_control.providers.base import Change, Desired, Provider, ProviderError
from billstate_access_control.providers.ledger import LedgerProvider
from billstate_access_control.store import Store

__all__ = [
    "PROVIDERS",
    "Change",
    "Desired",
    "LedgerProvider",
    "Provider",
    "ProviderError",
    "build_provider",
]

PROVIDERS = ("ledger",)


def build_provider(name: str, store: Store) -> Provider:
    """The provider the settings name; an unknown name is a start-up error."""
    if name == "ledger":
        return LedgerProvider(store)
    raise ValueError(f"unknown access provider {name!r}; known: {', '.join(PROVIDERS)}")
