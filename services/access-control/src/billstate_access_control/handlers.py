"""Message handlers of access-control: decode, call the pure core, apply, collect outputs.

One access command in; per subscription that needs it, one provider call (with retries and
exponential backoff) and one `access.suspended` / `access.restored` out. A subscription the
provider will not change gets `access.failed` and the command itself goes to the DLQ with the
reason, so a failure is visible twice and never silent.

Each command has a time budget (`Budget.seconds`) for its provider calls and the waits between
them. A command that runs out of it (a provider throttling with a long Retry-After, or too slow
to answer) is *parked*: kept in the store with the time of its next attempt, announced to staff
once (`access.failed`, its error starting with `parked`), and the partition moves on. The
`Reattempts` task (reattempt.py) applies it again when it is due, under the same desired-state
rules: a later command for a subscription supersedes what a parked one wanted.

A new command whose `sequence` is lower than the highest accepted for the customer is stale:
refused before any provider call, to the DLQ with the reason.

The guards (guards.py) come before any of that for a new suspend command that would change
something: a silent payment feed or the brake *holds* it (`access.parked`), without accepting
it, so it never becomes desired state and neither the reconciler nor the re-attempts touch
it. Only a person's `access.approve` on access.approvals.v1 applies it (through the same path,
bypassing the guards); `access.reject` drops it; a restore for its subscriptions cancels it.
Each ends with one `access.unparked`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from prometheus_client import Counter, Gauge, Histogram

from billstate_access_control.domain import (
    AccessEvents,
    Action,
    Command,
    CustomerAccess,
    Decided,
    Hold,
    accept,
    applied,
    decide,
    park_delay,
    parked,
    remaining,
    settled,
    stale,
    unparked,
)
from billstate_access_control.guards import Guards
from billstate_access_control.providers import Change, Provider, recording
from billstate_access_control.store import Held, HeldState, Parked, Store
from billstate_shared.contracts import (
    AccessApprove,
    AccessReject,
    AccessRestore,
    AccessSuspend,
    Event,
    EventBase,
    ProviderExchange,
    StageEntered,
    decode,
    encode,
)
from billstate_shared.errors import ExternalError, Refused
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.runtime.retry import RetryPolicy, Sleep, Tried
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, APPROVALS, EVENTS, Topic

log = structlog.get_logger("billstate.access_control")

MAX_ERROR = 500  # characters of a provider's error kept in events, logs and DLQ reasons
MAX_TEXT = 1_000  # characters of a reason in an event (the contracts' limit)
# Who ends a held command that no person decided on (a restore cancelled it).
SELF = "access-control"
GUARDS = ("brake", "stale_payment_feed")
# The memo slot keeping a parked change's exchanges, so the parking announced again after a
# redelivery is the same event, exchanges and all.
PARKED_MEMO = "parked-exchanges"


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


def _held_now(store: Store, guard: str) -> Callable[[], float]:
    """The gauge of the commands `guard` holds now."""
    return lambda: float(store.held_count(guard))


def _outcome(state: HeldState) -> Decided:
    """How an ended held command is told in `access.unparked`."""
    assert state != "held"
    return state


class OutOfBudgetError(ExternalError):
    """The time left of a command's budget does not cover the next provider call or wait.
    `last` is the provider's last error (a 429, a timeout), if there was one."""

    def __init__(
        self,
        message: str,
        *,
        last: BaseException | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=False, retry_after=retry_after)
        self.last = last


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """How long one command may spend on provider calls and waits (`seconds`; None: no
    limit), and when a parked command is tried again: `park_delay` after its first parking,
    doubling each time it is parked again, or the provider's Retry-After when that is longer,
    at most `park_max_delay`."""

    seconds: float | None = None
    park_delay: float = 60.0
    park_max_delay: float = 900.0


@dataclass(frozen=True, slots=True)
class Stored:
    """A parked command's original record, as the handler reads records."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, parked: Parked) -> Stored:
        return cls(parked.topic, parked.partition, parked.offset, parked.key, parked.value)

    @classmethod
    def of_held(cls, held: Held) -> Stored:
        return cls(held.topic, held.partition, held.offset, held.key, held.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a re-attempt of a parked command produced, and what to keep once those outputs
    are acknowledged: the command parked again (updated), or None (nothing left to do)."""

    outputs: list[Produce]
    parked: Parked | None


