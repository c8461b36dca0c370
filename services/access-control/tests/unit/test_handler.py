"""The handler without a broker: retries and backoff, failure reporting, refusals, redelivery.

Providers here are small fake classes; the store is the real SQLite one in a temp dir.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billstate_access_control.domain import Access
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import BuiltinProvider, Change, ProviderError
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_shared.contracts import (
    ContractError,
    decode,
)
from billstate_shared.errors import Refused
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 2
    offset: int = 41


def command(kind: str, command_id: str, *subs: str, customer: str = "contoso") -> bytes:
    return access_command(kind, customer, command_id, subs, reason="test", at=AT)


class Flaky:
    """Fails `failures` times per subscription (retryable), then succeeds."""

    name = "flaky"

    def __init__(self, failures: int, *, retryable: bool = True) -> None:
        self.failures, self.retryable = failures, retryable
        self.calls: dict[str, int] = {}

    async def apply(self, change: Change) -> None:
        subscription_id = change.subscription_id
        self.calls[subscription_id] = self.calls.get(subscription_id, 0) + 1
        if self.calls[subscription_id] <= self.failures:
            raise ProviderError(
                f"HTTP 503 on try {self.calls[subscription_id]}", retryable=self.retryable
            )

    async def observe(self, customer_id: str, subscription_id: str) -> Access | None:
        return None

    async def close(self) -> None:
        return None


class Broken(Flaky):
    """Raises something that is not a ProviderError."""

    name = "broken"

    async def apply(self, change: Change) -> None:
        subscription_id = change.subscription_id
        self.calls[subscription_id] = self.calls.get(subscription_id, 0) + 1
        raise ConnectionResetError("peer went away")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


def make(store: Store, provider: object, attempts: int = 5) -> tuple[AccessHandler, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    handler = AccessHandler(
        store=store,
        provider=provider,  # type: ignore[arg-type]
        retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=1.0),
        sleep=sleep,
    )
    return handler, slept


def types(outputs: list[Produce] | tuple[Produce, ...]) -> list[tuple[str, str]]:
    found = []
    for out in outputs:
        if out.topic.endswith(".dlq"):
            found.append((out.topic, "dlq"))
        else:
            found.append((out.topic, decode(out.value).event_type))
    return found


async def test_suspend_then_restore_emits_one_event_per_subscription(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    out = list(await handler(Rec(command("suspend", "c1", "s1", "s2"))))
    assert types(out) == [("access.events.v1", "access.suspended")] * 2
    event = decode(out[0].value)
    assert out[0].key == b"contoso"
    assert event.customer_id == "contoso"
    assert event.occurred_at == AT
    assert json.loads(out[0].value)["data"] == {
        "command_id": "c1",
        "subscription_id": "s1",
        "provider": "builtin",
    }
    out = list(await handler(Rec(command("restore", "r1", "s1", "s2", "s3"))))
    assert types(out) == [("access.events.v1", "access.restored")] * 2
    view = {
        s["subscription_id"]: (s["desired"], s["applied"], s["calls"])
        for s in store.view("contoso")
    }
    # s3 was never suspended: it is wanted active and nobody was called for it.
    assert view == {
        "s1": ("active", "active", 2),
        "s2": ("active", "active", 2),
        "s3": ("active", "active", 0),
    }


async def test_a_duplicate_is_announced_again_without_a_provider_call(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    first = list(await handler(Rec(command("suspend", "c1", "s1"))))
    again = list(await handler(Rec(command("suspend", "c1", "s1"), offset=42)))
    assert [o.value for o in again] == [o.value for o in first]  # same event, same id
    assert store.view("contoso")[0]["calls"] == 1


async def test_a_second_suspend_with_a_new_id_is_silent(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    await handler(Rec(command("suspend", "c1", "s1")))
    assert list(await handler(Rec(command("suspend", "c2", "s1")))) == []
    assert store.view("contoso")[0]["calls"] == 1


async def test_retries_with_exponential_backoff_then_succeeds(store: Store) -> None:
    provider = Flaky(failures=3)
    handler, slept = make(store, provider)
    out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    assert types(out) == [("access.events.v1", "access.suspended")]
    assert provider.calls == {"s1": 4}
    assert slept == [0.2, 0.4, 0.8]


async def test_backoff_is_capped(store: Store) -> None:
    assert RetryPolicy(attempts=9, base_delay=0.2, max_delay=1.0).delay(8) == 1.0


async def test_giving_up_emits_failed_and_dead_letters_the_command(store: Store) -> None:
    provider = Flaky(failures=99)
    handler, slept = make(store, provider, attempts=3)
    raw = command("suspend", "c1", "s1", "s2")
    out = list(await handler(Rec(raw)))
    assert types(out) == [
        ("access.events.v1", "access.failed"),
        ("access.events.v1", "access.failed"),
        ("access.commands.v1.dlq", "dlq"),
    ]
    failed = json.loads(out[0].value)["data"]
    assert failed == {
        "command_id": "c1",
        "subscription_id": "s1",
        "provider": "flaky",
        "attempts": 3,
        "error": "HTTP 503 on try 3",
        "exchanges": [],  # a fake provider notes none
    }
    dlq = out[-1]
    assert (dlq.key, dlq.value) == (b"contoso", raw)
    headers = read_headers(dlq.headers)
    assert headers["partition"] == "2"
    assert headers["offset"] == "41"
    assert headers["event_type"] == "access.suspend"
    assert "subscription s1" in headers["reason"]
    assert "subscription s2" in headers["reason"]
    assert "HTTP 503" in headers["reason"]
    assert slept == [0.2, 0.4] * 2
    assert [s["applied"] for s in store.view("contoso")] == ["active", "active"]


async def test_a_non_retryable_error_is_not_retried(store: Store) -> None:
    provider = Flaky(failures=99, retryable=False)
    handler, slept = make(store, provider)
    out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    assert types(out) == [("access.events.v1", "access.failed"), ("access.commands.v1.dlq", "dlq")]
    assert json.loads(out[0].value)["data"]["attempts"] == 1
    assert provider.calls == {"s1": 1}
    assert slept == []


async def test_an_unexpected_provider_exception_counts_as_retryable(store: Store) -> None:
    provider = Broken(failures=0)
    handler, _ = make(store, provider, attempts=2)
    out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    assert json.loads(out[0].value)["data"]["error"] == "ConnectionResetError('peer went away')"
    assert provider.calls == {"s1": 2}


async def test_a_redelivered_failed_command_tries_again(store: Store) -> None:
    provider = Flaky(failures=2)
    handler, _ = make(store, provider, attempts=2)
    raw = command("suspend", "c1", "s1")
    assert types(await handler(Rec(raw)))[0] == ("access.events.v1", "access.failed")
    assert types(await handler(Rec(raw))) == [("access.events.v1", "access.suspended")]
    assert provider.calls == {"s1": 3}


async def test_bad_bytes_are_a_contract_error(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    with pytest.raises(ContractError):
        await handler(Rec(b"\xff{not json"))


async def test_other_event_types_are_refused(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    tick = b'{"event_id":"t1","event_type":"clock.tick","schema_version":1,'
    tick += b'"occurred_at":"2027-01-11T00:00:00+00:00","customer_id":"*","data":{}}'
    with pytest.raises(Refused) as refused:
        await handler(Rec(tick, key=b"*"))
    assert refused.value.field == "event_type"


async def test_a_wrong_key_or_no_value_is_refused(store: Store) -> None:
    handler, _ = make(store, BuiltinProvider(store))
    with pytest.raises(Refused) as refused:
        await handler(Rec(command("suspend", "c1", "s1"), key=b"fabrikam"))
    assert refused.value.field == "key"
    with pytest.raises(Refused):
        await handler(Rec(None))
    assert store.view("contoso") == []


async def test_each_provider_call_is_timed_and_counted_by_outcome(store: Store) -> None:
    metrics = Metrics("access-control")
    handler = AccessHandler(
        store=store,
        provider=Flaky(failures=2),  # type: ignore[arg-type]
        retry=RetryPolicy(attempts=5, base_delay=0.2, max_delay=1.0),
        sleep=lambda _s: asyncio.sleep(0),
        metrics=metrics,
    )
    await handler(Rec(command("suspend", "c1", "s1")))
    sample = metrics.registry.get_sample_value
    labels = {"service": "access-control", "provider": "flaky"}
    assert sample("billstate_provider_call_seconds_count", labels) == 3
    assert sample("billstate_provider_calls_total", {**labels, "outcome": "retryable"}) == 2
    assert sample("billstate_provider_calls_total", {**labels, "outcome": "ok"}) == 1
    assert "billstate_provider_call_seconds_bucket" in metrics.render().decode()
