"""The guards at the actuator, at work: what they read (the store, the wall clock, the payment
feed's newest record) and the staff notice per batch of held suspensions.

The rules themselves are pure (domain/guards.py). Both guards read the wall clock on purpose:
they are about the real world (how many customers lost access today, whether the partner's
payment feed still speaks), not about business time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from billstate_access_control.domain import (
    FIRST_CUSTOMERS,
    WINDOW,
    Hold,
    approval_needed,
    approval_reason,
    brake,
    stale_feed,
)
from billstate_access_control.periodic import Periodic
from billstate_access_control.store import Store
from billstate_shared.contracts import encode
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.wallclock import WallClock
from billstate_shared.topics import ACCESS_EVENTS, PAYMENTS

log = structlog.get_logger("billstate.access_control.guards")

Send = Callable[[Produce], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardSettings:
    """`cap`: suspend commands a provider may apply per rolling 24 hours (0: no brake);
    `feed_limit`: seconds the payment feed may be silent (0: no guard); `feed_topic`: the
    topic whose newest record tells; `settle`: seconds a batch of held commands gathers
    before staff are told."""

    cap: int = 50
    feed_limit: float = 36 * 3600.0
    feed_topic: str = PAYMENTS.name
    settle: float = 60.0


class PaymentFeed:
    """What the feed watcher last found: the newest record's time on the payments topic
    (None: the topic has no record), and whether it has looked at all."""

    def __init__(self, topic: str = PAYMENTS.name) -> None:
        self.topic = topic
        self.newest: datetime | None = None
        self.checked = False

    def saw(self, newest: datetime | None) -> None:
        """A look at the topic found `newest`. The feed never goes back in time: a look that
        finds an older record, or none (retention removed them), keeps what was seen."""
        if self.newest is not None and (newest is None or newest < self.newest):
            newest = self.newest
        self.newest, self.checked = newest, True

    def age(self, now: datetime) -> float:
        """Seconds since the newest record; infinite for a topic without one."""
        if self.newest is None:
            return float("inf")
        return max((now - self.newest).total_seconds(), 0.0)


class Guards:
    """Whether a suspend command may go to the provider now, and the brake's count."""

    def __init__(
        self, *, settings: GuardSettings, store: Store, feed: PaymentFeed, clock: WallClock
    ) -> None:
        self.settings, self.store, self.feed, self.clock = settings, store, feed, clock

    def check(self, provider: str) -> Hold | None:
        """The guard that holds a new suspend command back, or None: the silent feed first
        (it says the data cannot be trusted), then the brake."""
        now = self.clock()
        silent = stale_feed(
            newest=self.feed.newest,
            now=now,
            limit=self.settings.feed_limit,
            topic=self.feed.topic,
        )
        if silent is not None:
            return silent
        if self.settings.cap <= 0:
            return None
        return brake(
            applied=self.store.suspensions_since(provider, now - WINDOW),
            held=self.store.held_count("brake", provider),
            cap=self.settings.cap,
            provider=provider,
        )

    def count(self, provider: str, customer_id: str, command_id: str) -> None:
        """A suspend command goes to the provider: it counts in the brake's window (once)."""
        self.store.log_suspension(provider, customer_id, command_id, self.clock())

    @property
    def settle(self) -> timedelta:
        return timedelta(seconds=self.settings.settle)


class Announcer(Periodic):
    """Once a batch's settle window has passed, one `access.approval_needed` for it: the
    count, the first customers, the guard's reason and how to act. Sent and acknowledged
    before the batch is marked announced (a crash in between announces it again, same id);
    under the handler's lock, so no command joins the batch meanwhile."""

    what = "approval notice round"

    def __init__(
        self,
        *,
        store: Store,
        lock: asyncio.Lock,
        send: Send,
        clock: WallClock,
    ) -> None:
        super().__init__()
        self.store, self.lock, self.send, self.clock = store, lock, send, clock

    async def run_once(self) -> int:
        """Announce every batch that is due; how many."""
        told = 0
        async with self.lock:
            for batch in self.store.due_batches(self.clock()):
                members = self.store.batch_members(batch.batch_id)
                if members:
                    customers = tuple(dict.fromkeys(m.customer_id for m in members))
                    event = approval_needed(
                        batch_id=batch.batch_id,
                        guard=batch.guard,
                        count=len(members),
                        customer_ids=customers[:FIRST_CUSTOMERS],
                        reason=approval_reason(
                            batch.guard, len(members), batch.provider, members[0].reason
                        )[:1000],
                        at=batch.closes_at,
                    )
                    await self.send(
                        Produce(ACCESS_EVENTS.name, event.customer_id.encode(), encode(event))
                    )
                    log.warning(
                        "approval needed",
                        batch_id=batch.batch_id,
                        guard=batch.guard,
                        provider=batch.provider,
                        count=len(members),
                    )
                    told += 1
                self.store.announced(batch.batch_id)
        return told
