"""Message handlers of access-control: decode, call the pure core, apply, collect outputs.

One access command in; per subscription that needs it, one provider call (with retries and
exponential backoff) and one `access.suspended` / `access.restored` out. A subscription the
provider will not change gets `access.failed` and the command itself goes to the DLQ with the
reason, so a failure is visible twice and never silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from billstate_access_control.domain import (
    AccessEvents,
    Action,
    Command,
    CustomerAccess,
    accept,
    applied,
    decide,
    settled,
)
from billstate_access_control.providers import Change, Provider
from billstate_access_control.store import Store
from billstate_shared.contracts import AccessRestore, AccessSuspend, EventBase, decode, encode
from billstate_shared.errors import ExternalError, Refused
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.runtime.retry import RetryPolicy, Sleep, Tried
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS

log = structlog.get_logger("billstate.access_control")

MAX_ERROR = 500  # characters of a provider's error kept in events, logs and DLQ reasons


def error_text(err: BaseException | None) -> str:
    """A provider error's own message (an adapter bug or a transport error: its repr), cut to
    MAX_ERROR characters."""
    if err is None:
        return ""
    text = err.message if isinstance(err, ExternalError) else repr(err)
    return text[:MAX_ERROR]


def failure(tried: Tried) -> str:
    """Why a provider call failed for good: its last error."""
    return error_text(tried.error) or "unknown error"


def produce(event: EventBase) -> Produce:
    """An `access.*` event as the record to write, keyed by customer."""
    return Produce(ACCESS_EVENTS.name, event.customer_id.encode(), encode(event))


class AccessHandler:
    """The Loop's handler for access.commands.v1."""

    def __init__(
        self,
        *,
        store: Store,
        provider: Provider,
        retry: RetryPolicy,
        service: str = "access-control",
        metrics: Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
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
        events = AccessEvents(
            customer_id=event.customer_id, provider=self.provider.name, at=event.occurred_at
        )
        state = self.store.load(command.customer_id, [command.command_id])
        actions = decide(state, command)
        # Already applied by an earlier delivery of this command: announce again, same ids.
        outputs = [produce(events.done(a)) for a in settled(state, command)]
        state = accept(state, command)
        self.store.save(state)

        failures: list[tuple[Action, Tried]] = []
        for action in actions:
            change = Change(
                customer_id=command.customer_id,
                subscription_id=action.subscription_id,
                desired=action.desired,
                command_id=action.command_id,
                reason=data.reason,
                stage=data.stage,
            )
            tried = await self.apply(change)
            if tried.ok:
                state = self._record(state, action)
                outputs.append(produce(events.done(action)))
            else:
                failures.append((action, tried))
                outputs.append(
                    produce(events.failed(action, attempts=tried.attempts, error=failure(tried)))
                )
        if failures:
            outputs.append(self._dead_letter(record, value, event, failures))
        return outputs

    async def apply(self, change: Change) -> Tried:
        """Call the provider until it succeeds, refuses for good, or the attempts run out.

        Also the reconciler's way to re-apply, so both share one retry policy."""

        def failed(
            attempt: int,
            err: BaseException,
            retryable: bool,  # noqa: FBT001  (the shape RetryPolicy calls back with)
        ) -> None:
            log.warning(
                "provider call failed",
                provider=self.provider.name,
                subscription_id=change.subscription_id,
                desired=change.desired,
                attempt=attempt,
                retryable=retryable,
                error=error_text(err),
            )

        return await self.retry.attempt(
            lambda: self.provider.apply(change), sleep=self.sleep, on_failure=failed
        )

    def _record(self, state: CustomerAccess, action: Action) -> CustomerAccess:
        state = applied(
            state, action.subscription_id, action.desired, action.command_id, self.provider.name
        )
        self.store.save(state)
        return state

    def _dead_letter(
        self,
        record: Record,
        value: bytes,
        command: AccessSuspend | AccessRestore,
        failures: list[tuple[Action, Tried]],
    ) -> Produce:
        reason = "; ".join(
            f"provider {self.provider.name} could not make subscription {action.subscription_id}"
            f" {action.desired} after {tried.attempts} attempt(s): {failure(tried)}"
            for action, tried in failures
        )
        refused = Refused("data.subscription_ids", reason, command.event_type)
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(self.service, record.topic).inc()
        log.warning("dead-lettered", field=refused.field, reason=reason)
        return DeadLetter.from_record(record, self.service, refused, value=value).produce()
