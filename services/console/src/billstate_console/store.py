"""The read model in SQLite (stdlib): customers, their timeline, and the event ids applied.

The SQL is kept portable (plain types, `INSERT ... ON CONFLICT`, named parameters, no
SQLite-only functions), so a PostgreSQL store can run the same statements. One connection,
used from the event loop's thread only. Each event is applied in one transaction: its id in
`applied`, the customer's row, its timeline entry; an id seen before changes nothing.

`generation` is a random id made when the store is created: the service's consumer group
carries it, so a new (empty) store reads every topic from the start and rebuilds itself.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from billstate_console.domain.projection import Customer, Entry, project
from billstate_shared.contracts.events import EventBase

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key   VARCHAR(64) PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS applied (
        event_id VARCHAR(200) PRIMARY KEY
    )""",
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id   VARCHAR(200) PRIMARY KEY,
        name          TEXT,
        locale        VARCHAR(35),
        tags          TEXT NOT NULL,
        profile_at    VARCHAR(260) NOT NULL,
        stage         VARCHAR(64),
        overdue       TEXT NOT NULL,
        as_of         VARCHAR(10),
        days_past_due INTEGER,
        standing_at   VARCHAR(260) NOT NULL,
        since         VARCHAR(10),
        why           TEXT,
        why_rule      TEXT,
        why_at        VARCHAR(260) NOT NULL,
        next_stage    VARCHAR(64),
        next_on       VARCHAR(10),
        waiting       TEXT,
        next_at       VARCHAR(260) NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS customers_stage ON customers (stage, customer_id)",
    """CREATE TABLE IF NOT EXISTS timeline (
        event_id    VARCHAR(200) PRIMARY KEY,
        customer_id VARCHAR(200) NOT NULL,
        occurred_at VARCHAR(32) NOT NULL,
        kind        VARCHAR(16) NOT NULL,
        event_type  VARCHAR(64) NOT NULL,
        summary     TEXT NOT NULL,
        why         TEXT,
        raw         TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS timeline_customer ON timeline (customer_id, occurred_at)",
)
_CUSTOMER_COLUMNS = tuple(f.name for f in fields(Customer))
_ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))
_UPSERT = (
    f"INSERT INTO customers ({', '.join(_CUSTOMER_COLUMNS)}) "  # noqa: S608  (fixed names)
    f"VALUES ({', '.join(':' + c for c in _CUSTOMER_COLUMNS)}) "
    "ON CONFLICT (customer_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _CUSTOMER_COLUMNS[1:])
)
_INSERT_ENTRY = (
    f"INSERT INTO timeline ({', '.join(_ENTRY_COLUMNS)}) "  # noqa: S608  (fixed names)
    f"VALUES ({', '.join(':' + c for c in _ENTRY_COLUMNS)})"
)
_SELECT_CUSTOMER = f"SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM customers"  # noqa: S608


@dataclass(frozen=True)
class Page:
    items: list[Customer]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class Overview:
    per_stage: dict[str, int]
    overdue: list[tuple[str, str]]  # (currency, total)
    customers: int
    as_of: str | None


def _to_row(customer: Customer) -> dict[str, Any]:
    row = asdict(customer)
    row["tags"] = json.dumps(list(customer.tags))
    row["overdue"] = json.dumps([list(pair) for pair in customer.overdue])
    return row


def _from_row(row: sqlite3.Row | tuple[Any, ...]) -> Customer:
    values = dict(zip(_CUSTOMER_COLUMNS, tuple(row), strict=True))
    values["tags"] = tuple(json.loads(values["tags"]))
    values["overdue"] = tuple((c, a) for c, a in json.loads(values["overdue"]))
    return Customer(**values)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            self.db.execute(statement)
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', :value) "
            "ON CONFLICT (key) DO NOTHING",
            {"value": uuid.uuid4().hex[:16]},
        )
        (self.generation,) = self.db.execute(
            "SELECT value FROM meta WHERE key = 'generation'"
        ).fetchone()

    def close(self) -> None:
        self.db.close()

    def apply(self, event: EventBase) -> bool:
        """Apply one event once; False when its id was applied before (nothing changes)."""
        self.db.execute("BEGIN")
        try:
            seen = self.db.execute(
                "SELECT 1 FROM applied WHERE event_id = :id", {"id": event.event_id}
            ).fetchone()
            if seen is not None:
                self.db.execute("ROLLBACK")
                return False
            self.db.execute("INSERT INTO applied (event_id) VALUES (:id)", {"id": event.event_id})
            change = project(self.customer(event.customer_id), event)
            if change.customer is not None:
                self.db.execute(_UPSERT, _to_row(change.customer))
            if change.entry is not None:
                self.db.execute(_INSERT_ENTRY, asdict(change.entry))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return True

    def customer(self, customer_id: str) -> Customer | None:
        row = self.db.execute(
            _SELECT_CUSTOMER + " WHERE customer_id = :id", {"id": customer_id}
        ).fetchone()
        return None if row is None else _from_row(row)

    def customers(
        self,
        *,
        stage: str | None = None,
        query: str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> Page:
        """Customers by id, filtered by stage and by a search in id or name, one page."""
        where, params = ["1 = 1"], {}
        if stage:
            where.append("stage = :stage")
            params["stage"] = stage
        if query and query.strip():
            where.append(
                "(LOWER(customer_id) LIKE :q ESCAPE '\\' OR LOWER(name) LIKE :q ESCAPE '\\')"
            )
            params["q"] = _like(query.strip())
        clause = " AND ".join(where)
        (total,) = self.db.execute(
            f"SELECT COUNT(*) FROM customers WHERE {clause}",  # noqa: S608  (fixed clauses)
            params,
        ).fetchone()
        rows = self.db.execute(
            f"{_SELECT_CUSTOMER} WHERE {clause} ORDER BY customer_id LIMIT :limit OFFSET :offset",
            {**params, "limit": per_page, "offset": (page - 1) * per_page},
        ).fetchall()
        return Page([_from_row(r) for r in rows], int(total), page, per_page)

    def overview(self) -> Overview:
        per_stage = {
            str(stage): int(count)
            for stage, count in self.db.execute(
                "SELECT COALESCE(stage, ''), COUNT(*) FROM customers "
                "GROUP BY COALESCE(stage, '') ORDER BY COALESCE(stage, '')"
            )
        }
        totals: dict[str, Decimal] = {}
        for (overdue,) in self.db.execute("SELECT overdue FROM customers WHERE overdue <> '[]'"):
            for currency, amount in json.loads(overdue):
                totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount)
        (count, as_of) = self.db.execute("SELECT COUNT(*), MAX(as_of) FROM customers").fetchone()
        return Overview(
            per_stage=per_stage,
            overdue=[(c, str(totals[c])) for c in sorted(totals)],
            customers=int(count),
            as_of=as_of,
        )

    def timeline(self, customer_id: str, *, limit: int = 500) -> list[Entry]:
        """The customer's entries, newest first."""
        rows = self.db.execute(
            f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM timeline "  # noqa: S608  (fixed names)
            "WHERE customer_id = :id ORDER BY occurred_at DESC, event_id DESC LIMIT :limit",
            {"id": customer_id, "limit": limit},
        ).fetchall()
        return [Entry(*row) for row in rows]

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every read-model table, sorted: what two stores compare by."""
        return {
            table: sorted(self.db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
            for table in ("applied", "customers", "timeline")
        }
