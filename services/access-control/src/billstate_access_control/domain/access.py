"""Desired versus applied access per subscription, and the provider calls that close the gap.

A command (`access.suspend` / `access.restore`) sets the *desired* state of its subscriptions;
a provider call is needed only where the *applied* state differs. So suspending twice is
suspending once, a duplicate command causes no second provider call, and a restore touches
only what is actually suspended.

Commands carry the customer's `sequence` (it grows with every command collections decides):
a new command older than one already accepted is stale and refused, so a command re-driven
from a DLQ cannot undo a later one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

# A subscription's access: wanted (desired), confirmed (applied) or reported (observed).
Access = Literal["active", "suspended"]
CommandType = Literal["access.suspend", "access.restore"]

DESIRED_BY_COMMAND: Mapping[CommandType, Access] = {
    "access.suspend": "suspended",
    "access.restore": "active",
}


@dataclass(frozen=True, slots=True)
class Command:
    """One suspend or restore command, as the core needs it."""

    customer_id: str
    command_type: CommandType
    command_id: str
    subscription_ids: tuple[str, ...]
    # The customer's command sequence; None on commands decided before it existed.
    sequence: int | None = None

    @property
    def desired(self) -> Access:
        return DESIRED_BY_COMMAND[self.command_type]

    def targets(self) -> tuple[str, ...]:
        """The command's subscriptions, each once, in the order given."""
        return tuple(dict.fromkeys(self.subscription_ids))


@dataclass(frozen=True, slots=True)
class Action:
    """Bring `subscription_id` to `desired` through the provider, on behalf of `command_id`."""

    subscription_id: str
    desired: Access
    command_id: str


@dataclass(frozen=True, slots=True)
class SubscriptionAccess:
    """What billstate wants for one subscription and what a provider last confirmed.

    A subscription billstate has never touched is active, wanted and applied.
    `command_id` is the command that set `desired`; `applied_by` the one whose provider
    call set `applied`.
    """

    subscription_id: str
    desired: Access = "active"
    applied: Access = "active"
    command_id: str | None = None
    applied_by: str | None = None
    provider: str | None = None

    @property
    def in_sync(self) -> bool:
        return self.desired == self.applied

    @property
    def untouched(self) -> bool:
        """billstate never changed it: no provider ever confirmed a change billstate asked
        for, and billstate wants nothing but the default (active). A restore command for a
        subscription that was never suspended leaves it like this."""
        return (
            self.desired == "active"
            and self.applied == "active"
            and self.applied_by is None
            and self.provider is None
        )


@dataclass(frozen=True, slots=True)
class CustomerAccess:
    """One customer's subscriptions and the command ids already accepted.

    `seen` only has to hold the ids of the commands being decided: a store may load just those.
    `sequence` is the highest command sequence accepted for the customer (None: none yet).
    """

    customer_id: str
    subscriptions: Mapping[str, SubscriptionAccess] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    sequence: int | None = None

    def subscription(self, subscription_id: str) -> SubscriptionAccess:
        found = self.subscriptions.get(subscription_id)
        return found if found is not None else SubscriptionAccess(subscription_id)

    def with_subscriptions(self, changed: Iterable[SubscriptionAccess]) -> CustomerAccess:
        merged = dict(self.subscriptions)
        merged.update((s.subscription_id, s) for s in changed)
        return replace(self, subscriptions=merged)


def _owned(state: CustomerAccess, command: Command) -> list[SubscriptionAccess]:
    """The command's subscriptions whose desired state still comes from this command."""
    subs = (state.subscription(sid) for sid in command.targets())
    return [s for s in subs if s.command_id == command.command_id]


def stale(state: CustomerAccess, command: Command) -> str | None:
    """Why a new command is refused as stale: its sequence is lower than the highest already
    accepted for the customer. A command without a sequence, or one already seen (a
    redelivery: it is announced again, never applied anew), is judged as before."""
    if command.sequence is None or state.sequence is None or command.command_id in state.seen:
        return None
    if command.sequence < state.sequence:
        return f"stale: sequence {command.sequence} is older than {state.sequence} already applied"
    return None


