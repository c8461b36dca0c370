"""A command's time budget against the Partner Center test server: a throttling storm parks
the command instead of waiting it out; a parked command is applied when due, once, unless a
later command took its subscriptions over.

The budget runs on a fake monotonic clock that the handler's `sleep` moves forward, so
Retry-After waits are asserted without being waited; the wall clock (when a parked command is
due) is fixed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billstate_access_control.handlers import AccessHandler, Budget
from billstate_access_control.providers.partner_center import (
    PartnerCenterConfig,
    PartnerCenterProvider,
)
from billstate_access_control.store import Parked, Store
from billstate_devkit.events import access_command
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_shared.contracts import decode
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

NOW = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SUB2 = "9e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 1
    offset: int = 7


def command(kind: str, command_id: str, *subs: str) -> Rec:
    return Rec(access_command(kind, "contoso", command_id, subs, at=NOW))


def kinds(outputs: Sequence[Produce]) -> list[str]:
    return ["dlq" if o.topic.endswith(".dlq") else decode(o.value).event_type for o in outputs]


class Time:
    """A monotonic clock that only the handler's waits move, and a fixed wall clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.wall = NOW

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenterServer]:
    async with PartnerCenterServer() as server:
        server.add_subscription(CONTOSO, SUB)
        server.add_subscription(CONTOSO, SUB2)
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


@pytest.fixture
async def provider(pc: PartnerCenterServer, store: Store) -> AsyncIterator[PartnerCenterProvider]:
    config = PartnerCenterConfig(
        base_url=pc.base_url,
        token_url=pc.token_url,
        client_id=pc.client_id,
        client_secret=pc.client_secret,  # type: ignore[arg-type]
        request_timeout=5.0,
        customers={"contoso": CONTOSO},
        subscriptions={},
    )
    provider = PartnerCenterProvider(config, store)
    await provider.observe("contoso", SUB)  # a token in hand: the budget is the storm's
    yield provider
    await provider.close()


def make(
    store: Store, provider: PartnerCenterProvider, clock: Time, budget: float = 30.0
) -> tuple[AccessHandler, list[int]]:
    attempts: list[int] = []
    handler = AccessHandler(
        store=store,
        provider=provider,
        retry=RetryPolicy(attempts=5, base_delay=0.2, max_delay=10.0),
        sleep=clock.sleep,
        budget=Budget(seconds=budget, park_delay=60.0, park_max_delay=900.0),
        clock=lambda: clock.wall,
        monotonic=clock.monotonic,
        on_attempt=lambda: attempts.append(1),
    )
    return handler, attempts


def the_parked(store: Store) -> Parked:
    (parked,) = store.parked("contoso")
    return parked


async def test_a_429_storm_parks_the_command_within_its_budget(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    clock = Time()
    handler, attempts = make(store, provider, clock)
    pc.throttle(3, retry_after=60)

    out = list(await handler(command("suspend", "c1", SUB, SUB2)))

    # Waits of 10 s (Retry-After 60, capped by RETRY_MAX_DELAY) at 0 and 10 s; at 20 s the
    # next wait would reach the 30 s budget: parked, without waiting for it.
    assert clock.slept == [10.0, 10.0]
    assert clock.now == 20.0
    assert len(attempts) == 3  # the probes heard of every call
    assert kinds(out) == ["access.failed", "access.failed"]  # no DLQ: it is not given up
    told = [json.loads(o.value) for o in out]
    assert [e["data"]["subscription_id"] for e in told] == [SUB, SUB2]
    due = NOW + timedelta(seconds=60)
    assert told[0]["data"]["error"] == (
        "parked: the 30s time budget ran out after 3 provider call(s); last error: Partner"
        " Center GET: HTTP 429; next attempt at " + due.isoformat(timespec="seconds")
    )
    assert told[0]["data"]["attempts"] == 3
    parked = the_parked(store)
    assert (parked.command_id, parked.parks, parked.attempts) == ("c1", 1, 3)
    assert (parked.parked_at, parked.next_attempt) == (NOW, due)
    assert store.due(due - timedelta(seconds=1)) == []
    assert store.due(due) == [parked]
    assert pc.patches(CONTOSO, SUB) == pc.patches(CONTOSO, SUB2) == 0
    state = store.load("contoso", ["c1"])
    assert state.subscription(SUB).desired == "suspended"  # accepted, waiting

    # The provider has recovered: the re-attempt applies both, once.
    outcome = await handler.reattempt(parked)
    assert kinds(outcome.outputs) == ["access.suspended", "access.suspended"]
    assert outcome.parked is None
    assert pc.patches(CONTOSO, SUB, status=200) == pc.patches(CONTOSO, SUB2, status=200) == 1
    store.unpark("contoso", "c1")
    # Delivered again: announced again under the same ids, no call.
    again = list(await handler(command("suspend", "c1", SUB, SUB2)))
    assert [o.value for o in again] == [o.value for o in outcome.outputs]
    assert pc.patches(CONTOSO, SUB) == pc.patches(CONTOSO, SUB2) == 1


async def test_a_parked_command_parked_again_backs_off(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    clock = Time()
    handler, _ = make(store, provider, clock)
    pc.throttle(3, retry_after=60)
    await handler(command("suspend", "c1", SUB))
    first = the_parked(store)

    clock.wall = first.next_attempt
    pc.throttle(3, retry_after=60)
    outcome = await handler.reattempt(first)

    assert outcome.outputs == []  # staff were told at the first parking
    assert outcome.parked is not None
    assert (outcome.parked.parks, outcome.parked.attempts) == (2, 6)
    assert outcome.parked.parked_at == first.parked_at
    assert outcome.parked.next_attempt == first.next_attempt + timedelta(seconds=120)


async def test_a_later_command_supersedes_a_parked_one(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    clock = Time()
    handler, _ = make(store, provider, clock)
    pc.throttle(3, retry_after=60)
    await handler(command("suspend", "c1", SUB))
    parked = the_parked(store)

    # The customer paid meanwhile: the restore wants what the subscription already has.
    assert list(await handler(command("restore", "r1", SUB))) == []
    outcome = await handler.reattempt(parked)

    assert (outcome.outputs, outcome.parked) == ([], None)
    assert pc.patches(CONTOSO, SUB) == 0
    assert pc.subscription(CONTOSO, SUB)["status"] == "active"
    assert store.load("contoso").subscription(SUB).desired == "active"


async def test_a_parked_command_delivered_again_waits_for_its_reattempt(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    clock = Time()
    handler, _ = make(store, provider, clock)
    pc.throttle(3, retry_after=60)
    first = list(await handler(command("suspend", "c1", SUB)))
    calls = len(pc.requests())

    again = list(await handler(command("suspend", "c1", SUB)))

    assert [o.value for o in again] == [o.value for o in first]  # the same parked event
    assert len(pc.requests()) == calls
    assert the_parked(store).parks == 1


async def test_a_call_slower_than_the_budget_is_cut_short(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler = AccessHandler(
        store=store,
        provider=provider,
        retry=RetryPolicy(attempts=5, base_delay=0.2, max_delay=10.0),
        budget=Budget(seconds=0.5),
        clock=lambda: NOW,
    )
    pc.slow(1, 3.0, method="GET")
    started = time.monotonic()

    out = list(await handler(command("suspend", "c1", SUB)))

    assert time.monotonic() - started < 2.0
    assert kinds(out) == ["access.failed"]
    error: Any = json.loads(out[0].value)["data"]["error"]
    assert error.startswith("parked: the 0.5s time budget ran out after 1 provider call(s);")
    assert "call cut short by the time budget" in error
    assert the_parked(store).command_id == "c1"
