"""The guards without a broker: the pure rules and their texts, then the handler with the real
SQLite store, the built-in provider, a wall clock the test moves and a payment feed the test
sets: holding, one notice per batch, approvals, rejections, cancellations by a restore,
redeliveries, and the stale-sequence rule on approval.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billstate_access_control.domain.guards import (
    approval_reason,
    batch_id,
    brake,
    ordinal,
    remaining,
    span,
    stale_feed,
)
from billstate_access_control.guards import Announcer, Guards, GuardSettings, PaymentFeed
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import BuiltinProvider
from billstate_access_control.reattempt import Reattempts
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_shared.contracts import decode, encode
from billstate_shared.errors import Refused
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
NOW = datetime(2027, 1, 11, 9, 30, tzinfo=UTC)
COMMANDS = "access.commands.v1"
APPROVALS = "access.approvals.v1"


# -- the pure rules ----------------------------------------------------------------------


def test_ordinals_and_spans() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th",
    ]  # fmt: skip
    assert [span(s) for s in (0, 2, 119, 120, 7199, 7200, 49 * 3600 + 59)] == [
        "0 s", "2 s", "119 s", "2 min", "119 min", "2 h", "49 h",
    ]  # fmt: skip


def test_the_brake_holds_the_one_past_the_cap() -> None:
    assert brake(applied=2, held=0, cap=3, provider="builtin") is None
    hold = brake(applied=3, held=0, cap=3, provider="builtin")
    assert hold is not None
    assert (hold.guard, hold.reason) == (
        "brake",
        "4th suspension in 24 hours on builtin; the cap is 3",
    )
    later = brake(applied=3, held=6, cap=3, provider="builtin")
    assert later is not None
    assert later.reason == "10th suspension in 24 hours on builtin; the cap is 3"
    assert brake(applied=10**6, held=0, cap=0, provider="builtin") is None  # 0: no brake


def test_a_silent_feed_holds_and_says_since_when() -> None:
    topic = "billing.payments.v1"
    newest = datetime(2027, 1, 9, 8, 0, tzinfo=UTC)
    now = newest + timedelta(hours=49, minutes=10)
    hold = stale_feed(newest=newest, now=now, limit=36 * 3600, topic=topic)
    assert hold is not None
    assert (hold.guard, hold.reason) == (
        "stale_payment_feed",
        "no record on billing.payments.v1 since 2027-01-09T08:00Z (49 h; the limit is 36 h)",
    )
    assert (
        stale_feed(newest=now - timedelta(hours=35), now=now, limit=36 * 3600, topic=topic) is None
    )
    empty = stale_feed(newest=None, now=now, limit=36 * 3600, topic=topic)
    assert empty is not None
    assert empty.reason.startswith("no record on billing.payments.v1 at all")
    assert stale_feed(newest=None, now=now, limit=0, topic=topic) is None  # 0: no guard


def test_batch_ids_reasons_and_what_a_restore_leaves() -> None:
    started = datetime(2027, 1, 11, 9, 0, 5, 123456, tzinfo=UTC)
    assert batch_id("brake", "builtin", started) == "brake-builtin-2027-01-11T09:00:05.123456Z"
    reason = approval_reason("brake", 7, "builtin", "4th suspension in 24 hours on builtin")
    assert reason == (
        "7 suspensions on builtin held back by the brake: 4th suspension in 24 hours on"
        " builtin. To act: billstate access pending; billstate access approve --all --by NAME"
        " --reason TEXT"
    )
    assert remaining(("a", "b", "c"), ("b", "x")) == ("a", "c")
    assert remaining(("a",), ("a",)) == ()


# -- the handler ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None
    topic: str = COMMANDS
    partition: int = 0
    offset: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    store: Store
    handler: AccessHandler
    feed: PaymentFeed
    clock: Clock
    sent: list[Produce]
    announcer: Announcer
    offsets: dict[str, int]

    async def command(
        self, kind: str, customer: str, command_id: str, *subs: str, sequence: int | None = None
    ) -> list[Produce]:
        value = access_command(kind, customer, command_id, subs, at=AT)
        if sequence is not None:
            envelope = json.loads(value)
            envelope["data"]["sequence"] = sequence
            value = encode(decode(json.dumps(envelope).encode()))
        return list(await self.handler(self.rec(COMMANDS, customer, value)))

    async def decide(
        self, kind: str, customer: str, command_id: str, *, rec: Rec | None = None
    ) -> tuple[Rec, list[Produce]]:
        if rec is None:
            rec = self.rec(APPROVALS, customer, decision(kind, customer, command_id))
        return rec, list(await self.handler(rec))

    def rec(self, topic: str, customer: str, value: bytes) -> Rec:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return Rec(value, customer.encode(), topic, 0, offset)


def decision(kind: str, customer: str, command_id: str, by: str = "mei.lin") -> bytes:
    return json.dumps(
        {
            "event_id": f"{kind}-{command_id}",
            "event_type": f"access.{kind}",
            "schema_version": 1,
            "occurred_at": "2027-01-11T10:00:00+00:00",
            "customer_id": customer,
            "data": {"command_id": command_id, "by": by, "reason": "checked"},
        }
    ).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


def rig(store: Store, *, cap: int = 3, feed_limit: float = 0, settle: float = 60) -> Rig:
    clock = Clock()
    feed = PaymentFeed()
    guards = Guards(
        settings=GuardSettings(cap=cap, feed_limit=feed_limit, settle=settle),
        store=store,
        feed=feed,
        clock=clock,
    )
    handler = AccessHandler(
        store=store,
        provider=BuiltinProvider(store),
        retry=RetryPolicy(attempts=2, base_delay=0),
        clock=clock,
        guards=guards,
    )
    sent: list[Produce] = []

    async def send(out: Produce) -> None:
        sent.append(out)

    announcer = Announcer(store=store, lock=handler.lock, send=send, clock=clock)
    return Rig(store, handler, feed, clock, sent, announcer, {})


def events(outputs: list[Produce], event_type: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(o.value) for o in outputs if o.value is not None]
    return [e for e in found if event_type is None or e["event_type"] == event_type]


def kinds(outputs: list[Produce]) -> list[str]:
    return [e["event_type"] for e in events(outputs)]


async def brake_seven(r: Rig) -> list[str]:
    """Ten customers' suspensions under a cap of 3: the first 3 applied, 7 held."""
    customers = [f"c{n:02d}" for n in range(10)]
    for n, customer in enumerate(customers):
        out = await r.command("suspend", customer, f"s-{customer}", "sub-a")
        assert kinds(out) == (["access.suspended"] if n < 3 else ["access.parked"])
    return customers[3:]


