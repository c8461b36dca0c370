"""The clock guard: a tick whose business time runs ahead of its record's Kafka time is refused.

Time only moves forward (a tick not later than the latest one changes nothing), so one tick
dated in the future would age every open invoice to that date at once, and every real tick
after it would change nothing. Kafka stamps the clock topic's records itself (its
`message.timestamp.type` is `LogAppendTime`), so a tick's record time is when it reached the
broker, which a sender cannot set: a tick may be at most `skew` ahead of it.

Pure: the caller hands in the record's time; nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billstate_shared.errors import Refused

DEFAULT_SKEW = timedelta(minutes=10)


def tick_refusal(occurred_at: datetime, record_time: datetime, skew: timedelta) -> Refused | None:
    """Why a tick is refused, or None when its `occurred_at` is at most `skew` ahead of
    `record_time` (exactly `skew` ahead is still accepted; any time behind is accepted)."""
    ahead = occurred_at - record_time
    if ahead <= skew:
        return None
    return Refused(
        "occurred_at",
        f"clock tick {utc(occurred_at)} is {span(ahead)} ahead of its record's time"
        f" {utc(record_time)}; at most {span(skew)} is allowed (a tick from the future"
        " would age every open invoice to its date at once)",
        "clock.tick",
    )


def check_tick(occurred_at: datetime, record_time: datetime, skew: timedelta) -> None:
    """Raise the refusal of `tick_refusal`, if any."""
    refused = tick_refusal(occurred_at, record_time, skew)
    if refused is not None:
        raise refused


def utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the second (milliseconds when there are any)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def span(length: timedelta) -> str:
    """A length of time in words: `8,372 days`, `2 hours 5 minutes`, `10 minutes 0.5 seconds`."""
    if length.days >= 1:
        return _unit(length.days, "day")
    seconds = length.total_seconds()
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [_unit(int(hours), "hour"), _unit(int(minutes), "minute")]
    whole = int(seconds)
    if seconds != whole:
        parts.append(f"{seconds:.3f}".rstrip("0") + " seconds")
    else:
        parts.append(_unit(whole, "second"))
    shown = [p for p in parts if not p.startswith("0 ")]
    return " ".join(shown) or "0 seconds"


def _unit(count: int, name: str) -> str:
    return f"{count:,} {name}" + ("" if count == 1 else "s")
