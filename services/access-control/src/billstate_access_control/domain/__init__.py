"""Pure core of access-control: frozen values and functions, no I/O, no clock, no logging."""

from billstate_access_control.domain.access import (
    DESIRED_BY_COMMAND,
    Access,
    Action,
    Command,
    CommandType,
    CustomerAccess,
    SubscriptionAccess,
    Verdict,
    accept,
    applied,
    compare,
    decide,
    observed,
    park_delay,
    settled,
    stale,
)
from billstate_access_control.domain.events import AccessEvents, change_id, drift_id

__all__ = [
    "DESIRED_BY_COMMAND",
    "Access",
    "AccessEvents",
    "Action",
    "Command",
    "CommandType",
    "CustomerAccess",
    "SubscriptionAccess",
    "Verdict",
    "accept",
    "applied",
    "change_id",
    "compare",
    "decide",
    "drift_id",
    "observed",
    "park_delay",
    "settled",
    "stale",
]
