"""The read model in SQLite (stdlib) or PostgreSQL (psycopg 3): customers, their timeline,
and the event ids applied.

`Store(target)` opens `sqlite:///<path>` (or a bare path, or `:memory:`) with the stdlib
`sqlite3`, and `postgresql://...` (or `postgres://...`) with psycopg. Both run the same
schema and the same statements: the SQL is portable (plain types, `INSERT ... ON CONFLICT`,
no SQLite-only functions), written with `:name` parameters, which become `%(name)s` for
psycopg. One connection, used from the event loop's thread only, in autocommit mode with an
explicit `BEGIN`/`COMMIT` per event: its id in `applied`, the customer's row, its timeline
entry; an id seen before changes nothing.

`generation` is a random id made when the store is created: the service's consumer group
carries it, so a new (empty) store reads every topic from the start and rebuilds itself.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg

from billstate_console.domain.projection import Customer, Entry, project
from billstate_shared.contracts.events import EventBase
from billstate_shared.errors import ConfigRefused

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

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


def _from_row(row: tuple[Any, ...]) -> Customer:
    values = dict(zip(_CUSTOMER_COLUMNS, tuple(row), strict=True))
    values["tags"] = tuple(json.loads(values["tags"]))
    values["overdue"] = tuple((c, a) for c, a in json.loads(values["overdue"]))
    return Customer(**values)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


def is_postgres(target: Path | str) -> bool:
    return str(target).startswith(POSTGRES_PREFIXES)


def sqlite_path(target: Path | str) -> str:
    """The SQLite file of `sqlite:///<path>` (`sqlite:////abs` is absolute), a bare path or
    `:memory:`; any other URL is refused."""
    text = str(target)
    if text.startswith(SQLITE_PREFIX):
        text = text[len(SQLITE_PREFIX) :]
    elif "://" in text:
        raise ConfigRefused(
            "database_url", "is neither sqlite:///<path> nor postgresql://... (or postgres://)"
        )
    if not text:
        raise ConfigRefused("database_url", "names no SQLite file")
    return text


def to_psycopg(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s` (the statements hold no literal `%`)."""
    return _PARAM.sub(r"%(\1)s", sql)


class Store:
    def __init__(self, target: Path | str) -> None:
        self.postgres = is_postgres(target)
        self._target = str(target)
        self._closing = False
        self.db: sqlite3.Connection | psycopg.Connection[tuple[Any, ...]]
        if self.postgres:
            self.db = psycopg.connect(self._target, autocommit=True)
        else:
            path = sqlite_path(target)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)
            self._run("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            self._run(statement)
        self._run(
            "INSERT INTO meta (key, value) VALUES ('generation', :value) "
            "ON CONFLICT (key) DO NOTHING",
            {"value": uuid.uuid4().hex[:16]},
        )
        (self.generation,) = self._run("SELECT value FROM meta WHERE key = 'generation'").fetchone()

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> _Cursor:
        if isinstance(self.db, sqlite3.Connection):
            return self.db.execute(sql, params or {})
        if self.db.closed and not self._closing:
            # Lost (a restart, a network cut): the statement that saw it failed, and with it
            # its event's transaction; the runtime tries the record again, on a new connection.
            self.db = psycopg.connect(self._target, autocommit=True)
        return self.db.execute(to_psycopg(sql), params)

    def close(self) -> None:
        self._closing = True
        self.db.close()

    def apply(self, event: EventBase) -> bool:
        """Apply one event once; False when its id was applied before (nothing changes)."""
        self._run("BEGIN")
        try:
            seen = self._run(
                "SELECT 1 FROM applied WHERE event_id = :id", {"id": event.event_id}
            ).fetchone()
            if seen is not None:
                self._run("ROLLBACK")
                return False
            self._run("INSERT INTO applied (event_id) VALUES (:id)", {"id": event.event_id})
            change = project(self.customer(event.customer_id), event)
            if change.customer is not None:
                self._run(_UPSERT, _to_row(change.customer))
            if change.entry is not None:
                self._run(_INSERT_ENTRY, asdict(change.entry))
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")
        return True

    def customer(self, customer_id: str) -> Customer | None:
        row = self._run(
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
        (total,) = self._run(
            f"SELECT COUNT(*) FROM customers WHERE {clause}",  # noqa: S608  (fixed clauses)
            params,
        ).fetchone()
        rows = self._run(
            f"{_SELECT_CUSTOMER} WHERE {clause} ORDER BY customer_id LIMIT :limit OFFSET :offset",
            {**params, "limit": per_page, "offset": (page - 1) * per_page},
        ).fetchall()
        return Page([_from_row(r) for r in rows], int(total), page, per_page)

    def overview(self) -> Overview:
        per_stage = {
            str(stage): int(count)
            for stage, count in self._run(
                "SELECT COALESCE(stage, ''), COUNT(*) FROM customers "
                "GROUP BY COALESCE(stage, '') ORDER BY COALESCE(stage, '')"
            )
        }
        totals: dict[str, Decimal] = {}
        for (overdue,) in self._run("SELECT overdue FROM customers WHERE overdue <> '[]'"):
            for currency, amount in json.loads(overdue):
                totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount)
        (count, as_of) = self._run("SELECT COUNT(*), MAX(as_of) FROM customers").fetchone()
        return Overview(
            per_stage=per_stage,
            overdue=[(c, str(totals[c])) for c in sorted(totals)],
            customers=int(count),
            as_of=as_of,
        )

    def timeline(self, customer_id: str, *, limit: int = 500) -> list[Entry]:
        """The customer's entries, newest first."""
        rows = self._run(
            f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM timeline "  # noqa: S608  (fixed names)
            "WHERE customer_id = :id ORDER BY occurred_at DESC, event_id DESC LIMIT :limit",
            {"id": customer_id, "limit": limit},
        ).fetchall()
        return [Entry(*row) for row in rows]

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every read-model table, sorted: what two stores compare by."""
        return {
            table: sorted(self._run(f"SELECT * FROM {table}").fetchall())  # noqa: S608
            for table in ("applied", "customers", "timeline")
        }
