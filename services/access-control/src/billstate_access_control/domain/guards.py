"""The two guards at the actuator, as pure rules: a brake on how many suspensions a provider
applies in 24 hours, and a payment feed gone silent. Either one holds a suspend command back
for a person to approve (`access.parked`); restores always go through.

The figures (how many applied, when the feed last spoke, what "now" is) come from the caller:
the guards are about the real world, so "now" is the wall clock there, never business time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Guard = Literal["brake", "stale_payment_feed"]
Decided = Literal["approved", "rejected", "cancelled"]

# The rolling window of the brake.
WINDOW = timedelta(hours=24)
# How many customers an approval notice names.
FIRST_CUSTOMERS = 10
# What an approval notice tells staff to run.
HOW_TO_ACT = "billstate access pending; billstate access approve --all --by NAME --reason TEXT"


@dataclass(frozen=True, slots=True)
class Hold:
    """A guard holds the command back, and why (with the figures)."""

    guard: Guard
    reason: str


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st ..."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def span(seconds: float) -> str:
    """A duration as people say it: hours from 2 hours on, minutes from 2 minutes on, else
    seconds (rounded down)."""
    whole = max(int(seconds), 0)
    if whole >= 2 * 3600:
        return f"{whole // 3600} h"
    if whole >= 2 * 60:
        return f"{whole // 60} min"
    return f"{whole} s"


def minute(at: datetime) -> str:
    """`2027-01-09T08:00Z`: a time in UTC, to the minute."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def brake(*, applied: int, held: int, cap: int, provider: str) -> Hold | None:
    """The brake: with `applied` suspensions applied on `provider` in the last 24 hours and
    `held` already held back by it, one more is over the cap when it would be past `cap`.
    A cap of 0 is no brake."""
    if cap <= 0 or applied < cap:
        return None
    nth = applied + held + 1
    return Hold("brake", f"{ordinal(nth)} suspension in 24 hours on {provider}; the cap is {cap}")


def stale_feed(*, newest: datetime | None, now: datetime, limit: float, topic: str) -> Hold | None:
    """The payment feed: silent when its newest record is older than `limit` seconds, or when
    it has no record at all (a feed never connected is a broken feed). A limit of 0 is no
    guard."""
    if limit <= 0:
        return None
    if newest is None:
        return Hold(
            "stale_payment_feed",
            f"no record on {topic} at all: a feed that never spoke is a broken feed"
            f" (the limit is {span(limit)})",
        )
    age = (now - newest).total_seconds()
    if age <= limit:
        return None
    return Hold(
        "stale_payment_feed",
        f"no record on {topic} since {minute(newest)} ({span(age)}; the limit is {span(limit)})",
    )


def batch_id(guard: Guard, provider: str, started: datetime) -> str:
    """A batch's id: its guard, provider and start (UTC, to the microsecond)."""
    at = started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{guard}-{provider}-{at}"


def approval_reason(guard: Guard, count: int, provider: str, first_reason: str) -> str:
    """The approval notice's text: what was held back, the guard's figures, how to act."""
    what = "suspension" if count == 1 else "suspensions"
    by = "the brake" if guard == "brake" else "the stale payment feed guard"
    return f"{count} {what} on {provider} held back by {by}: {first_reason}. To act: {HOW_TO_ACT}"


def remaining(subscription_ids: tuple[str, ...], restored: tuple[str, ...]) -> tuple[str, ...]:
    """A held suspension's subscriptions once a restore took `restored` back."""
    gone = set(restored)
    return tuple(s for s in subscription_ids if s not in gone)