def decide(state: CustomerAccess, command: Command) -> list[Action]:
    """The provider calls `command` needs: one per subscription whose applied state differs
    from the desired state the command asks for.

    A command already seen changes nothing: it asks for no new desired state, so a duplicate
    of an applied command needs no call. Only work that the first delivery left unfinished
    (a crash, or a provider that gave up) is asked for again, and only while no later command
    has set another desired state for that subscription.
    """
    if command.command_id in state.seen:
        return [
            Action(s.subscription_id, s.desired, command.command_id)
            for s in _owned(state, command)
            if not s.in_sync
        ]
    return [
        Action(sid, command.desired, command.command_id)
        for sid in command.targets()
        if state.subscription(sid).applied != command.desired
    ]


def accept(state: CustomerAccess, command: Command) -> CustomerAccess:
    """Record the command's desired state, its id and its sequence; a command already seen
    changes nothing."""
    if command.command_id in state.seen:
        return state
    changed = (
        replace(state.subscription(sid), desired=command.desired, command_id=command.command_id)
        for sid in command.targets()
    )
    updated = state.with_subscriptions(changed)
    known = [s for s in (state.sequence, command.sequence) if s is not None]
    return replace(
        updated, seen=state.seen | {command.command_id}, sequence=max(known) if known else None
    )


def applied(
    state: CustomerAccess,
    subscription_id: str,
    status: Access,
    command_id: str,
    provider: str | None = None,
) -> CustomerAccess:
    """Record that a provider confirmed `status` for the subscription on behalf of `command_id`."""
    current = state.subscription(subscription_id)
    done = replace(
        current,
        applied=status,
        applied_by=command_id,
        provider=provider if provider is not None else current.provider,
    )
    return state.with_subscriptions([done])


def settled(state: CustomerAccess, command: Command) -> list[Action]:
    """What a command already seen has applied: the subscriptions it brought to their desired
    state. Announcing these again (same event ids, no provider call) covers a crash between
    storing the result and publishing it."""
    if command.command_id not in state.seen:
        return []
    return [
        Action(s.subscription_id, s.desired, command.command_id)
        for s in _owned(state, command)
        if s.in_sync and s.applied_by == command.command_id
    ]


Verdict = Literal["in_sync", "unknown", "untouched", "landed", "drift", "pending"]


def compare(sub: SubscriptionAccess, observed: Access | None) -> Verdict:
    """What the reconciler makes of what a provider reports for a subscription.

    - `unknown`: the provider cannot tell (a webhook, an unmapped subscription): leave it;
    - `untouched`: billstate never changed the subscription (see `SubscriptionAccess.untouched`)
      and the provider reports something else than active: someone else's doing (staff
      suspended it by hand); billstate puts back only what it changed itself, so leave it;
    - `in_sync`: observed, desired and applied agree;
    - `landed`: the provider has the desired state though billstate never recorded the
      call as done (a crash between the call and the write): record it, no drift;
    - `drift`: billstate applied the desired state and the provider now says otherwise:
      someone changed it by hand; report it, and re-apply;
    - `pending`: billstate's own change has not landed yet (it failed, or was cut short):
      re-apply, but it is not drift.
    """
    if observed is None:
        return "unknown"
    if sub.untouched and observed != sub.desired:
        return "untouched"
    if observed == sub.desired:
        return "in_sync" if sub.applied == sub.desired else "landed"
    return "drift" if sub.applied == sub.desired else "pending"


def observed(
    state: CustomerAccess, subscription_id: str, status: Access, provider: str
) -> CustomerAccess:
    """Record what a provider reported, keeping who asked for the desired state: after a
    drift, `applied` is the truth on the provider's side until the re-apply lands."""
    current = state.subscription(subscription_id)
    return state.with_subscriptions(
        [replace(current, applied=status, applied_by=None, provider=provider)]
    )


def park_delay(parks: int, retry_after: float | None, base: float, ceiling: float) -> float:
    """Seconds until a parked command is tried again, after its `parks`-th parking (1, 2, ...):
    `base` doubling per parking, or the provider's Retry-After when that is longer, at most
    `ceiling`."""
    backoff = base * 2 ** max(parks - 1, 0)
    return float(min(max(backoff, retry_after or 0.0), ceiling))
