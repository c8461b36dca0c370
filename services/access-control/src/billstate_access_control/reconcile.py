"""The reconciler: compares desired with observed access on a schedule and re-applies drift.

It puts back only what billstate changed itself: a subscription no billstate command ever
changed (`untouched`) is left as the provider has it, whatever that is. A change whose
command is parked (its time budget ran out) is left to the command's own re-attempt, which
keeps the provider's Retry-After. Each subscription's read and re-apply take at most the
handler's time budget, so a pass never holds the lock a command waits for longer than that.

A drift is announced after the re-apply it triggers, so `access.drift` carries the exchanges
of both the read that found it and the repair (Microsoft support asks for their ids).
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter

from billstate_access_control.domain import (
    AccessEvents,
    Action,
    applied,
    compare,
    evidence,
    observed,
)
from billstate_access_control.handlers import (
    AccessHandler,
    Applied,
    error_text,
    failure,
    produce,
)
from billstate_access_control.periodic import Periodic
from billstate_access_control.providers import Change, Provider, recording
from billstate_access_control.store import Store
from billstate_shared.contracts import EventBase
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.wallclock import WallClock, utc_now

log = structlog.get_logger("billstate.access_control.reconcile")

Send = Callable[[Produce], Awaitable[None]]
# The memo slot where the reconciler counts drift episodes per subscription, so each
# episode gets its own event ids while a re-apply that keeps failing repeats its ids.
MEMO = "reconciler"


@dataclass
class Round:
    """What one pass over every subscription found and did."""

    verdicts: Tally[str] = field(default_factory=Tally)
    reapplied: int = 0
    failed: int = 0
    unreadable: int = 0

    def public(self) -> dict[str, int]:
        return {
            "checked": sum(self.verdicts.values()),
            **{k: self.verdicts.get(k, 0) for k in ("in_sync", "unknown", "landed", "drift")},
            "pending": self.verdicts.get("pending", 0),
            "untouched": self.verdicts.get("untouched", 0),
            "parked": self.verdicts.get("parked", 0),
            "reapplied": self.reapplied,
            "failed": self.failed,
            "unreadable": self.unreadable,
        }


class Reconciler(Periodic):
    """One pass (`run_once`) walks the store a page at a time; `run` repeats it every
    `interval` seconds until stopped. A pass takes the handler's lock per subscription, so a
    command and a re-apply never race on the same subscription."""

    what = "reconcile pass"

    def __init__(
        self,
        *,
        store: Store,
        provider: Provider,
        handler: AccessHandler,
        send: Send,
        metrics: Metrics | None = None,
        service: str = "access-control",
        page: int = 500,
        clock: WallClock = utc_now,
    ) -> None:
        super().__init__()
        self.store, self.provider, self.handler, self.send = store, provider, handler, send
        self.service, self.page, self.clock = service, page, clock
        self._checked = (
            None
            if metrics is None
            else Counter(
                "billstate_reconcile_checked",
                "Subscriptions the reconciler compared, by verdict",
                ["service", "provider", "verdict"],
                registry=metrics.registry,
            )
        )

    async def run_once(self) -> Round:
        result = Round()
        after: tuple[str, str] | None = None
        while not self.stopping:
            rows = self.store.page(after, self.page)
            if not rows:
                break
            for customer_id, sub in rows:
                await self._one(customer_id, sub.subscription_id, result)
            after = (rows[-1][0], rows[-1][1].subscription_id)
        log.info("reconciled", provider=self.provider.name, **result.public())
        return result

    async def _one(self, customer_id: str, subscription_id: str, result: Round) -> None:
        async with self.handler.lock:
            # Read again under the lock: a command may have changed it since the page.
            state = self.store.load(customer_id)
            sub = state.subscription(subscription_id)
            deadline = self.handler.deadline()
            try:
                with recording() as read:
                    if deadline is None:
                        seen = await self.provider.observe(customer_id, subscription_id)
                    else:
                        async with asyncio.timeout(deadline - self.handler.monotonic()):
                            seen = await self.provider.observe(customer_id, subscription_id)
            except Exception as err:  # noqa: BLE001  (one bad read must not end the pass)
                # A 500 or a timeout on one subscription; a throttled provider makes every
                # read fail and the pass simply finds nothing.
                result.unreadable += 1
                log.warning(
                    "cannot observe",
                    customer_id=customer_id,
                    subscription_id=subscription_id,
                    error=error_text(err),
                )
                return
            verdict: str = compare(sub, seen)
            if verdict == "pending" and self.store.parked(customer_id, sub.command_id or ""):
                verdict = "parked"  # its command's re-attempt applies it when due
            result.verdicts[verdict] += 1
            if self._checked is not None:
                self._checked.labels(self.service, self.provider.name, verdict).inc()
            if verdict in ("in_sync", "unknown", "untouched", "parked"):
                return
            wanted = Action(subscription_id, sub.desired, sub.command_id or "reconciler")
            if verdict == "landed":
                self._applied(customer_id, wanted)
                await self._emit(self._events(customer_id).done(wanted))
                return
            if verdict != "drift":
                episode = self._episode(customer_id, subscription_id) or None
                tried = await self._reapply(customer_id, wanted, deadline)
                await self._settle(customer_id, wanted, episode, result, tried)
                return
            assert seen is not None
            episode = self._next_episode(customer_id, subscription_id)
            self.store.save(observed(state, subscription_id, seen, self.provider.name))
            log.warning(
                "access drift",
                customer_id=customer_id,
                subscription_id=subscription_id,
                desired=sub.desired,
                observed=seen,
            )
            tried = await self._reapply(customer_id, wanted, deadline)
            drift = self._events(customer_id).drift(
                wanted, observed=seen, episode=episode, exchanges=evidence(read, tried.exchanges)
            )
            await self._emit(drift)
            await self._settle(customer_id, wanted, episode, result, tried)

    async def _reapply(self, customer_id: str, wanted: Action, deadline: float | None) -> Applied:
        """Apply the desired state again, through the handler's retry policy."""
        change = Change(
            customer_id=customer_id,
            subscription_id=wanted.subscription_id,
            desired=wanted.desired,
            command_id=wanted.command_id,
            reason="reconcile",
        )
        return await self.handler.apply(change, deadline=deadline)

    async def _settle(
        self,
        customer_id: str,
        wanted: Action,
        episode: int | None,
        result: Round,
        tried: Applied,
    ) -> None:
        """Record and announce how a re-apply ended."""
        if tried.ok:
            result.reapplied += 1
            self._applied(customer_id, wanted)
            await self._emit(self._events(customer_id).done(wanted, episode))
            return
        result.failed += 1
        error = failure(tried)
        log.warning(
            "re-apply failed",
            customer_id=customer_id,
            subscription_id=wanted.subscription_id,
            attempts=tried.attempts,
            error=error,
        )
        if episode is not None:
            failed = self._events(customer_id).failed(
                wanted,
                attempts=tried.attempts,
                error=error,
                episode=episode,
                exchanges=tried.exchanges,
            )
            await self._emit(failed)

    def _applied(self, customer_id: str, done: Action) -> None:
        """Record that the provider has `done`, on behalf of the command that asked."""
        state = self.store.load(customer_id)
        self.store.save(
            applied(state, done.subscription_id, done.desired, done.command_id, self.provider.name)
        )

    def _episode(self, customer_id: str, subscription_id: str) -> int:
        memo = self.store.memo(MEMO, customer_id, subscription_id) or {}
        return int(memo.get("drifts", 0))

    def _next_episode(self, customer_id: str, subscription_id: str) -> int:
        episode = self._episode(customer_id, subscription_id) + 1
        self.store.remember(MEMO, customer_id, subscription_id, {"drifts": episode})
        return episode

    def _events(self, customer_id: str) -> AccessEvents:
        """The event builder for one customer, stamped now (the wall clock: a reconcile pass
        is about the real world, not a business decision)."""
        return AccessEvents(customer_id=customer_id, provider=self.provider.name, at=self.clock())

    async def _emit(self, event: EventBase) -> None:
        await self.send(produce(event))
