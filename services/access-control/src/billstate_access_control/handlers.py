"""Message handlers of access-control: decode, call the pure core, apply, collect outputs.

One access command in; per subscription that needs it, one provider call (with retries and
exponential backoff) and one `access.suspended` / `access.restored` out. A subscription the
provider will not change gets `access.failed` and the command itself goes to the DLQ with the
reason, so a failure is visible twice and never silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from billstate_access_control.domain import (
    Action,
    Command,
    CustomerAccess,
    accept,
    applied,
    decide,
    settled,
)
from billstate_access_control.providers import Change, Provider, ProviderError
from billstate_access_control.store import Store
from billstate_shared.contracts import (
    AccessFailed,
    AccessFailedData,
    AccessRestore,
    AccessRestored,
    AccessRestoredData,
    AccessSuspend,
    AccessSuspended,
    AccessSuspendedData,
    EventBase,
    decode,
    encode,
)
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.loop import Produce, Record, Refused
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS

log = structlog.get_logger("billstate.access_control")

MAX_ERROR = 500  # characters of a provider's error kept in events and DLQ reasons


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a provider call is tried, and how long to wait in between."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1, 2, ...): base, 2x base, 4x..."""
        return float(min(self.base_delay * 2 ** (attempt - 1), self.max_delay))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one provider call ended after its retries."""

    ok: bool
    attempts: int
    error: str = ""


class AccessHandler:
    """The Loop's handler for access.commands.v1."""

    def __init__(
        self,
        *,
        store: Store,
        provider: Provider,
        retry: Retry,
        service: str = "access-control",
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.store, self.provider, self.retry = store, provider, retry
        self.service, self.metrics, self.sleep = service, metrics, sleep
        # Held per command and by the reconciler per subscription: the two never interleave
        # a read-call-write on the same subscription.
        self.lock = asyncio.Lock()

    async def __call__(self, record: Record) -> Sequence[Produce]:
        async with self.lock:
            return await self._command(record)

    async def _command(self, record: Record) -> Sequence[Produce]:
        value = record.value
        if value is None:
            raise Refused("$", "a record without a value is not an access command")
        event = decode(value)  # a ContractError goes to the DLQ through the Loop
        structlog.contextvars.bind_contextvars(
            customer_id=event.customer_id, event_id=event.event_id
        )
        if not isinstance(event, AccessSuspend | AccessRestore):
            raise Refused(
                "event_type",
                f"{event.event_type} is not an access command; "
                f"{ACCESS_COMMANDS.name} carries {' and '.join(ACCESS_COMMANDS.event_types)}",
            )
        if record.key != event.customer_id.encode():
            raise Refused("key", "the record key must be the customer_id (UTF-8)")

        data = event.data
        command = Command(
            customer_id=event.customer_id,
            command_type=event.event_type,
            command_id=data.command_id,
            subscription_ids=tuple(data.subscription_ids),
        )
        state = self.store.load(command.customer_id, [command.command_id])
        actions = decide(state, command)
        # Already applied by an earlier delivery of this command: announce again, same ids.
        outputs = [self._done(event, a) for a in settled(state, command)]
        state = accept(state, command)
        self.store.save(state)

        failures: list[tuple[Action, Outcome]] = []
        for action in actions:
            change = Change(
                customer_id=command.customer_id,
                subscription_id=action.subscription_id,
                desired=action.desired,
                command_id=action.command_id,
                reason=data.reason,
                stage=data.stage,
            )
            outcome = await self.apply(change)
            if outcome.ok:
                state = self._record(state, action)
                outputs.append(self._done(event, action))
            else:
                failures.append((action, outcome))
                outputs.append(self._failed(event, action, outcome))
        if failures:
            outputs.append(self._dead_letter(record, value, event, failures))
        return outputs

    async def apply(self, change: Change) -> Outcome:
        """Call the provider until it succeeds, refuses for good, or the attempts run out.

        Also the reconciler's way to re-apply, so both share one retry policy."""
        attempt, error = 0, ""
        while attempt < self.retry.attempts:
            attempt += 1
            wait: float | None = None
            try:
                await self.provider.apply(change)
                return Outcome(True, attempt)
            except ProviderError as err:
                error, retryable, wait = err.message, err.retryable, err.retry_after
            except Exception as err:  # an adapter bug or a transport error: worth a retry
                error, retryable = repr(err), True
            error = error[:MAX_ERROR]
            log.warning(
                "provider call failed",
                provider=self.provider.name,
                subscription_id=change.subscription_id,
                desired=change.desired,
                attempt=attempt,
                retryable=retryable,
                error=error,
            )
            if not retryable:
                break
            if attempt < self.retry.attempts:
                # The far side's Retry-After wins over our backoff, within the cap.
                delay = self.retry.delay(attempt)
                if wait is not None:
                    delay = min(max(delay, wait), max(self.retry.max_delay, delay))
                await self.sleep(delay)
        return Outcome(False, attempt, error or "unknown error")

    def _record(self, state: CustomerAccess, action: Action) -> CustomerAccess:
        state = applied(
            state, action.subscription_id, action.desired, action.command_id, self.provider.name
        )
        self.store.save(state)
        return state

    def _done(self, command: AccessSuspend | AccessRestore, action: Action) -> Produce:
        sid, cid, name = action.subscription_id, action.command_id, self.provider.name
        event: AccessSuspended | AccessRestored
        if action.desired == "suspended":
            event = AccessSuspended(
                event_id=make_id("acc", cid, sid, "suspended"),
                event_type="access.suspended",
                occurred_at=command.occurred_at,
                customer_id=command.customer_id,
                data=AccessSuspendedData(command_id=cid, subscription_id=sid, provider=name),
            )
        else:
            event = AccessRestored(
                event_id=make_id("acc", cid, sid, "restored"),
                event_type="access.restored",
                occurred_at=command.occurred_at,
                customer_id=command.customer_id,
                data=AccessRestoredData(command_id=cid, subscription_id=sid, provider=name),
            )
        return self._produce(event)

    def _failed(
        self, command: AccessSuspend | AccessRestore, action: Action, outcome: Outcome
    ) -> Produce:
        return self._produce(
            AccessFailed(
                event_id=make_id("acc", action.command_id, action.subscription_id, "failed"),
                event_type="access.failed",
                occurred_at=command.occurred_at,
                customer_id=command.customer_id,
                data=AccessFailedData(
                    command_id=action.command_id,
                    subscription_id=action.subscription_id,
                    provider=self.provider.name,
                    attempts=outcome.attempts,
                    error=outcome.error,
                ),
            )
        )

    def _produce(self, event: EventBase) -> Produce:
        return Produce(ACCESS_EVENTS.name, event.customer_id.encode(), encode(event))

    def _dead_letter(
        self,
        record: Record,
        value: bytes,
        command: AccessSuspend | AccessRestore,
        failures: list[tuple[Action, Outcome]],
    ) -> Produce:
        reason = "; ".join(
            f"provider {self.provider.name} could not make subscription {action.subscription_id}"
            f" {action.desired} after {outcome.attempts} attempt(s): {outcome.error}"
            for action, outcome in failures
        )
        letter = DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=value,
            reason=reason,
            field="data.subscription_ids",
            service=self.service,
            event_type=command.event_type,
        )
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(self.service, record.topic).inc()
        log.warning("dead-lettered", field=letter.field, reason=reason)
        return Produce(letter.dlq_topic, letter.key, value, tuple(letter.headers()))
