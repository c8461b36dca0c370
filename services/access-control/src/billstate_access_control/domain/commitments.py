"""What a subscription commits the partner to, and when staff must hear of it (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billstate_shared.contracts import AccessCommitment, AccessCommitmentData
from billstate_shared.domain.ids import readable_id

# A subscription in one of these states commits to nothing more.
_ENDED = frozenset({"deleted", "expired", "disabled", "cancelled"})


@dataclass(frozen=True, slots=True)
class Terms:
    """A subscription's term as the provider reports it."""

    subscription_id: str  # billstate's id
    status: str
    term_end: date | None
    auto_renew: bool
    # A new-commerce cancellation window's end; None: not cancellable.
    cancellable_until: datetime | None
    term: str | None = None  # ISO 8601 duration, P1M / P1Y / P3Y


@dataclass(frozen=True, slots=True)
class AtStake:
    """One thing staff must decide on before a date: a renewal or a closing window."""

    key: str  # once per subscription and this key
    renews_on: date | None
    cancellable_until: datetime | None
    reason: str


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def terms(resource: Mapping[str, Any], subscription_id: str) -> Terms:
    """Partner Center's subscription resource as Terms; a field it lacks or garbles is
    absent (the check then says nothing about it, rather than guess)."""
    end = _instant(resource.get("commitmentEndDate"))
    term = resource.get("termDuration")
    return Terms(
        subscription_id=subscription_id,
        status=str(resource.get("status", "")),
        term_end=None if end is None else end.date(),
        auto_renew=resource.get("autoRenewEnabled") is True,
        cancellable_until=_instant(resource.get("cancellationAllowedUntilDate")),
        term=term if isinstance(term, str) else None,
    )


def at_stake(found: Terms, now: datetime, ahead: int, stage: str) -> list[AtStake]:
    """What to announce now: an auto-renewal within `ahead` days (the day after the term
    ends), and a cancellation window still open. The keys make each announced once."""
    if found.status in _ENDED:
        return []
    today = now.astimezone(UTC).date()
    out: list[AtStake] = []
    if found.auto_renew and found.term_end is not None:
        renews = found.term_end + timedelta(days=1)
        days = (renews - today).days
        if 0 <= days <= ahead:
            term = f" for another {found.term}" if found.term else ""
            out.append(
                AtStake(
                    key=f"renewal:{renews.isoformat()}",
                    renews_on=renews,
                    cancellable_until=None,
                    reason=f"auto-renews on {renews.isoformat()}{term}, in {days} days,"
                    f" while the customer is at {stage}",
                )
            )
    until = found.cancellable_until
    if until is not None and until > now:
        out.append(
            AtStake(
                key=f"window:{until.astimezone(UTC).isoformat()}",
                renews_on=None,
                cancellable_until=until,
                reason=f"can be cancelled until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
                f" while the customer is at {stage}",
            )
        )
    return out


def commitment_id(provider: str, subscription_id: str, key: str) -> str:
    return readable_id("commitment", provider, subscription_id, key)


def commitment(
    customer_id: str, provider: str, found: Terms, stake: AtStake, at: datetime
) -> AccessCommitment:
    """The `access.commitment` event for one thing at stake; its id is the same on every
    check, so it is announced once however often it is found."""
    return AccessCommitment(
        event_id=commitment_id(provider, found.subscription_id, stake.key),
        event_type="access.commitment",
        occurred_at=at,
        customer_id=customer_id,
        data=AccessCommitmentData(
            subscription_id=found.subscription_id,
            provider=provider,
            term_end=found.term_end,
            auto_renew=found.auto_renew,
            renews_on=stake.renews_on,
            cancellable_until=stake.cancellable_until,
            term_cost=None,
            reason=stake.reason,
        ),
    )
