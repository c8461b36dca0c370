"""The SQLite store: what it keeps survives a restart; the built-in provider counts its calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from billstate_access_control.domain import Command, CustomerAccess, accept, applied
from billstate_access_control.store import Parked, Store


def test_state_and_seen_ids_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    command = Command("contoso", "access.suspend", "c1", ("s1", "s2"))
    state = accept(CustomerAccess("contoso"), command)
    state = applied(state, "s1", "suspended", "c1", "builtin")
    store.save(state)
    store.close()

    reopened = Store(tmp_path)
    loaded = reopened.load("contoso", ["c1", "c2"])
    assert loaded.seen == frozenset({"c1"})
    assert loaded.subscriptions == state.subscriptions
    assert reopened.load("fabrikam", ["c1"]) == CustomerAccess("fabrikam")
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.close()


def test_builtin_counts_calls_and_view_joins_them(tmp_path: Path) -> None:
    store = Store(tmp_path)
    state = accept(CustomerAccess("contoso"), Command("contoso", "access.suspend", "c1", ("s1",)))
    store.save(applied(state, "s1", "suspended", "c1", "builtin"))
    store.builtin_apply("contoso", "s1", "suspended")
    store.builtin_apply("contoso", "s1", "suspended")
    assert store.builtin_status("contoso", "s1") == "suspended"
    assert store.builtin_status("contoso", "s9") is None
    assert store.view("contoso") == [
        {
            "subscription_id": "s1",
            "desired": "suspended",
            "applied": "suspended",
            "command_id": "c1",
            "provider": "builtin",
            "calls": 2,
        }
    ]
    assert store.view("nobody") == []
    store.close()


def test_parked_commands_and_sequences_survive_a_restart(tmp_path: Path) -> None:
    at = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
    store = Store(tmp_path)
    state = accept(
        CustomerAccess("contoso"), Command("contoso", "access.suspend", "c1", ("s1",), 15)
    )
    store.save(state)
    store.save(accept(state, Command("contoso", "access.suspend", "c0", ("s1",), 3)))
    parked = Parked(
        customer_id="contoso",
        command_id="c1",
        topic="access.commands.v1",
        partition=3,
        offset=17,
        key=b"contoso",
        value=b'{"x": 1}',
        parks=1,
        attempts=2,
        parked_at=at,
        next_attempt=at + timedelta(seconds=60),
        last_error="parked: ...",
    )
    store.park(parked)
    store.close()

    reopened = Store(tmp_path)
    assert reopened.load("contoso").sequence == 15  # never lowered
    assert reopened.parked("contoso") == [parked]
    assert reopened.parked("contoso", "c9") == []
    assert reopened.due(at + timedelta(seconds=59)) == []
    assert reopened.due(at + timedelta(seconds=60)) == [parked]
    assert reopened.parked_count() == 1
    reopened.unpark("contoso", "c1")
    assert reopened.parked_count() == 0
    reopened.close()
