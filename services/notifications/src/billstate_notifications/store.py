"""The service's own state in SQLite (stdlib, WAL): the delivery log, which doubles as the
set of delivered notice ids, the customer directory, and a log of applied access changes.

One connection, used from the event loop's thread only; every write commits at once, so
what the store says happened did happen before the offset that caused it is committed.
Addresses live only in `customers` and never leave through `delivery()`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

DeliveryStatus = Literal["delivered", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    notice_id   TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    audience    TEXT NOT NULL,
    locale      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('delivered', 'failed')),
    error       TEXT,
    error_field TEXT,
    event_id    TEXT NOT NULL,
    source      TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id           TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    locale                TEXT,
    billing_email         TEXT,
    partner_contact_email TEXT,
    event_id              TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_log (
    event_id        TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    provider        TEXT NOT NULL,
    command_id      TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    source          TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery log: the outcome of a notice (no addresses).

    `source` is `topic:partition:offset` of the record that produced the outcome; seeing
    that same record again means its offset was never committed, so the outcome is
    re-emitted, while the same notice at another offset is a duplicate and emits nothing.
    """

    notice_id: str
    customer_id: str
    kind: str
    audience: str
    locale: str
    channel: str
    attempts: int
    status: DeliveryStatus
    error: str | None
    error_field: str | None
    event_id: str
    source: str
    finished_at: str

    def public(self) -> dict[str, Any]:
        """What GET /notices/{notice_id} shows."""
        return asdict(self)


@dataclass(frozen=True)
class Customer:
    """A customer directory entry. Never log one: it holds a name and addresses."""

    customer_id: str
    name: str
    locale: str | None
    billing_email: str | None
    partner_contact_email: str | None

    def address_for(self, audience: str) -> str | None:
        return self.billing_email if audience == "customer" else self.partner_contact_email

    def __repr__(self) -> str:  # keep names and addresses out of tracebacks and logs
        return f"Customer(customer_id={self.customer_id!r})"


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ---- delivery log ------------------------------------------------------------------

    def delivery(self, notice_id: str) -> Delivery | None:
        row = self._db.execute(
            "SELECT * FROM deliveries WHERE notice_id = ?", (notice_id,)
        ).fetchone()
        return None if row is None else Delivery(**dict(row))

    def record(self, delivery: Delivery) -> None:
        """Insert or replace the outcome of a notice (a re-driven failure may succeed)."""
        self._db.execute(
            "INSERT OR REPLACE INTO deliveries (notice_id, customer_id, kind, audience, locale,"
            " channel, attempts, status, error, error_field, event_id, source, finished_at)"
            " VALUES (:notice_id, :customer_id, :kind, :audience, :locale, :channel, :attempts,"
            " :status, :error, :error_field, :event_id, :source, :finished_at)",
            asdict(delivery),
        )

    # ---- customer directory ------------------------------------------------------------

    def customer(self, customer_id: str) -> Customer | None:
        row = self._db.execute(
            "SELECT customer_id, name, locale, billing_email, partner_contact_email"
            " FROM customers WHERE customer_id = ?",
            (customer_id,),
        ).fetchone()
        return None if row is None else Customer(**dict(row))

    def upsert_customer(self, customer: Customer, event_id: str) -> None:
        """Latest record wins: the topic is compacted and read in offset order."""
        self._db.execute(
            "INSERT OR REPLACE INTO customers"
            " (customer_id, name, locale, billing_email, partner_contact_email, event_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                customer.customer_id,
                customer.name,
                customer.locale,
                customer.billing_email,
                customer.partner_contact_email,
                event_id,
            ),
        )

    def forget_customer(self, customer_id: str) -> None:
        """A tombstone on the compacted customers topic: the customer is gone."""
        self._db.execute("DELETE FROM customers WHERE customer_id = ?", (customer_id,))

    # ---- access changes (logged, not notified) -----------------------------------------

    def log_access(
        self,
        *,
        event_id: str,
        customer_id: str,
        event_type: str,
        subscription_id: str,
        provider: str,
        command_id: str,
        occurred_at: str,
        source: str,
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO access_log (event_id, customer_id, event_type,"
            " subscription_id, provider, command_id, occurred_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                customer_id,
                event_type,
                subscription_id,
                provider,
                command_id,
                occurred_at,
                source,
            ),
        )

    def access_events(self, customer_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM access_log WHERE customer_id = ? ORDER BY rowid", (customer_id,)
        ).fetchall()
        return [dict(r) for r in rows]