@dataclass(frozen=True, slots=True)
class Applied(Tried):
    """How a change ended after its retries, with every exchange its provider calls noted,
    in order: the evidence its `access.failed` or `access.drift` carries."""

    exchanges: tuple[ProviderExchange, ...] = ()


@dataclass
class _Run:
    """What one pass over a command's actions did; `exchanges` per subscription that failed
    or was left unfinished."""

    state: CustomerAccess
    done: list[Action] = field(default_factory=list)
    failures: list[tuple[Action, Applied]] = field(default_factory=list)
    unfinished: list[Action] = field(default_factory=list)
    out_of_budget: OutOfBudgetError | None = None
    calls: int = 0
    exchanges: dict[str, tuple[ProviderExchange, ...]] = field(default_factory=dict)


class AccessHandler:
    """The Loop's handler for access.commands.v1, and the parked commands' re-attempts.

    `clock` is the wall clock (when a parked command is due: about the real world, never a
    business decision); `monotonic` measures the budget; `on_attempt` hears of every provider
    call, so the probes see a worker that is busy, not stalled.
    """

    def __init__(
        self,
        *,
        store: Store,
        provider: Provider,
        retry: RetryPolicy,
        service: str = "access-control",
        metrics: Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
        budget: Budget | None = None,
        clock: WallClock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        on_attempt: Callable[[], None] | None = None,
        guards: Guards | None = None,
    ) -> None:
        self.store, self.provider, self.retry = store, provider, retry
        self.guards = guards
        self.service, self.metrics, self.sleep = service, metrics, sleep
        self.budget = budget if budget is not None else Budget()
        self.clock, self.monotonic, self.on_attempt = clock, monotonic, on_attempt
        # Held per command and by the reconciler per subscription: the two never interleave
        # a read-call-write on the same subscription.
        self.lock = asyncio.Lock()
        self._calls: Counter | None = None
        self._seconds: Histogram | None = None
        self._stale: Counter | None = None
        self._parkings: Counter | None = None
        self._holds: Counter | None = None
        self._decisions: Counter | None = None
        if metrics is not None:
            registry = metrics.registry
            self._calls = Counter(
                "billstate_provider_calls", "Provider calls, by outcome",
                ["service", "provider", "outcome"], registry=registry,
            )  # fmt: skip
            self._seconds = Histogram(
                "billstate_provider_call_seconds", "Time one provider call took, any outcome",
                ["service", "provider"], registry=registry,
                buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            )  # fmt: skip
            self._stale = Counter(
                "billstate_access_stale_commands", "Commands refused as older than one applied",
                ["service"], registry=registry,
            )  # fmt: skip
            self._parkings = Counter(
                "billstate_access_parkings", "Commands parked after their time budget ran out",
                ["service"], registry=registry,
            )  # fmt: skip
            parked = Gauge(
                "billstate_access_parked_commands", "Commands parked now, waiting to be retried",
                ["service"], registry=registry,
            )  # fmt: skip
            parked.labels(service).set_function(lambda: float(store.parked_count()))
            self._holds = Counter(
                "billstate_access_guard_parks", "Suspend commands held back by a guard",
                ["service", "guard"], registry=registry,
            )  # fmt: skip
            self._decisions = Counter(
                "billstate_access_guard_decisions",
                "How held suspend commands ended: approved, rejected, cancelled",
                ["service", "outcome"], registry=registry,
            )  # fmt: skip
            waiting = Gauge(
                "billstate_access_awaiting_approval",
                "Suspend commands held back by a guard now, waiting for a person",
                ["service", "guard"], registry=registry,
            )  # fmt: skip
            for guard in GUARDS:
                waiting.labels(service, guard).set_function(_held_now(store, guard))

    async def __call__(self, record: Record) -> Sequence[Produce]:
        async with self.lock:
            if record.topic == APPROVALS.name:
                return await self._decision(record)
            if record.topic == EVENTS.name:
                return self._stage(record)
            return await self._command(record)

    def _stage(self, record: Record) -> Sequence[Produce]:
        """A customer's collections stage, kept for the commitment checks; nothing to send."""
        event = _decoded(record, EVENTS, "a stage change")
        if not isinstance(event, StageEntered):  # pragma: no cover
            raise TypeError(event.event_type)  # _decoded checked the topic's types
        self.store.set_stage(event.customer_id, event.data.stage, event.data.as_of.isoformat())
        return []

    def deadline(self) -> float | None:
        """When a piece of work started now must end (the monotonic clock), or None."""
        seconds = self.budget.seconds
        return None if seconds is None else self.monotonic() + seconds

    # -- a command from the topic ---------------------------------------------------------

    def _decode(self, record: Record) -> tuple[AccessSuspend | AccessRestore, Command]:
        event = _decoded(record, ACCESS_COMMANDS, "an access command")
        if not isinstance(event, AccessSuspend | AccessRestore):  # pragma: no cover
            raise TypeError(event.event_type)  # _decoded checked the topic's types
        data = event.data
        command = Command(
            customer_id=event.customer_id,
            command_type=event.event_type,
            command_id=data.command_id,
            subscription_ids=tuple(data.subscription_ids),
            sequence=data.sequence,
        )
        return event, command

    def _events(self, event: AccessSuspend | AccessRestore) -> AccessEvents:
        return AccessEvents(
            customer_id=event.customer_id, provider=self.provider.name, at=event.occurred_at
        )

    async def _command(self, record: Record) -> Sequence[Produce]:
        event, command = self._decode(record)
        held = self.store.held(command.customer_id, command.command_id)
        if held is not None and held.state != "approved":
            # Delivered again while held, or after it was rejected or cancelled: announce
            # again (same ids), in case the first announcement was lost; nothing else.
            return [self._announce(held, event)]
        state = self.store.load(command.customer_id, [command.command_id])
        why = stale(state, command)
        if why is not None:
            if self._stale is not None:
                self._stale.labels(self.service).inc()
            log.warning("stale command", sequence=command.sequence, newest=state.sequence)
            raise Refused("data.sequence", why, event.event_type)  # no provider call: DLQ

        outputs: list[Produce] = []
        if isinstance(event, AccessRestore):
            outputs += self._cancel(event, command)
        elif command.command_id not in state.seen and decide(state, command):
            verdict = None if self.guards is None else self.guards.check(self.provider.name)
            if verdict is not None:
                return [self._hold(record, event, command, verdict)]
            self._tally(command)
        return outputs + await self._through(record, event, command, state)

    async def _through(
        self,
        record: Record,
        event: AccessSuspend | AccessRestore,
        command: Command,
        state: CustomerAccess,
    ) -> list[Produce]:
        """A command past the stale rule and the guards: accepted and applied, or announced
        again when an earlier delivery applied (or parked) it."""
        events = self._events(event)
        # Already applied by an earlier delivery of this command: announce again, same ids.
        outputs = [produce(events.done(a)) for a in settled(state, command)]
        waiting = self.store.parked(command.customer_id, command.command_id)
        if waiting:
            # Delivered again while parked (a crash before its offset was committed, or a
            # re-drive): what is left is the re-attempt's to do, when it is due. Announce the
            # parking again, same ids, in case the first announcement was lost.
            parked_now = waiting[0]
            outputs += [
                produce(
                    events.parked(
                        a,
                        attempts=parked_now.attempts,
                        error=parked_now.last_error,
                        exchanges=self._parked_exchanges(command.customer_id, a),
                    )
                )
                for a in decide(state, command)
            ]
            return outputs

        actions = decide(state, command)
        state = accept(state, command)
        self.store.save(state)
        run = await self._run(state, command, actions, event)
        outputs += [produce(events.done(a)) for a in run.done]
        if run.unfinished:
            again = self._park(record, command, run, previous=None)
            self.store.park(again)
            outputs += self._parked(events, again, run)
        outputs += self._failed(record, event, events, run)
        return outputs

    # -- the guards: hold, announce, cancel, decide ----------------------------------------

    def _tally(self, command: Command) -> None:
        """A suspend command goes to the provider: one more in the brake's window."""
        if self.guards is not None:
            self.guards.count(self.provider.name, command.customer_id, command.command_id)

    def _hold(
        self,
        record: Record,
        event: AccessSuspend | AccessRestore,
        command: Command,
        verdict: Hold,
    ) -> Produce:
        """Keep the suspend command for a person to decide on, counted in its guard's open
        batch; it is not accepted: no desired state changes."""
        assert self.guards is not None
        assert record.value is not None
        held = self.store.hold(
            Held(
                customer_id=command.customer_id,
                command_id=command.command_id,
                guard=verdict.guard,
                reason=verdict.reason[:MAX_TEXT],
                provider=self.provider.name,
                subscription_ids=command.targets(),
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                held_at=self.clock(),
            ),
            self.guards.settle,
        )
        if self._holds is not None:
            self._holds.labels(self.service, verdict.guard).inc()
        log.warning(
            "suspension held back",
            command_id=command.command_id,
            guard=verdict.guard,
            reason=verdict.reason,
            batch_id=held.batch_id,
        )
        return self._announce(held, event)

    def _announce(self, held: Held, event: AccessSuspend | AccessRestore) -> Produce:
        """The held command's `access.parked` (still held) or `access.unparked` (ended)."""
        if held.state == "held":
            return produce(
                parked(
                    customer_id=held.customer_id,
                    command_id=held.command_id,
                    subscription_ids=held.subscription_ids,
                    provider=held.provider,
                    guard=held.guard,
                    reason=held.reason,
                    at=event.occurred_at,
                )
            )
        assert held.ended_at is not None
        return produce(
            unparked(
                customer_id=held.customer_id,
                command_id=held.command_id,
                outcome=_outcome(held.state),
                by=held.decided_by or SELF,
                reason=held.decided_why or "",
                at=held.ended_at,
            )
        )

    def _end(
        self, held: Held, state: Decided, *, by: str, why: str, at: datetime, ended_by: str
    ) -> Held:
        ended = self.store.end(held, state, by=by, why=why[:MAX_TEXT], at=at, ended_by=ended_by)
        if self._decisions is not None:
            self._decisions.labels(self.service, state).inc()
        log.info("held suspension ended", command_id=held.command_id, outcome=state, by=by)
        return ended

    def _cancel(self, event: AccessRestore, command: Command) -> list[Produce]:
        """A restore takes its subscriptions out of the customer's held suspensions; one left
        with none is cancelled (the customer paid while it waited: never touched). A restore
        delivered again announces its cancellations again."""
        mark = f"command:{command.command_id}"
        outputs = [self._announce(h, event) for h in self.store.ended_by(command.customer_id, mark)]
        for held in self.store.holding(command.customer_id):
            left = remaining(held.subscription_ids, command.targets())
            if left == held.subscription_ids:
                continue
            if left:
                self.store.narrow(held.customer_id, held.command_id, left)
                log.info(
                    "held suspension narrowed by a restore",
                    command_id=held.command_id,
                    restore=command.command_id,
                    left=list(left),
                )
                continue
            why = (
                f"restore {command.command_id} came first for the same subscriptions:"
                " the customer is not suspended"
            )
            ended = self._end(
                held, "cancelled", by=SELF, why=why, at=event.occurred_at, ended_by=mark
            )
            outputs.append(self._announce(ended, event))
        return outputs

    def _decode_decision(self, record: Record) -> AccessApprove | AccessReject:
        decision = _decoded(record, APPROVALS, "a decision")
        if not isinstance(decision, AccessApprove | AccessReject):  # pragma: no cover
            raise TypeError(decision.event_type)  # _decoded checked the topic's types
        return decision

    async def _decision(self, record: Record) -> Sequence[Produce]:
        """An operator's approve or reject of a held suspend command. The same record
        delivered again announces again what it did; any other decision on a command that is
        not held (unknown, applied, rejected, cancelled) changes nothing."""
        decision = self._decode_decision(record)
        data = decision.data
        held = self.store.held(decision.customer_id, data.command_id)
        here = f"{record.topic}:{record.partition}:{record.offset}"
        if held is None or (held.state != "held" and held.ended_by != here):
            log.info(
                "decision on a command that is not held: nothing to do",
                command_id=data.command_id,
                decision=decision.event_type,
                state="unknown" if held is None else held.state,
            )
            return []
        stored = Stored.of_held(held)
        event, _ = self._decode(stored)
        if held.state in ("rejected", "cancelled"):
            return [self._announce(held, event)]  # this record ended it: announce again
        if isinstance(decision, AccessReject):
            ended = self._end(
                held,
                "rejected",
                by=data.by,
                why=data.reason,
                at=decision.occurred_at,
                ended_by=here,
            )
            return [self._announce(ended, event)]
        return await self._approve(held, stored, event, decision, here)

    async def _approve(
        self,
        held: Held,
        stored: Stored,
        event: AccessSuspend | AccessRestore,
        decision: AccessApprove,
        here: str,
    ) -> list[Produce]:
        """Apply a held suspend command now, past the guards (it still counts in the brake's
        window), unless a newer command for the customer made it stale."""
        command = Command(
            customer_id=held.customer_id,
            command_type="access.suspend",
            command_id=held.command_id,
            subscription_ids=held.subscription_ids,
            sequence=event.data.sequence,
        )
        state = self.store.load(command.customer_id, [command.command_id])
        why = stale(state, command)
        if why is not None and held.state == "held":
            if self._stale is not None:
                self._stale.labels(self.service).inc()
            ended = self._end(
                held,
                "cancelled",
                by=SELF,
                why=f"approved by {decision.data.by}, but {why}: not applied",
                at=decision.occurred_at,
                ended_by=here,
            )
            return [self._announce(ended, event)]
        if held.state == "held":
            held = self._end(
                held,
                "approved",
                by=decision.data.by,
                why=decision.data.reason,
                at=decision.occurred_at,
                ended_by=here,
            )
        self._tally(command)
        outputs = [self._announce(held, event)]
        return outputs + await self._through(stored, event, command, state)

    # -- a parked command, when it is due ------------------------------------------------

    async def reattempt(self, parked: Parked) -> Outcome:
        """Apply a parked command's unfinished subscriptions again. The caller holds `lock`,
        sends the outputs, and then keeps `Outcome.parked` (or unparks the command).

        A subscription that a later command has taken over, or that the reconciler has
        finished meanwhile, needs no call; when nothing is left, the command is done."""
        record = Stored.of(parked)
        event, command = self._decode(record)
        events = self._events(event)
        state = self.store.load(command.customer_id, [command.command_id])
        actions = decide(state, command)
        if not actions:
            log.info("parked command has nothing left to do", command_id=command.command_id)
            return Outcome([produce(events.done(a)) for a in settled(state, command)], None)
        run = await self._run(state, command, actions, event)
        outputs = [produce(events.done(a)) for a in run.done]
        outputs += self._failed(record, event, events, run)
        again = self._park(record, command, run, previous=parked) if run.unfinished else None
        log.info(
            "parked command tried again",
            command_id=command.command_id,
            applied=len(run.done),
            failed=len(run.failures),
            parked_again=again is not None,
        )
        return Outcome(outputs, again)

    # -- the provider calls of one command ---------------------------------------------

    async def _run(
        self,
        state: CustomerAccess,
        command: Command,
        actions: Sequence[Action],
        event: AccessSuspend | AccessRestore,
    ) -> _Run:
        """Each action through the provider, within one budget; once the budget is spent the
        remaining actions are left unfinished, without a call."""
        deadline = self.deadline()
        run = _Run(state)
        for action in actions:
            if run.out_of_budget is not None:
                run.unfinished.append(action)
                continue
            change = Change(
                customer_id=command.customer_id,
                subscription_id=action.subscription_id,
                desired=action.desired,
                command_id=action.command_id,
                reason=event.data.reason,
                stage=event.data.stage,
            )
            tried = await self.apply(change, deadline=deadline)
            run.calls += tried.attempts
            if tried.ok:
                run.state = self._record(run.state, action)
                run.done.append(action)
            elif isinstance(tried.error, OutOfBudgetError):
                run.out_of_budget = tried.error
                run.unfinished.append(action)
                run.exchanges[action.subscription_id] = tried.exchanges
            else:
                run.failures.append((action, tried))
        return run

    async def apply(self, change: Change, deadline: float | None = None) -> Applied:
        """Call the provider until it succeeds, refuses for good, the attempts run out, or the
        next call or wait would end after `deadline` (the monotonic clock; None: no limit).

        `Tried.attempts` counts the provider calls made; out of time, `Tried.error` is an
        `OutOfBudgetError` carrying the provider's last error; `Applied.exchanges` are the
        requests those calls made. Also the reconciler's way to re-apply, so both share one
        retry policy."""
        calls = 0
        last: BaseException | None = None

        def failed(
            attempt: int,
            err: BaseException,
            retryable: bool,  # noqa: FBT001  (the shape RetryPolicy calls back with)
        ) -> None:
            nonlocal last
            if isinstance(err, OutOfBudgetError):
                return
            last = err
            log.warning(
                "provider call failed",
                provider=self.provider.name,
                subscription_id=change.subscription_id,
                desired=change.desired,
                attempt=attempt,
                retryable=retryable,
                error=error_text(err),
            )

        def spent(wait: float = 0.0) -> OutOfBudgetError:
            hint = last.retry_after if isinstance(last, ExternalError) else None
            why = f"the next call would wait {wait:g}s" if wait else "no time left for a call"
            return OutOfBudgetError(f"out of time budget: {why}", last=last, retry_after=hint)

        async def call() -> None:
            nonlocal calls
            if deadline is not None and deadline - self.monotonic() <= 0:
                raise spent()
            calls += 1
            await self._call(change, deadline, last)

        async def wait(seconds: float) -> None:
            if deadline is not None and self.monotonic() + seconds >= deadline:
                raise spent(seconds)
            await self.sleep(seconds)

        with recording() as journal:
            tried = await self.retry.attempt(call, sleep=wait, on_failure=failed)
        return Applied(ok=tried.ok, attempts=calls, error=tried.error, exchanges=tuple(journal))

    async def _call(
        self, change: Change, deadline: float | None, last: BaseException | None
    ) -> None:
        """One provider call, told to the probes and counted by outcome."""
        if self.on_attempt is not None:
            self.on_attempt()
        started = time.perf_counter()
        try:
            await self._within(change, deadline, last)
        except OutOfBudgetError:
            self._count("out_of_budget", started)
            raise
        except ExternalError as err:
            self._count("retryable" if err.retryable else "final", started)
            raise
        except Exception:
            self._count("retryable", started)
            raise
        self._count("ok", started)

    async def _within(
        self, change: Change, deadline: float | None, last: BaseException | None
    ) -> None:
        """One provider call, cut short when the deadline passes."""
        if deadline is None:
            await self.provider.apply(change)
            return
        limit = asyncio.timeout(deadline - self.monotonic())
        try:
            async with limit:
                await self.provider.apply(change)
        except TimeoutError as err:
            if not limit.expired():
                raise
            # Cut short by the budget: the call may have landed all the same, which the next
            # attempt (a read first) or the reconciler finds.
            cut = ExternalError(
                f"{self.provider.name} call cut short by the time budget", retryable=True
            )
            raise OutOfBudgetError("out of time budget during a call", last=last or cut) from err

    def _count(self, outcome: str, started: float) -> None:
        if self._calls is not None:
            self._calls.labels(self.service, self.provider.name, outcome).inc()
        if self._seconds is not None:
            self._seconds.labels(self.service, self.provider.name).observe(
                time.perf_counter() - started
            )

    def _record(self, state: CustomerAccess, action: Action) -> CustomerAccess:
        state = applied(
            state, action.subscription_id, action.desired, action.command_id, self.provider.name
        )
        self.store.save(state)
        return state

    # -- parking and failing --------------------------------------------------------------

    def _park(self, record: Record, command: Command, run: _Run, previous: Parked | None) -> Parked:
        """The command parked (again), due after `park_delay` (or the Retry-After)."""
        assert run.out_of_budget is not None
        assert record.value is not None
        spent = run.out_of_budget
        parks = 1 if previous is None else previous.parks + 1
        attempts = run.calls + (0 if previous is None else previous.attempts)
        now = self.clock()
        delay = park_delay(
            parks, spent.retry_after, self.budget.park_delay, self.budget.park_max_delay
        )
        due = now + timedelta(seconds=delay)
        budget = f"{self.budget.seconds:g}s " if self.budget.seconds is not None else ""
        last = error_text(spent.last) or spent.message
        error = (
            f"parked: the {budget}time budget ran out after {attempts} provider call(s);"
            f" last error: {last}; next attempt at {due.isoformat(timespec='seconds')}"
        )[:MAX_ERROR]
        if self._parkings is not None:
            self._parkings.labels(self.service).inc()
        log.warning(
            "command parked",
            command_id=command.command_id,
            subscriptions=[a.subscription_id for a in run.unfinished],
            parks=parks,
            next_attempt=due.isoformat(),
            error=last,
        )
        return Parked(
            customer_id=command.customer_id,
            command_id=command.command_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            parks=parks,
            attempts=attempts,
            parked_at=now if previous is None else previous.parked_at,
            next_attempt=due,
            last_error=error,
        )

    def _parked(self, events: AccessEvents, parked: Parked, run: _Run) -> list[Produce]:
        """`access.failed` (parked) per unfinished subscription, with its calls' exchanges,
        written down first for an announcement again (`_parked_exchanges`)."""
        outputs = []
        for a in run.unfinished:
            exchanges = run.exchanges.get(a.subscription_id, ())
            memo = {
                "command_id": a.command_id,
                "exchanges": [x.model_dump(mode="json") for x in exchanges],
            }
            self.store.remember(PARKED_MEMO, parked.customer_id, a.subscription_id, memo)
            event = events.parked(
                a, attempts=parked.attempts, error=parked.last_error, exchanges=exchanges
            )
            outputs.append(produce(event))
        return outputs

    def _parked_exchanges(self, customer_id: str, action: Action) -> list[ProviderExchange]:
        """The exchanges a parking of `action` was first announced with."""
        memo = self.store.memo(PARKED_MEMO, customer_id, action.subscription_id) or {}
        if memo.get("command_id") != action.command_id:
            return []
        return [ProviderExchange.model_validate(x) for x in memo.get("exchanges", [])]

    def _failed(
        self,
        record: Record,
        event: AccessSuspend | AccessRestore,
        events: AccessEvents,
        run: _Run,
    ) -> list[Produce]:
        """`access.failed` per subscription that failed for good, and the command's dead
        letter naming them all."""
        if not run.failures:
            return []
        outputs = [
            produce(
                events.failed(
                    action,
                    attempts=tried.attempts,
                    error=failure(tried),
                    exchanges=tried.exchanges,
                )
            )
            for action, tried in run.failures
        ]
        assert record.value is not None
        outputs.append(self._dead_letter(record, record.value, event, run.failures))
        return outputs

    def _dead_letter(
        self,
        record: Record,
        value: bytes,
        command: AccessSuspend | AccessRestore,
        failures: list[tuple[Action, Applied]],
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


def _decoded(record: Record, topic: Topic, what: str) -> Event:
    """A record of `topic` as its event: a value, a type the topic carries, keyed by its
    customer; anything else is refused (to the topic's DLQ, through the Loop)."""
    value = record.value
    if value is None:
        raise Refused("$", f"a record without a value is not {what}")
    event = decode(value)  # a ContractError goes to the DLQ through the Loop
    structlog.contextvars.bind_contextvars(customer_id=event.customer_id, event_id=event.event_id)
    if event.event_type not in topic.event_types:
        raise Refused(
            "event_type",
            f"{event.event_type} is not {what}; "
            f"{topic.name} carries {' and '.join(topic.event_types)}",
        )
    if record.key != event.customer_id.encode():
        raise Refused("key", "the record key must be the customer_id (UTF-8)")
    return event
