"""The reconciler against the built-in provider: drift reported once per episode and re-applied,
a late-landed change recorded without drift, a failed change retried without drift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billstate_access_control.domain import (
    Command,
    CustomerAccess,
    SubscriptionAccess,
    accept,
    applied,
    compare,
)
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import BuiltinProvider, ProviderError
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_shared.contracts import decode
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

NOW = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("desired", "applied_", "seen", "verdict"),
    [
        ("suspended", "suspended", "suspended", "in_sync"),
        ("suspended", "suspended", None, "unknown"),
        ("suspended", "active", "suspended", "landed"),
        ("suspended", "suspended", "active", "drift"),
        ("active", "active", "suspended", "drift"),
        ("suspended", "active", "active", "pending"),
    ],
)
def test_compare(desired: Any, applied_: Any, seen: Any, verdict: str) -> None:
    # A subscription billstate has changed: a provider confirmed command c's change.
    sub = SubscriptionAccess(
        "sub-a",
        desired=desired,
        applied=applied_,
        command_id="c",
        applied_by="c",
        provider="builtin",
    )
    assert compare(sub, seen) == verdict


@pytest.mark.parametrize(("seen", "verdict"), [("suspended", "untouched"), ("active", "in_sync")])
def test_compare_leaves_alone_what_billstate_never_changed(seen: Any, verdict: str) -> None:
    """A restore for a subscription billstate never suspended calls no provider; if staff
    suspended it by hand, it stays suspended: billstate puts back only its own changes."""
    sub = SubscriptionAccess("sub-a", desired="active", applied="active", command_id="r1")
    assert compare(sub, seen) == verdict


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


class Rig:
    """A reconciler over a real store and the built-in provider, collecting what it sends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.provider = BuiltinProvider(store)
        self.sent: list[Produce] = []

        async def no_wait(_: float) -> None:
            return None

        self.handler = AccessHandler(
            store=store, provider=self.provider, retry=RetryPolicy(attempts=2), sleep=no_wait
        )

        async def send(out: Produce) -> None:
            self.sent.append(out)

        self.reconciler = Reconciler(
            store=store, provider=self.provider, handler=self.handler, send=send, clock=lambda: NOW
        )

    def suspended(self, customer: str, *subs: str, landed: bool = True) -> None:
        """The store as if a suspend command for `subs` had been accepted (and applied)."""
        command = Command(customer, "access.suspend", "cmd-1", subs)
        state: CustomerAccess = accept(self.store.load(customer), command)
        for sid in subs:
            if landed:
                self.store.builtin_apply(customer, sid, "suspended")
                state = applied(state, sid, "suspended", "cmd-1", "builtin")
        self.store.save(state)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p.value) for p in self.sent]


async def test_a_hand_made_change_is_reported_once_and_put_back(store: Store) -> None:
    rig = Rig(store)
    rig.suspended("contoso", "sub-a", "sub-b")
    store.builtin_apply("contoso", "sub-a", "active")  # someone reactivates it by hand

    first = await rig.reconciler.run_once()
    assert first.public() == {
        "checked": 2,
        "in_sync": 1,
        "unknown": 0,
        "landed": 0,
        "drift": 1,
        "pending": 0,
        "untouched": 0,
        "parked": 0,
        "reapplied": 1,
        "failed": 0,
        "unreadable": 0,
    }
    events = rig.events()
    assert [e["event_type"] for e in events] == ["access.drift", "access.suspended"]
    assert events[0]["data"] == {
        "subscription_id": "sub-a",
        "provider": "builtin",
        "desired": "suspended",
        "observed": "active",
        "exchanges": [],  # the built-in provider makes no requests
    }
    assert all(decode(p.value) for p in rig.sent)
    assert store.builtin_status("contoso", "sub-a") == "suspended"
    sub = store.load("contoso").subscription("sub-a")
    assert (sub.desired, sub.applied, sub.applied_by) == ("suspended", "suspended", "cmd-1")

    # In sync again: a second pass finds nothing and says nothing.
    rig.sent.clear()
    second = await rig.reconciler.run_once()
    assert second.public()["in_sync"] == 2
    assert rig.sent == []

    # A second hand change is a new episode, with event ids of its own.
    store.builtin_apply("contoso", "sub-a", "active")
    await rig.reconciler.run_once()
    again = rig.events()
    assert again[0]["event_type"] == "access.drift"
    assert again[0]["event_id"] != events[0]["event_id"]
    assert again[1]["event_id"] != events[1]["event_id"]


async def test_a_change_that_landed_unrecorded_is_recorded_without_drift(store: Store) -> None:
    rig = Rig(store)
    rig.suspended("fabrikam", "sub-a", landed=False)
    store.builtin_apply("fabrikam", "sub-a", "suspended")  # the call landed, the write did not

    result = await rig.reconciler.run_once()
    assert result.public()["landed"] == 1
    assert [e["event_type"] for e in rig.events()] == ["access.suspended"]
    # The command's own event id: consumers dedupe it against the first announcement.
    assert rig.events()[0]["event_id"] == make_id("acc", "cmd-1", "sub-a", "suspended")
    sub = store.load("fabrikam").subscription("sub-a")
    assert sub.applied == "suspended"


async def test_a_change_that_never_landed_is_retried_without_drift(store: Store) -> None:
    rig = Rig(store)
    rig.suspended("northwind", "sub-a", landed=False)
    store.builtin_apply("northwind", "sub-a", "active")  # the provider knows it, still active

    result = await rig.reconciler.run_once()
    assert (result.public()["pending"], result.public()["reapplied"]) == (1, 1)
    assert [e["event_type"] for e in rig.events()] == ["access.suspended"]
    assert store.builtin_status("northwind", "sub-a") == "suspended"


async def test_a_provider_that_cannot_tell_is_left_alone(store: Store) -> None:
    rig = Rig(store)
    rig.suspended("tailspin", "sub-a", landed=False)  # the built-in provider never heard of it

    result = await rig.reconciler.run_once()
    assert result.public()["unknown"] == 1
    assert rig.sent == []


class Unreadable(BuiltinProvider):
    """Reads fail for one subscription (a 500 there); the rest answer."""

    async def observe(self, customer_id: str, subscription_id: str) -> Any:
        if subscription_id == "sub-a":
            raise ProviderError("Partner Center GET: HTTP 500", retryable=True)
        return await super().observe(customer_id, subscription_id)


async def test_one_unreadable_subscription_does_not_end_the_pass(store: Store) -> None:
    rig = Rig(store)
    rig.suspended("adatum", "sub-a", "sub-b")
    store.builtin_apply("adatum", "sub-b", "active")  # drift on the readable one
    rig.reconciler.provider = Unreadable(store)
    result = await rig.reconciler.run_once()
    assert (result.unreadable, result.verdicts["drift"], result.reapplied) == (1, 1, 1)
