"""The reconciler: compares desired with observed access on a schedule and re-applies drift."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter

from billstate_access_control.domain import SubscriptionAccess, applied, compare, observed
from billstate_access_control.handlers import AccessHandler, Outcome
from billstate_access_control.providers import Change, Provider
from billstate_access_control.store import Store
from billstate_shared.contracts import (
    AccessDrift,
    AccessDriftData,
    AccessFailed,
    AccessFailedData,
    AccessRestored,
    AccessRestoredData,
    AccessSuspended,
    AccessSuspendedData,
    EventBase,
    encode,
)
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.loop import Produce
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import ACCESS_EVENTS

log = structlog.get_logger("billstate.access_control.reconcile")

Send = Callable[[Produce], Awaitable[None]]
Clock = Callable[[], datetime]
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
            "reapplied": self.reapplied,
            "failed": self.failed,
            "unreadable": self.unreadable,
        }


class Reconciler:
    """One pass (`run_once`) walks the store a page at a time; `run` repeats it every
    `interval` seconds until stopped. A pass takes the handler's lock per subscription, so a
    command and a re-apply never race on the same subscription."""

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
        clock: Clock | None = None,
    ) -> None:
        self.store, self.provider, self.handler, self.send = store, provider, handler, send
        self.service, self.page = service, page
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self._stop = asyncio.Event()
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

    async def run(self, interval: float) -> None:
        """Reconcile every `interval` seconds until `stop()`; a failed pass is logged and
        the next one runs on time (a provider outage must not end the service)."""
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as err:
                log.warning("reconcile pass failed", error=repr(err)[:500])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self) -> Round:
        result = Round()
        after: tuple[str, str] | None = None
        while not self._stop.is_set():
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
            try:
                seen = await self.provider.observe(customer_id, subscription_id)
            except Exception as err:
                # One unreadable subscription (a 500, a timeout) must not end the pass; a
                # throttled provider makes every read fail and the pass simply finds nothing.
                result.unreadable += 1
                log.warning(
                    "cannot observe",
                    customer_id=customer_id,
                    subscription_id=subscription_id,
                    error=(getattr(err, "message", None) or repr(err))[:500],
                )
                return
            verdict = compare(sub, seen)
            result.verdicts[verdict] += 1
            if self._checked is not None:
                self._checked.labels(self.service, self.provider.name, verdict).inc()
            if verdict in ("in_sync", "unknown"):
                return
            cid = sub.command_id or "reconciler"
            if verdict == "landed":
                self.store.save(
                    applied(state, subscription_id, sub.desired, cid, self.provider.name)
                )
                await self._emit([self._done(customer_id, sub, cid, episode=None)])
                return
            episode: int | None = None
            if verdict == "drift":
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
                await self._emit([self._drift(customer_id, sub, seen, episode)])
            else:
                episode = self._episode(customer_id, subscription_id) or None
            change = Change(customer_id, subscription_id, sub.desired, cid, reason="reconcile")
            outcome = await self.handler.apply(change)
            if outcome.ok:
                result.reapplied += 1
                state = self.store.load(customer_id)
                self.store.save(
                    applied(state, subscription_id, sub.desired, cid, self.provider.name)
                )
                await self._emit([self._done(customer_id, sub, cid, episode)])
            else:
                result.failed += 1
                log.warning(
                    "re-apply failed",
                    customer_id=customer_id,
                    subscription_id=subscription_id,
                    attempts=outcome.attempts,
                    error=outcome.error,
                )
                if episode is not None:
                    await self._emit([self._failed(customer_id, sub, cid, episode, outcome)])

    def _episode(self, customer_id: str, subscription_id: str) -> int:
        memo = self.store.memo(MEMO, customer_id, subscription_id) or {}
        return int(memo.get("drifts", 0))

    def _next_episode(self, customer_id: str, subscription_id: str) -> int:
        episode = self._episode(customer_id, subscription_id) + 1
        self.store.remember(MEMO, customer_id, subscription_id, {"drifts": episode})
        return episode

    async def _emit(self, events: Sequence[EventBase]) -> None:
        for event in events:
            await self.send(Produce(ACCESS_EVENTS.name, event.customer_id.encode(), encode(event)))

    def _drift(
        self, customer_id: str, sub: SubscriptionAccess, seen: str, episode: int
    ) -> AccessDrift:
        sid = sub.subscription_id
        return AccessDrift(
            event_id=make_id("acc", customer_id, sid, "drift", str(episode)),
            event_type="access.drift",
            occurred_at=self.clock(),
            customer_id=customer_id,
            data=AccessDriftData(
                subscription_id=sid, provider=self.provider.name, desired=sub.desired, observed=seen
            ),
        )

    def _done(
        self, customer_id: str, sub: SubscriptionAccess, cid: str, episode: int | None
    ) -> EventBase:
        """The command's own event id when its change simply landed late; a re-apply after
        drift episode n gets ids of its own, so it is not taken for the first application."""
        sid, name = sub.subscription_id, self.provider.name
        word = "suspended" if sub.desired == "suspended" else "restored"
        parts = (
            (cid, sid, word) if episode is None else (cid, sid, word, "reconciled", str(episode))
        )
        if sub.desired == "suspended":
            return AccessSuspended(
                event_id=make_id("acc", *parts),
                event_type="access.suspended",
                occurred_at=self.clock(),
                customer_id=customer_id,
                data=AccessSuspendedData(command_id=cid, subscription_id=sid, provider=name),
            )
        return AccessRestored(
            event_id=make_id("acc", *parts),
            event_type="access.restored",
            occurred_at=self.clock(),
            customer_id=customer_id,
            data=AccessRestoredData(command_id=cid, subscription_id=sid, provider=name),
        )

    def _failed(
        self, customer_id: str, sub: SubscriptionAccess, cid: str, episode: int, outcome: Outcome
    ) -> AccessFailed:
        sid = sub.subscription_id
        return AccessFailed(
            event_id=make_id("acc", cid, sid, "failed", "reconciled", str(episode)),
            event_type="access.failed",
            occurred_at=self.clock(),
            customer_id=customer_id,
            data=AccessFailedData(
                command_id=cid,
                subscription_id=sid,
                provider=self.provider.name,
                attempts=outcome.attempts,
                error=outcome.error or "re-apply failed",
            ),
        )
