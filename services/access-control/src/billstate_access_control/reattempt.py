"""Parked commands tried again when they are due, in the background, off the consumer's path.

A command whose time budget ran out (see handlers.py) waits in the store with the time of its
next attempt. Every `interval` seconds this task takes the commands that are due, one at a time
under the handler's lock (so a command from the topic, the reconciler and a re-attempt never
work on the same subscription at once), applies what is still theirs to apply, sends the
outputs, and only then forgets the parked command or parks it again: a crash in between
leaves it parked, and the next attempt finds the work done and announces it again under the
same event ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from billstate_access_control.handlers import AccessHandler, Stored
from billstate_access_control.periodic import Periodic
from billstate_access_control.store import Store
from billstate_shared.errors import Refused
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.wallclock import WallClock

log = structlog.get_logger("billstate.access_control.reattempt")

Send = Callable[[Produce], Awaitable[None]]


class Reattempts(Periodic):
    """`run_once` tries every parked command that is due; `run` repeats it every `interval`
    seconds until `stop()`."""

    what = "re-attempt round"

    def __init__(
        self,
        *,
        store: Store,
        handler: AccessHandler,
        send: Send,
        clock: WallClock,
        batch: int = 100,
    ) -> None:
        super().__init__()
        self.store, self.handler, self.send = store, handler, send
        self.clock, self.batch = clock, batch

    async def run_once(self) -> int:
        """Try the parked commands due now; how many were tried."""
        tried = 0
        for due in self.store.due(self.clock(), self.batch):
            if self.stopping:
                break
            async with self.handler.lock:
                # Read again under the lock: it may have been tried or re-parked meanwhile.
                current = self.store.parked(due.customer_id, due.command_id)
                if not current or current[0].next_attempt > self.clock():
                    continue
                structlog.contextvars.bind_contextvars(customer_id=due.customer_id)
                try:
                    try:
                        outcome = await self.handler.reattempt(current[0])
                    except Refused as err:
                        # It decoded when it was parked; a release in between refuses it now.
                        letter = DeadLetter.from_record(
                            Stored.of(current[0]), self.handler.service, err
                        )
                        await self.send(letter.produce())
                        self.store.unpark(due.customer_id, due.command_id)
                        log.warning("parked command refused", field=err.field, reason=err.reason)
                        continue
                    for out in outcome.outputs:
                        await self.send(out)
                    if outcome.parked is None:
                        self.store.unpark(due.customer_id, due.command_id)
                    else:
                        self.store.park(outcome.parked)
                finally:
                    structlog.contextvars.unbind_contextvars("customer_id", "event_id")
            tried += 1
        return tried
