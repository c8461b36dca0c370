"""Pure core of access-control: frozen values and functions, no I/O, no clock, no logging."""

from billstate_access_control.domain.access import (
    DESIRED_BY_COMMAND,
    Action,
    Command,
    CommandType,
    CustomerAccess,
    Status,
    SubscriptionAccess,
    Verdict,
    accept,
    applied,
    compare,
    decide,
    observed,
    settled,
)

__all__ = [
    "DESIRED_BY_COMMAND",
    "Action",
    "Command",
    "CommandType",
    "CustomerAccess",
    "Status",
    "SubscriptionAccess",
    "Verdict",
    "accept",
    "applied",
    "compare",
    "decide",
    "observed",
    "settled",
]
