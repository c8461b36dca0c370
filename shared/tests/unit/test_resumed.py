"""A coroutine run up to its first wait and then awaited through `_Resumed` ends as if it had
been awaited whole: its result, its error, its cancellation."""

from __future__ import annotations

import asyncio

import pytest

from billstate_shared.runtime.faustkit import _Resumed


async def twice(gate: asyncio.Future[int], seen: list[str]) -> int:
    seen.append("before")
    value = await gate
    seen.append("after")
    return value * 2


async def test_the_rest_runs_in_a_task_and_gives_the_result() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    coro = twice(gate, seen)
    waiting = coro.send(None)
    assert seen == ["before"]
    task = asyncio.ensure_future(_Resumed(coro, waiting))
    await asyncio.sleep(0)
    gate.set_result(21)
    assert await task == 42
    assert seen == ["before", "after"]


async def test_an_error_of_what_it_waits_for_reaches_it() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro = twice(gate, [])
    task = asyncio.ensure_future(_Resumed(coro, coro.send(None)))
    await asyncio.sleep(0)
    gate.set_exception(ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        await task


async def test_a_cancelled_task_cancels_the_coroutine() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    coro = twice(gate, seen)
    task = asyncio.ensure_future(_Resumed(coro, coro.send(None)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled()
    assert seen == ["before"]
