"""The wall clock, for what is about the real world (timestamps, signatures), never a decision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, in UTC: the default `WallClock`; tests pass their own."""
    return datetime.now(UTC)