async def test_ten_suspensions_under_a_cap_of_three(store: Store) -> None:
    r = rig(store)
    held = await brake_seven(r)
    assert store.held_count() == 7
    assert store.suspensions_since("builtin", NOW - timedelta(hours=24)) == 3
    for customer in held:
        assert store.builtin_status(customer, "sub-a") is None
        # Not desired state: nothing for the reconciler or the re-attempts to apply.
        assert store.load(customer).subscriptions == {}
    [first] = store.holding("c03")
    assert first.reason == "4th suspension in 24 hours on builtin; the cap is 3"
    assert store.holding("c09")[0].reason == "10th suspension in 24 hours on builtin; the cap is 3"

    # Within the settle window: no notice yet; after it, exactly one.
    assert await r.announcer.run_once() == 0
    r.clock.now += timedelta(seconds=61)
    assert await r.announcer.run_once() == 1
    assert await r.announcer.run_once() == 0
    [notice] = events(r.sent)
    assert notice["event_type"] == "access.approval_needed"
    assert r.sent[0].key == b"c03"
    data = notice["data"]
    assert (data["guard"], data["count"], data["customer_ids"]) == ("brake", 7, held)
    assert data["batch_id"] == "brake-builtin-2027-01-11T09:30:00.000000Z"
    assert notice["event_id"] == "approval-" + data["batch_id"]
    assert "billstate access approve --all --by NAME --reason TEXT" in data["reason"]

    # A later park opens a new batch.
    out = await r.command("suspend", "c10", "s-c10", "sub-a")
    assert kinds(out) == ["access.parked"]
    assert store.holding("c10")[0].batch_id != data["batch_id"]


