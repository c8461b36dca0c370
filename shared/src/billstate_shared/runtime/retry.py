"""The one retry policy: exponential backoff that honours a Retry-After up to a ceiling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from billstate_shared.errors import ExternalError, Refused

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
OnFailure = Callable[[int, BaseException, bool], object]  # attempt (1-based), error, retryable


def retryable(err: BaseException) -> bool:
    """Whether trying again may help: an external error says so itself; refused input never
    will; anything else (a transport error, a broker moving a partition) may."""
    if isinstance(err, ExternalError):
        return err.retryable
    return not isinstance(err, Refused)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tried:
    """How a call ended after its retries: `error` is the last one when it did not succeed."""

    ok: bool
    attempts: int
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `attempts` tries; after failed try n, wait `base_delay` x 2^(n-1), at most
    `max_delay`. A far side's Retry-After wins over the backoff, within the same ceiling (or
    the backoff itself, should that be longer)."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed try number `attempt` (1, 2, ...)."""
        backoff = float(min(self.base_delay * 2 ** (attempt - 1), self.max_delay))
        if retry_after is None:
            return backoff
        return min(max(backoff, retry_after), max(self.max_delay, backoff))

    async def call(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        sleep: Sleep | None = None,
        on_failure: OnFailure | None = None,
    ) -> T:
        """`work()`'s result, trying again while the error is retryable and tries remain;
        otherwise the last error is raised. `on_failure` hears of every failed try."""

        pause = sleep if sleep is not None else asyncio.sleep
        # The first try outside tenacity: it is every record's path, and a retrying object
        # costs more than most handlers; tenacity takes over from the second try.
        try:
            return await work()
        except Exception as err:
            again = retryable(err)
            if on_failure is not None:
                on_failure(1, err, again)
            if not again or self.attempts <= 1:
                raise
            await pause(self.delay(1, _hint(err)))

        async def once() -> T:
            try:
                return await work()
            except Exception as err:
                if on_failure is not None:
                    number = tries.statistics.get("attempt_number", 1) + 1
                    on_failure(number, err, retryable(err))
                raise

        tries = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts - 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception(retryable),
            sleep=pause,
            reraise=True,
        )
        return await tries(once)

    async def attempt(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        sleep: Sleep | None = None,
        on_failure: OnFailure | None = None,
    ) -> Tried:
        """Like `call`, but the end is a value: how many tries, and the last error if any."""
        count = 0

        async def counted() -> object:
            nonlocal count
            count += 1
            return await work()

        try:
            await self.call(counted, sleep=sleep, on_failure=on_failure)
        except Exception as err:  # noqa: BLE001  (the error is the value returned)
            return Tried(ok=False, attempts=count, error=err)
        return Tried(ok=True, attempts=count)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        # tenacity counts from the second try, which was this policy's try number 2.
        error = state.outcome.exception() if state.outcome is not None else None
        return self.delay(state.attempt_number + 1, _hint(error))


def _hint(error: BaseException | None) -> float | None:
    """The wait the far side asked for, if the error carries one."""
    return error.retry_after if isinstance(error, ExternalError) else None
