"""The events access-control emits, built in one place for the command handler and the
reconciler, so both use one id scheme.

Event ids are deterministic (at-least-once delivery: a redelivery announces again under the
same id, and consumers dedupe):

- a change a command asked for: `acc(command_id, subscription_id, suspended|restored|failed)`;
- a change parked after the command's time budget ran out: `acc(command_id, subscription_id,
  parked)`, an `access.failed` that tells staff it will be tried again (one per command and
  subscription, however often it is parked again);
- the reconciler's re-apply after drift episode n: the same parts plus `reconciled, n`, so it
  is not taken for the first application, while a re-apply that keeps failing repeats its id;
- a drift: `acc(customer_id, subscription_id, drift, n)`, one per episode;
- a suspend command held back by a guard: `acc(command_id, parked)`, and how that ended:
  `acc(command_id, unparked)` (one ending per command); a batch's approval notice:
  `approval-<batch_id>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from billstate_access_control.domain.access import Access, Action
from billstate_access_control.domain.guards import Decided, Guard
from billstate_shared.contracts import (
    AccessApprovalNeeded,
    AccessApprovalNeededData,
    AccessDrift,
    AccessDriftData,
    AccessFailed,
    AccessFailedData,
    AccessParked,
    AccessParkedData,
    AccessRestored,
    AccessRestoredData,
    AccessSuspended,
    AccessSuspendedData,
    AccessUnparked,
    AccessUnparkedData,
    ProviderExchange,
)
from billstate_shared.contracts.events import MAX_EXCHANGES
from billstate_shared.domain.ids import make_id

Ending = Literal["suspended", "restored", "failed", "parked"]


def change_id(action: Action, ending: Ending, episode: int | None = None) -> str:
    """The id of what became of `action`; `episode` is the drift episode a re-apply repairs."""
    parts: tuple[str, ...] = (action.command_id, action.subscription_id, ending)
    if episode is not None:
        parts = (*parts, "reconciled", str(episode))
    return make_id("acc", *parts)


def drift_id(customer_id: str, subscription_id: str, episode: int) -> str:
    return make_id("acc", customer_id, subscription_id, "drift", str(episode))


def evidence(
    first: Sequence[ProviderExchange], then: Sequence[ProviderExchange] = ()
) -> list[ProviderExchange]:
    """The exchanges an event carries, at most MAX_EXCHANGES: all of `first` (the read that
    found a drift) and the last of `then` (a repair); with `first` alone, its last ones."""
    room = max(MAX_EXCHANGES - len(first), 0)
    kept = [*first, *(then[-room:] if room else ())]
    return kept[-MAX_EXCHANGES:]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessEvents:
    """The `access.*` events of one customer's subscriptions, as applied by `provider`,
    stamped `at` (the command's time for the handler, the pass's time for the reconciler)."""

    customer_id: str
    provider: str
    at: datetime

    def done(self, action: Action, episode: int | None = None) -> AccessSuspended | AccessRestored:
        """`action` landed: `access.suspended` or `access.restored`."""
        cid, sid = action.command_id, action.subscription_id
        if action.desired == "suspended":
            return AccessSuspended(
                event_id=change_id(action, "suspended", episode),
                event_type="access.suspended",
                occurred_at=self.at,
                customer_id=self.customer_id,
                data=AccessSuspendedData(
                    command_id=cid, subscription_id=sid, provider=self.provider
                ),
            )
        return AccessRestored(
            event_id=change_id(action, "restored", episode),
            event_type="access.restored",
            occurred_at=self.at,
            customer_id=self.customer_id,
            data=AccessRestoredData(command_id=cid, subscription_id=sid, provider=self.provider),
        )

    def failed(
        self,
        action: Action,
        *,
        attempts: int,
        error: str,
        episode: int | None = None,
        exchanges: Sequence[ProviderExchange] = (),
    ) -> AccessFailed:
        """`action` did not land after `attempts` calls; `error` is the last one's, and
        `exchanges` what those calls sent and got (the last MAX_EXCHANGES are kept)."""
        event_id = change_id(action, "failed", episode)
        return self._failed(event_id, action, attempts, error, exchanges)

    def parked(
        self,
        action: Action,
        *,
        attempts: int,
        error: str,
        exchanges: Sequence[ProviderExchange] = (),
    ) -> AccessFailed:
        """`action` did not land within the command's time budget and waits in the store for
        its next attempt: an `access.failed` whose error says so, under an id of its own (a
        later failure for good is another event)."""
        event_id = change_id(action, "parked")
        return self._failed(event_id, action, max(attempts, 1), error, exchanges)

    def _failed(
        self,
        event_id: str,
        action: Action,
        attempts: int,
        error: str,
        exchanges: Sequence[ProviderExchange],
    ) -> AccessFailed:
        return AccessFailed(
            event_id=event_id,
            event_type="access.failed",
            occurred_at=self.at,
            customer_id=self.customer_id,
            data=AccessFailedData(
                command_id=action.command_id,
                subscription_id=action.subscription_id,
                provider=self.provider,
                attempts=attempts,
                error=error,
                exchanges=evidence(exchanges),
            ),
        )

    def drift(
        self,
        wanted: Action,
        *,
        observed: Access,
        episode: int,
        exchanges: Sequence[ProviderExchange] = (),
    ) -> AccessDrift:
        """The provider reports `observed` where billstate had applied `wanted.desired`;
        `exchanges` are the read that found it and the repair's (see `evidence`)."""
        sid = wanted.subscription_id
        return AccessDrift(
            event_id=drift_id(self.customer_id, sid, episode),
            event_type="access.drift",
            occurred_at=self.at,
            customer_id=self.customer_id,
            data=AccessDriftData(
                subscription_id=sid,
                provider=self.provider,
                desired=wanted.desired,
                observed=observed,
                exchanges=evidence(exchanges),
            ),
        )


def parked(
    *,
    customer_id: str,
    command_id: str,
    subscription_ids: tuple[str, ...],
    provider: str,
    guard: Guard,
    reason: str,
    at: datetime,
) -> AccessParked:
    """A suspend command held back by `guard` (stamped with the command's time)."""
    return AccessParked(
        event_id=make_id("acc", command_id, "parked"),
        event_type="access.parked",
        occurred_at=at,
        customer_id=customer_id,
        data=AccessParkedData(
            command_id=command_id,
            subscription_ids=list(subscription_ids),
            provider=provider,
            guard=guard,
            reason=reason,
        ),
    )


def unparked(
    *, customer_id: str, command_id: str, outcome: Decided, by: str, reason: str, at: datetime
) -> AccessUnparked:
    """How a held suspend command ended (stamped with the time of what ended it)."""
    return AccessUnparked(
        event_id=make_id("acc", command_id, "unparked"),
        event_type="access.unparked",
        occurred_at=at,
        customer_id=customer_id,
        data=AccessUnparkedData(command_id=command_id, outcome=outcome, by=by, reason=reason),
    )


def approval_needed(
    *,
    batch_id: str,
    guard: Guard,
    count: int,
    customer_ids: tuple[str, ...],
    reason: str,
    at: datetime,
) -> AccessApprovalNeeded:
    """One batch of held suspensions for staff, keyed by the batch's first customer."""
    return AccessApprovalNeeded(
        event_id=f"approval-{batch_id}",
        event_type="access.approval_needed",
        occurred_at=at,
        customer_id=customer_ids[0],
        data=AccessApprovalNeededData(
            batch_id=batch_id,
            guard=guard,
            count=count,
            customer_ids=list(customer_ids),
            reason=reason,
        ),
    )
