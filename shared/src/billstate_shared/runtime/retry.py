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

        async def once() -> T:
            try:
                return await work()
            except Exception as err:
                if on_failure is not None:
                    on_failure(tries.statistics.get("attempt_number", 1), err, retryable(err))
                raise

        tries = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(max(1, self.attempts)),
            wait=self._wait,
            retry=tenacity.retry_if_exception(retryable),
            sleep=sleep if sleep is not None else asyncio.sleep,
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
        error = state.outcome.exception() if state.outcome is not None else None
        hint = error.retry_after if isinstance(error, ExternalError) else None
        return self.delay(state.attempt_number, hint)
