"""The SQLite store: what it keeps survives a restart; the built-in provider counts its calls."""

from __future__ import annotations

from pathlib import Path

from billstate_access_control.domain import Command, CustomerAccess, accept, applied
from billstate_access_control.store import Store


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