async def test_approve_applies_once_and_counts_in_the_window(store: Store) -> None:
    r = rig(store)
    held = await brake_seven(r)
    recs = {}
    for customer in held:
        rec, out = await r.decide("approve", customer, f"s-{customer}")
        recs[customer] = (rec, out)
        assert kinds(out) == ["access.unparked", "access.suspended"]
        unparked = events(out)[0]
        assert unparked["data"] == {
            "command_id": f"s-{customer}",
            "outcome": "approved",
            "by": "mei.lin",
            "reason": "checked",
        }
        assert store.builtin_status(customer, "sub-a") == "suspended"
    assert store.held_count() == 0
    assert store.suspensions_since("builtin", NOW - timedelta(hours=24)) == 10
    calls = {s["subscription_id"]: s["calls"] for s in store.view("c05")}
    assert calls == {"sub-a": 1}

    # Sent again (another record): nothing. The same record delivered again: the same
    # events, same ids, no provider call.
    for customer in held:
        _, out = await r.decide("approve", customer, f"s-{customer}")
        assert out == []
        rec, first = recs[customer]
        _, again = await r.decide("approve", customer, f"s-{customer}", rec=rec)
        assert again == first
    assert {s["subscription_id"]: s["calls"] for s in store.view("c05")} == {"sub-a": 1}
    # A reject after the approval changes nothing either.
    _, out = await r.decide("reject", "c05", "s-c05")
    assert out == []


async def test_reject_drops_it_and_an_approve_after_changes_nothing(store: Store) -> None:
    r = rig(store, cap=0, feed_limit=3600)  # the feed has no record: silent
    out = await r.command("suspend", "fab", "s-fab", "sub-a", "sub-b")
    [parked] = events(out)
    assert parked["data"]["guard"] == "stale_payment_feed"
    assert parked["data"]["subscription_ids"] == ["sub-a", "sub-b"]
    rec, out = await r.decide("reject", "fab", "s-fab")
    [unparked] = events(out)
    assert (unparked["data"]["outcome"], unparked["data"]["by"]) == ("rejected", "mei.lin")
    _, again = await r.decide("reject", "fab", "s-fab", rec=rec)
    assert again == out
    _, out = await r.decide("approve", "fab", "s-fab")
    assert out == []
    assert store.builtin_status("fab", "sub-a") is None
    # The command delivered again: announced as it ended, never held anew.
    out = await r.command("suspend", "fab", "s-fab", "sub-a", "sub-b")
    assert kinds(out) == ["access.unparked"]
    assert store.held_count() == 0


async def test_a_restore_cancels_and_the_customer_is_never_touched(store: Store) -> None:
    r = rig(store, cap=0, feed_limit=3600)
    await r.command("suspend", "nw", "s-1", "sub-a", "sub-b")
    # A restore of one of them narrows the held command; of the other, cancels it.
    out = await r.command("restore", "nw", "r-1", "sub-a")
    assert out == []
    assert store.holding("nw")[0].subscription_ids == ("sub-b",)
    out = await r.command("restore", "nw", "r-2", "sub-b")
    [unparked] = events(out)
    assert unparked["data"]["outcome"] == "cancelled"
    assert unparked["data"]["by"] == "access-control"
    assert "restore r-2" in unparked["data"]["reason"]
    assert (
        unparked["event_id"]
        == events(await r.command("restore", "nw", "r-2", "sub-b"))[0]["event_id"]
    )  # the restore delivered again announces it again
    _, late = await r.decide("approve", "nw", "s-1")
    assert late == []
    assert store.builtin_status("nw", "sub-a") is None
    assert store.builtin_status("nw", "sub-b") is None
    assert {s["subscription_id"]: s["calls"] for s in store.view("nw")} == {"sub-a": 0, "sub-b": 0}


