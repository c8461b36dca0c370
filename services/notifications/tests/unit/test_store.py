"""The SQLite store: delivery log, customer directory, access log; WAL; survives reopen."""

from __future__ import annotations

from pathlib import Path

from billstate_notifications.store import Customer, Delivery, Store


def delivery(**changes: object) -> Delivery:
    values: dict[str, object] = {
        "notice_id": "ntc-1",
        "customer_id": "contoso",
        "kind": "overdue",
        "audience": "customer",
        "locale": "en",
        "channel": "outbox",
        "attempts": 1,
        "status": "delivered",
        "error": None,
        "error_field": None,
        "event_id": "evt-1",
        "source": "notifications.requests.v1:0:5",
        "finished_at": "2026-11-14T00:00:00+00:00",
    }
    values.update(changes)
    return Delivery(**values)  # type: ignore[arg-type]


def test_delivery_log_round_trips_and_survives_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "n.sqlite3")
    assert store.delivery("ntc-1") is None
    store.record(delivery(status="failed", error="boom", error_field="$"))
    store.record(delivery())  # a re-driven failure that now succeeded replaces the row
    store.close()
    reopened = Store(tmp_path / "n.sqlite3")
    assert reopened.delivery("ntc-1") == delivery()
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.close()


def test_customer_directory_latest_wins_and_tombstone_forgets(tmp_path: Path) -> None:
    store = Store(tmp_path / "n.sqlite3")
    first = Customer("contoso", "Contoso", "en", "ap@contoso.example", "pm@partner.example")
    store.upsert_customer(first, "e1")
    renamed = Customer("contoso", "Contoso Ltd", "zh-TW", "ap@contoso.example", None)
    store.upsert_customer(renamed, "e2")
    assert store.customer("contoso") == renamed
    assert renamed.address_for("customer") == "ap@contoso.example"
    assert renamed.address_for("partner") is None
    assert "ap@" not in repr(renamed)
    assert "Contoso Ltd" not in repr(renamed)
    store.forget_customer("contoso")
    assert store.customer("contoso") is None


def test_access_log_is_idempotent_per_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "n.sqlite3")
    entry = {
        "event_id": "e1",
        "customer_id": "contoso",
        "event_type": "access.suspended",
        "subscription_id": "sub-1",
        "provider": "partner_center",
        "command_id": "cmd-1",
        "occurred_at": "2026-11-21T00:00:00+00:00",
        "source": "access.events.v1:0:1",
    }
    store.log_access(**entry)
    store.log_access(**entry)
    assert store.access_events("contoso") == [entry]
