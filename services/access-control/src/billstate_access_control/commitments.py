"""Commitments at stake: for customers at final notice or later, the renewals and open
cancellation windows of their subscriptions, announced as `access.commitment`.

The stages come from collections.events.v1 (the handler keeps each customer's latest); a
customer back below the watched stages is no longer checked. A check reads each watched
customer's subscriptions from Partner Center (wall clock: this is the actuator, about the real
world) and announces what `domain.commitments.at_stake` finds, once per subscription and
renewal date or window: the event id says which, and the store remembers what was sent.
billstate never cancels anything; staff decide.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog

from billstate_access_control.domain.commitments import at_stake, commitment, terms
from billstate_access_control.handlers import error_text, produce
from billstate_access_control.periodic import Periodic
from billstate_access_control.providers.partner_center import PartnerCenterProvider
from billstate_access_control.store import Store
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy, Sleep
from billstate_shared.runtime.wallclock import WallClock, utc_now

log = structlog.get_logger("billstate.access_control.commitments")

Send = Callable[[Produce], Awaitable[None]]
MARK = "commitment"  # the store's mark for an announced commitment (by event id)


@dataclass
class Check:
    """What one check did."""

    customers: int = 0
    subscriptions: int = 0
    announced: int = 0
    unreadable: int = 0

    def public(self) -> dict[str, int]:
        return dict(self.__dict__)


class CommitmentWatch(Periodic):
    """`run_once` is one check of every watched customer; `run(interval)` repeats it."""

    what = "commitment check"

    def __init__(
        self,
        *,
        provider: PartnerCenterProvider,
        store: Store,
        send: Send,
        retry: RetryPolicy,
        stages: tuple[str, ...] = ("final_notice", "suspended"),
        ahead: int = 14,
        sleep: Sleep | None = None,
        clock: WallClock = utc_now,
    ) -> None:
        super().__init__()
        self.provider, self.store, self.send, self.retry = provider, store, send, retry
        self.stages, self.ahead, self.sleep, self.clock = stages, ahead, sleep, clock

    async def run_once(self) -> Check:
        result = Check()
        for customer in self.store.customers_in(self.stages):
            if self.stopping:
                break
            result.customers += 1
            try:
                await self._customer(customer, result)
            except Exception as err:  # noqa: BLE001  (one customer must not end the check)
                result.unreadable += 1
                log.warning("cannot read commitments", customer_id=customer, error=error_text(err))
        log.info("commitments checked", **result.public())
        return result

    async def _customer(self, customer: str, result: Check) -> None:
        tenant = self.provider.tenant_of(customer)
        stage = self.store.stage(customer)
        if tenant is None or stage is None:
            return
        path = f"/v1/customers/{quote(tenant, safe='')}/subscriptions"
        body: Any = await self.retry.call(lambda: self.provider.read(path), sleep=self.sleep)
        items = body.get("items") if isinstance(body, dict) else None
        now = self.clock()
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            result.subscriptions += 1
            found = terms(item, self.provider.subscription_of(item["id"]))
            for stake in at_stake(found, now, self.ahead, stage):
                event = commitment(customer, self.provider.name, found, stake, now)
                if self.store.marked(MARK, event.event_id):
                    continue
                await self.send(produce(event))
                self.store.mark(MARK, event.event_id, now)
                result.announced += 1
                log.info(
                    "commitment at stake",
                    customer_id=customer,
                    subscription_id=found.subscription_id,
                    event_id=event.event_id,
                )
