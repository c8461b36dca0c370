"""Provider adapters: where suspensions and restores are actually applied.

`builtin` (the service's own store), `partner_center` and `webhook`; the service builds the
one its settings name (`entrypoints.providers.build_provider`).
"""

from billstate_access_control.providers.base import (
    Change,
    Provider,
    ProviderError,
    note,
    recording,
)
from billstate_access_control.providers.builtin import BuiltinProvider

__all__ = ["BuiltinProvider", "Change", "Provider", "ProviderError", "note", "recording"]
