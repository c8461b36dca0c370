"""Command sequences: a new command older than one accepted for the customer is refused as
stale, before any provider call; commands without a sequence, and redeliveries, are judged
as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billstate_access_control.domain import (
    Command,
    CustomerAccess,
    accept,
    park_delay,
    stale,
)
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import BuiltinProvider
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_shared.contracts import decode, encode
from billstate_shared.errors import Refused
from billstate_shared.runtime.retry import RetryPolicy

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)


def cmd(kind: str, command_id: str, sequence: int | None, *subs: str) -> Command:
    command_type = "access.suspend" if kind == "suspend" else "access.restore"
    return Command("contoso", command_type, command_id, subs, sequence)  # type: ignore[arg-type]


def test_a_lower_sequence_than_accepted_is_stale() -> None:
    state = accept(CustomerAccess("contoso"), cmd("restore", "r15", 15, "s1"))
    assert state.sequence == 15
    assert stale(state, cmd("suspend", "s12", 12, "s1")) == (
        "stale: sequence 12 is older than 15 already applied"
    )
    assert stale(state, cmd("suspend", "s16", 16, "s1")) is None
    assert stale(state, cmd("suspend", "s15b", 15, "s1")) is None  # equal: not older
    assert stale(state, cmd("suspend", "none", None, "s1")) is None  # judged as before
    assert stale(CustomerAccess("contoso"), cmd("suspend", "s1", 1, "s1")) is None


def test_a_command_already_seen_is_never_stale() -> None:
    """A redelivery (a crash before its offset was committed) is announced again, not
    dead-lettered, even after a later command was accepted."""
    state = accept(CustomerAccess("contoso"), cmd("suspend", "s12", 12, "s1"))
    state = accept(state, cmd("restore", "r15", 15, "s1"))
    assert stale(state, cmd("suspend", "s12", 12, "s1")) is None


def test_accept_never_lowers_the_sequence() -> None:
    state = accept(CustomerAccess("contoso"), cmd("restore", "r15", 15, "s1"))
    state = accept(state, cmd("suspend", "none", None, "s1"))
    assert state.sequence == 15


@pytest.mark.parametrize(
    ("parks", "retry_after", "delay"),
    [(1, None, 60.0), (2, None, 120.0), (1, 90.0, 90.0), (3, 60.0, 240.0), (9, None, 900.0)],
)
def test_park_delay_doubles_honours_retry_after_and_has_a_ceiling(
    parks: int, retry_after: float | None, delay: float
) -> None:
    assert park_delay(parks, retry_after, 60.0, 900.0) == delay


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 2
    offset: int = 41


def record(kind: str, command_id: str, sequence: int | None, *subs: str) -> Rec:
    envelope = json.loads(access_command(kind, "contoso", command_id, subs, at=AT))
    envelope["data"]["sequence"] = sequence
    return Rec(encode(decode(json.dumps(envelope).encode())))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


async def test_the_handler_refuses_a_stale_command_before_any_call(store: Store) -> None:
    handler = AccessHandler(
        store=store, provider=BuiltinProvider(store), retry=RetryPolicy(attempts=1)
    )
    await handler(record("suspend", "s11", 11, "s1"))
    await handler(record("restore", "r15", 15, "s1"))

    with pytest.raises(Refused) as refused:
        await handler(record("suspend", "s12", 12, "s1"))

    assert (refused.value.field, refused.value.event_type) == ("data.sequence", "access.suspend")
    assert refused.value.reason == "stale: sequence 12 is older than 15 already applied"
    assert store.builtin_status("contoso", "s1") == "active"
    assert store.view("contoso")[0]["calls"] == 2  # the suspend and the restore only
    state = store.load("contoso", ["s12"])
    assert state.seen == frozenset()  # never accepted: a later re-drive is judged again
    assert state.sequence == 15
    # The sequence survives a restart of the store.
    store.close()
    reopened = Store(store.path.parent)
    assert reopened.load("contoso").sequence == 15
    reopened.close()