async def test_restores_pass_and_a_fresh_feed_lets_suspensions_through(store: Store) -> None:
    r = rig(store, cap=0, feed_limit=3600)
    r.feed.saw(NOW - timedelta(hours=2))
    out = await r.command("suspend", "ct", "s-1", "sub-a")
    assert events(out)[0]["data"]["reason"] == (
        "no record on billing.payments.v1 since 2027-01-11T07:30Z (2 h; the limit is 60 min)"
    )
    r.feed.saw(NOW - timedelta(seconds=5))
    assert kinds(await r.command("suspend", "ct2", "s-2", "sub-a")) == ["access.suspended"]
    r.feed.saw(None)  # never goes back
    assert r.feed.newest == NOW - timedelta(seconds=5)
    r.feed.saw(NOW - timedelta(hours=2))
    assert r.feed.newest == NOW - timedelta(seconds=5)
    r.clock.now += timedelta(hours=2)
    assert kinds(await r.command("restore", "ct2", "r-2", "sub-a")) == ["access.restored"]


async def test_approving_a_suspension_older_than_an_applied_restore_does_not_suspend(
    store: Store,
) -> None:
    r = rig(store, cap=0, feed_limit=3600)
    await r.command("suspend", "ac", "s-12", "sub-a", sequence=12)
    # A restore of another subscription, newer: the held command stays but is now stale.
    out = await r.command("restore", "ac", "r-15", "sub-x", sequence=15)
    assert out == []
    _, out = await r.decide("approve", "ac", "s-12")
    [unparked] = events(out)
    assert unparked["data"]["outcome"] == "cancelled"
    assert unparked["data"]["reason"] == (
        "approved by mei.lin, but stale: sequence 12 is older than 15 already applied: not applied"
    )
    assert store.builtin_status("ac", "sub-a") is None


async def test_held_commands_are_never_applied_by_the_background_jobs(store: Store) -> None:
    r = rig(store, cap=0, feed_limit=3600)
    await r.command("suspend", "bg", "s-1", "sub-a")
    sent: list[Produce] = []

    async def send(out: Produce) -> None:
        sent.append(out)

    reattempts = Reattempts(store=store, handler=r.handler, send=send, clock=r.clock)
    assert await reattempts.run_once() == 0
    reconciler = Reconciler(store=store, provider=r.handler.provider, handler=r.handler, send=send)
    found = await reconciler.run_once()
    assert found.public()["checked"] == 0
    assert sent == []
    assert store.builtin_status("bg", "sub-a") is None


async def test_a_redelivered_held_command_is_announced_again_not_held_twice(
    store: Store,
) -> None:
    r = rig(store, cap=0, feed_limit=3600, settle=0)
    first = await r.command("suspend", "rd", "s-1", "sub-a")
    again = await r.command("suspend", "rd", "s-1", "sub-a")
    assert again == first
    assert store.held_count() == 1
    assert await r.announcer.run_once() == 1
    assert events(r.sent)[0]["data"]["count"] == 1


async def test_malformed_decisions_are_refused(store: Store) -> None:
    r = rig(store)
    for value, field in (
        (b"not json", "$"),
        (access_command("suspend", "x", "s-1", ["sub-a"]), "event_type"),
    ):
        with pytest.raises(Refused) as refused:
            await r.handler(r.rec(APPROVALS, "x", value))
        assert refused.value.field == field
    with pytest.raises(Refused) as refused:
        await r.handler(Rec(decision("approve", "x", "s-1"), b"other", APPROVALS))
    assert refused.value.field == "key"
    # A decision on a command nobody held: nothing, no error.
    _, out = await r.decide("approve", "x", "never-held")
    assert out == []


async def test_the_announcer_and_a_command_never_interleave(store: Store) -> None:
    """Held commands and the notice share the handler's lock: each park lands in one batch."""
    r = rig(store, cap=0, feed_limit=3600, settle=0)
    commands = [r.command("suspend", f"l{n}", f"s-{n}", "sub-a") for n in range(5)]
    rounds = [r.announcer.run_once() for _ in range(5)]
    await asyncio.gather(*commands, *rounds)
    await r.announcer.run_once()
    counted = sum(e["data"]["count"] for e in events(r.sent))
    assert counted == 5
