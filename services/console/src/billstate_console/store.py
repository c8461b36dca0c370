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
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg

from billstate_console.domain import cases as ops
from billstate_console.domain.account import Balance, fold, ledger_event
from billstate_console.domain.projection import Access, Customer, Entry, Overdue, project
from billstate_console.domain.support import Ticket, ticket_of
from billstate_shared.contracts.events import EventBase
from billstate_shared.domain.ledger import LEDGER_EVENTS
from billstate_shared.errors import ConfigRefused, Refused

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
        billing_email TEXT,
        partner_email TEXT,
        subscriptions TEXT NOT NULL,
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
        exposure      TEXT NOT NULL,
        state         TEXT,
        next_at       VARCHAR(260) NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS customers_stage ON customers (stage, customer_id)",
    "CREATE INDEX IF NOT EXISTS customers_as_of ON customers (as_of)",  # the overview's MAX
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
    # customer detail: the ledger events are read back per customer to fold them.
    "CREATE INDEX IF NOT EXISTS timeline_ledger ON timeline (customer_id, event_type)",
    """CREATE TABLE IF NOT EXISTS customer_tags (
        customer_id VARCHAR(200) NOT NULL,
        tag         VARCHAR(200) NOT NULL,
        PRIMARY KEY (customer_id, tag)
    )""",
    "CREATE INDEX IF NOT EXISTS customer_tags_tag ON customer_tags (tag, customer_id)",
    """CREATE TABLE IF NOT EXISTS balances (
        customer_id VARCHAR(200) NOT NULL,
        currency    VARCHAR(3) NOT NULL,
        open        TEXT NOT NULL,
        overdue     TEXT NOT NULL,
        credit      TEXT NOT NULL,
        open_key    DOUBLE PRECISION NOT NULL,
        overdue_key DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (customer_id, currency)
    )""",
    "CREATE INDEX IF NOT EXISTS balances_currency ON balances (currency, overdue_key)",
    # The engine's overdue per customer and currency (the customer row's, as rows), for the
    # overview's totals: summed without decoding every customer's JSON.
    """CREATE TABLE IF NOT EXISTS overdue (
        customer_id VARCHAR(200) NOT NULL,
        currency    VARCHAR(3) NOT NULL,
        amount      TEXT NOT NULL,
        PRIMARY KEY (customer_id, currency)
    )""",
    # The exposure to Microsoft per customer and currency, likewise for the overview.
    """CREATE TABLE IF NOT EXISTS exposure (
        customer_id VARCHAR(200) NOT NULL,
        currency    VARCHAR(3) NOT NULL,
        amount      TEXT NOT NULL,
        PRIMARY KEY (customer_id, currency)
    )""",
    """CREATE TABLE IF NOT EXISTS access (
        customer_id     VARCHAR(200) NOT NULL,
        subscription_id VARCHAR(200) NOT NULL,
        access          VARCHAR(16) NOT NULL,
        provider        VARCHAR(64) NOT NULL,
        at              VARCHAR(32) NOT NULL,
        detail          TEXT NOT NULL,
        version         VARCHAR(260) NOT NULL,
        PRIMARY KEY (customer_id, subscription_id)
    )""",
    # operations: escalation cases and their steps, parked suspensions, dead letters, audit
    """CREATE TABLE IF NOT EXISTS cases (
        case_id         VARCHAR(200) PRIMARY KEY,
        customer_id     VARCHAR(200) NOT NULL,
        occurred_at     VARCHAR(40) NOT NULL,
        kind            VARCHAR(64) NOT NULL,
        subscription_id VARCHAR(200) NOT NULL,
        provider        VARCHAR(128) NOT NULL,
        command_id      VARCHAR(200),
        error           TEXT NOT NULL,
        raw             TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS case_notes (
        event_id    VARCHAR(200) PRIMARY KEY,
        case_id     VARCHAR(200) NOT NULL,
        customer_id VARCHAR(200) NOT NULL,
        step        VARCHAR(16) NOT NULL,
        actor       VARCHAR(128) NOT NULL,
        note        TEXT NOT NULL,
        occurred_at VARCHAR(40) NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS case_notes_case ON case_notes (case_id, occurred_at)",
    """CREATE TABLE IF NOT EXISTS parked (
        command_id       VARCHAR(200) PRIMARY KEY,
        customer_id      VARCHAR(200) NOT NULL,
        occurred_at      VARCHAR(40) NOT NULL,
        version          VARCHAR(260) NOT NULL,
        subscription_ids TEXT NOT NULL,
        provider         VARCHAR(128) NOT NULL,
        guard            VARCHAR(64) NOT NULL,
        reason           TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS unparked (
        command_id  VARCHAR(200) PRIMARY KEY,
        customer_id VARCHAR(200) NOT NULL,
        occurred_at VARCHAR(40) NOT NULL,
        version     VARCHAR(260) NOT NULL,
        outcome     VARCHAR(16) NOT NULL,
        actor       VARCHAR(128) NOT NULL,
        reason      TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS letters (
        topic            VARCHAR(249) NOT NULL,
        dlq_partition    INTEGER NOT NULL,
        dlq_offset       BIGINT NOT NULL,
        source_topic     VARCHAR(249),
        source_partition INTEGER,
        source_offset    BIGINT,
        reason           TEXT NOT NULL,
        field            TEXT NOT NULL,
        service          VARCHAR(128) NOT NULL,
        event_type       VARCHAR(64),
        at               VARCHAR(40),
        customer_id      VARCHAR(200),
        key_b64          TEXT,
        value_b64        TEXT,
        PRIMARY KEY (topic, dlq_partition, dlq_offset)
    )""",
    """CREATE TABLE IF NOT EXISTS audit (
        action_id VARCHAR(64) PRIMARY KEY,
        at        VARCHAR(40) NOT NULL,
        actor     VARCHAR(128) NOT NULL,
        action    VARCHAR(64) NOT NULL,
        subject   TEXT NOT NULL,
        topic     VARCHAR(249) NOT NULL,
        event_id  VARCHAR(200) NOT NULL,
        result    VARCHAR(16) NOT NULL DEFAULT 'sent',
        detail    TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at, action_id)",
    # support tickets (support.requests.v1): the request's half and the resolution's half
    """CREATE TABLE IF NOT EXISTS support (
        customer_id VARCHAR(200) NOT NULL,
        ticket_id   VARCHAR(200) NOT NULL,
        topic       VARCHAR(32),
        channel     TEXT,
        summary     TEXT,
        opened_at   VARCHAR(32),
        resolved_at VARCHAR(32),
        resolution  TEXT,
        PRIMARY KEY (customer_id, ticket_id)
    )""",
    "CREATE INDEX IF NOT EXISTS support_open ON support (resolved_at, opened_at)",
    # The helpdesk receiver's accepted webhook ids (the console's own, like the audit): a
    # delivery whose id is here is a retry, answered "duplicate" and sent nowhere.
    """CREATE TABLE IF NOT EXISTS hooks (
        webhook_id VARCHAR(256) PRIMARY KEY,
        at         VARCHAR(40) NOT NULL
    )""",
)
# What an audit row says of an action: the broker took its event, a rule refused it (nothing
# was sent), or the send failed (nothing was taken).
RESULTS = ("sent", "refused", "failed")
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
_ACCESS_COLUMNS = tuple(f.name for f in fields(Access))
# Newest report wins, whatever order the reports arrive in.
_UPSERT_ACCESS = (
    f"INSERT INTO access ({', '.join(_ACCESS_COLUMNS)}) "  # noqa: S608  (fixed names)
    f"VALUES ({', '.join(':' + c for c in _ACCESS_COLUMNS)}) "
    "ON CONFLICT (customer_id, subscription_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ACCESS_COLUMNS[2:])
    + " WHERE excluded.version > access.version"
)
_LEDGER_TYPES = tuple(sorted(LEDGER_EVENTS))
_SELECT_LEDGER = (
    "SELECT raw FROM timeline WHERE customer_id = :id AND event_type IN ("  # noqa: S608
    + ", ".join(f"'{t}'" for t in _LEDGER_TYPES)
    + ")"
)
# The standard policy's stages in order; a stage only another policy has sorts after them.
STAGE_ORDER = ("current", "reminder", "overdue", "final_notice", "suspended")
_STAGE_RANK = (
    "CASE stage "
    + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STAGE_ORDER))
    + f" ELSE {len(STAGE_ORDER)} END"
)
SORTS = ("id", "name", "stage", "overdue", "next")
# Every table the topics rebuild (not `meta`, whose generation is the store's own, nor the
# `audit`, which records the console's own actions).
# The tables' layout: a store of another layout is refused (`Store._check_layout`). Bump it
# with every change to `_SCHEMA` that an existing store would not have.
LAYOUT = "3"
_REBUILT = (
    "applied", "customers", "timeline", "customer_tags", "balances", "overdue", "exposure",
    "access",
    "cases", "case_notes", "parked", "unparked", "letters", "support",
)  # fmt: skip
ORDERS = ("asc", "desc")
HOOK_DAYS = 7  # how long the helpdesk receiver remembers an accepted webhook id


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
    exposure: list[tuple[str, str]] = field(default_factory=list)  # (currency, total)


def _to_row(customer: Customer) -> dict[str, Any]:
    # Shallow: `asdict` deep-copies every value, a cost paid on every state record.
    row = {c: getattr(customer, c) for c in _CUSTOMER_COLUMNS}
    row["tags"] = json.dumps(list(customer.tags))
    row["overdue"] = json.dumps([list(pair) for pair in customer.overdue])
    row["exposure"] = json.dumps([list(pair) for pair in customer.exposure])
    row["subscriptions"] = json.dumps(list(customer.subscriptions))
    return row


def _from_row(row: tuple[Any, ...]) -> Customer:
    values = dict(zip(_CUSTOMER_COLUMNS, tuple(row), strict=True))
    values["tags"] = tuple(json.loads(values["tags"]))
    values["overdue"] = tuple((c, a) for c, a in json.loads(values["overdue"]))
    values["exposure"] = tuple((c, a) for c, a in json.loads(values["exposure"]))
    values["subscriptions"] = tuple(json.loads(values["subscriptions"]))
    return Customer(**values)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

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


_TICKET_COLUMNS = ", ".join(f.name for f in fields(Ticket))
_TICKET_PARAMS = ", ".join(":" + f.name for f in fields(Ticket))
_LETTER_COLUMNS = (
    "topic", "dlq_partition", "dlq_offset", "source_topic", "source_partition", "source_offset",
    "reason", "field", "service", "event_type", "at", "customer_id", "key_b64", "value_b64",
)  # fmt: skip
_CASE_COLUMNS = (
    "case_id, customer_id, occurred_at, kind, subscription_id, provider, command_id, error, raw"
)
# A case's status from its steps, whatever order they arrived in.
_STATUS = (
    "(CASE WHEN EXISTS (SELECT 1 FROM case_notes n WHERE n.case_id = cases.case_id"
    " AND n.step = 'resolved') THEN 'resolved' WHEN EXISTS (SELECT 1 FROM case_notes n"
    " WHERE n.case_id = cases.case_id) THEN 'acknowledged' ELSE 'open' END)"
)


@dataclass(frozen=True)
class CaseView:
    case: ops.Case
    status: str


@dataclass(frozen=True)
class Action:
    """One audit row: an operator's action from the console, and how it ended."""

    at: str
    actor: str
    action: str
    subject: str
    topic: str
    event_id: str  # "" when nothing was sent
    result: str = "sent"  # one of RESULTS
    detail: str = ""  # the refusal or the failure, in words


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
        self._check_layout()
        self._audit_results()
        self._run(
            "INSERT INTO meta (key, value) VALUES ('generation', :value) "
            "ON CONFLICT (key) DO NOTHING",
            {"value": uuid.uuid4().hex[:16]},
        )
        (self.generation,) = self._run("SELECT value FROM meta WHERE key = 'generation'").fetchone()

    def _check_layout(self) -> None:
        # A store whose tables an older console laid out would answer with rows missing:
        # refuse it, in words, rather than serve a half-empty read model.
        found = self._run("SELECT key, value FROM meta").fetchall()
        meta = {str(k): str(v) for k, v in found}
        if "generation" in meta and meta.get("layout") != LAYOUT:
            raise ConfigRefused(
                "database_url",
                f"holds a console store of layout {meta.get('layout', '1')}, this console needs"
                f" layout {LAYOUT}: point it at a new database or schema (or delete the SQLite"
                " file) and the console rebuilds the read model from the topics; keep the old"
                " one for its audit rows",
            )
        self._run(
            "INSERT INTO meta (key, value) VALUES ('layout', :value) ON CONFLICT (key) DO NOTHING",
            {"value": LAYOUT},
        )

    def _audit_results(self) -> None:
        # A store made before the audit kept results: its rows were all sent.
        found = self._run("SELECT * FROM audit WHERE 1 = 0")
        names = [c[0] for c in getattr(found, "description", None) or ()]
        for column, kind in (("result", "VARCHAR(16) NOT NULL DEFAULT 'sent'"),
                             ("detail", "TEXT NOT NULL DEFAULT ''")):  # fmt: skip
            if column not in names:
                self._run(f"ALTER TABLE audit ADD COLUMN {column} {kind}")

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
            added = self._run(
                "INSERT INTO applied (event_id) VALUES (:id) ON CONFLICT (event_id) DO NOTHING",
                {"id": event.event_id},
            )
            if added.rowcount == 0:  # applied before
                self._run("ROLLBACK")
                return False
            before = self.customer(event.customer_id)
            change = project(before, event)
            if change.customer is not None:
                self._run(_UPSERT, _to_row(change.customer))
            if change.entry is not None:
                entry = change.entry
                self._run(_INSERT_ENTRY, {c: getattr(entry, c) for c in _ENTRY_COLUMNS})
            self._follow(event, before, change.customer, change.access)
            self._operations(event)
            self._support(event)
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")
        return True

    # customer detail ----------------------------------------------------------------------

    def _follow(
        self,
        event: EventBase,
        before: Customer | None,
        after: Customer | None,
        access: tuple[Access, ...],
    ) -> None:
        """Keep the tables derived from a customer's events: tags, access, balances."""
        for each in access:
            self._run(_UPSERT_ACCESS, asdict(each))
        now = after or before
        if now is None:
            return
        if event.event_type in LEDGER_EVENTS:
            # Open and credit change only with the ledger: the one refold.
            self._balances(now)
        elif before is None or after is None or before.overdue != after.overdue:
            self._overdue(now)
        if after is not None and (before is None or before.overdue != after.overdue):
            self._per_currency("overdue", after.customer_id, after.overdue)
        if after is not None and (before is None or before.exposure != after.exposure):
            self._per_currency("exposure", after.customer_id, after.exposure)
        if after is not None and (before is None or before.tags != after.tags):
            cid = after.customer_id
            self._run("DELETE FROM customer_tags WHERE customer_id = :id", {"id": cid})
            for tag in sorted(set(after.tags)):
                self._run(
                    "INSERT INTO customer_tags (customer_id, tag) VALUES (:id, :tag)",
                    {"id": cid, "tag": tag},
                )

    def _per_currency(self, table: str, customer_id: str, amounts: Overdue) -> None:
        """A customer's rows in `table` ("overdue" or "exposure"), one per currency."""
        self._run(f"DELETE FROM {table} WHERE customer_id = :id", {"id": customer_id})  # noqa: S608
        for currency, amount in amounts:
            self._run(
                f"INSERT INTO {table} (customer_id, currency, amount) "  # noqa: S608
                "VALUES (:id, :currency, :amount)",
                {"id": customer_id, "currency": currency, "amount": amount},
            )

    def _balances(self, customer: Customer) -> None:
        # Open and credit from every ledger event applied so far (the ledger is order
        # independent); overdue is the engine's latest figure (`_overdue`). No business date
        # or hold enters these rows, so a daily state record never refolds the ledger.
        cid = customer.customer_id
        self._run("DELETE FROM balances WHERE customer_id = :id", {"id": cid})
        raws = self._run(_SELECT_LEDGER, {"id": cid}).fetchall()
        owed = dict(customer.overdue)
        for b in fold((ledger_event(raw) for (raw,) in raws), None, ()):
            overdue = owed.get(b.currency, "0")
            self._run(
                "INSERT INTO balances (customer_id, currency, open, overdue, credit, open_key, "
                "overdue_key) VALUES (:id, :currency, :open, :overdue, :credit, :open_key, "
                ":overdue_key)",
                {
                    "id": cid,
                    "currency": b.currency,
                    "open": str(b.open),
                    "overdue": overdue,
                    "credit": str(b.credit),
                    "open_key": float(b.open),
                    "overdue_key": float(Decimal(overdue)),
                },
            )

    def _overdue(self, customer: Customer) -> None:
        """The engine's overdue per currency (its latest standing) onto the balance rows."""
        owed = dict(customer.overdue)
        rows = self._run(
            "SELECT currency, overdue FROM balances WHERE customer_id = :id",
            {"id": customer.customer_id},
        ).fetchall()
        for currency, kept in rows:
            overdue = owed.get(currency, "0")
            if overdue != kept:
                self._run(
                    "UPDATE balances SET overdue = :overdue, overdue_key = :key"
                    " WHERE customer_id = :id AND currency = :currency",
                    {
                        "id": customer.customer_id,
                        "currency": currency,
                        "overdue": overdue,
                        "key": float(Decimal(overdue)),
                    },
                )

    def account(self, customer: Customer) -> list[Balance]:
        """Per currency: open invoices, overdue, credit; the customer's ledger events folded
        through the shared ledger on its business date, disputes from its latest state."""
        raws = self._run(_SELECT_LEDGER, {"id": customer.customer_id}).fetchall()
        state = json.loads(customer.state) if customer.state else {}
        as_of = date.fromisoformat(customer.as_of) if customer.as_of else None
        return fold((ledger_event(raw) for (raw,) in raws), as_of, state.get("holds", ()))

    def access(self, customer_id: str) -> list[Access]:
        rows = self._run(
            f"SELECT {', '.join(_ACCESS_COLUMNS)} FROM access "  # noqa: S608  (fixed names)
            "WHERE customer_id = :id ORDER BY subscription_id",
            {"id": customer_id},
        ).fetchall()
        return [Access(*row) for row in rows]

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
        tag: str | None = None,
        currency: str | None = None,
        sort: str = "id",
        order: str = "asc",
        page: int = 1,
        per_page: int = 50,
    ) -> Page:
        """Customers filtered by stage, tag, a currency they owe in and a search in id or
        name; sorted by id, name, stage, overdue (in `currency`, else days past due) or next
        date (unknown values last either way, then by id); one page."""
        if sort not in SORTS:
            raise Refused("sort", f"is none of {', '.join(SORTS)}")
        if order not in ORDERS:
            raise Refused("order", "is neither asc nor desc")
        where, params = ["1 = 1"], {}
        if stage:
            where.append("stage = :stage")
            params["stage"] = stage
        if tag:
            where.append("customer_id IN (SELECT customer_id FROM customer_tags WHERE tag = :tag)")
            params["tag"] = tag
        if currency:
            where.append(
                "customer_id IN (SELECT customer_id FROM balances "
                "WHERE currency = :currency AND open_key > 0)"
            )
            params["currency"] = currency
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
        key = {
            "id": "customer_id",
            "name": "name",
            "stage": _STAGE_RANK,
            "overdue": "(SELECT b.overdue_key FROM balances b WHERE b.customer_id = "
            "customers.customer_id AND b.currency = :currency)"
            if currency
            else "days_past_due",
            "next": "next_on",
        }[sort]
        direction = order.upper()
        rows = self._run(
            f"{_SELECT_CUSTOMER} WHERE {clause} "
            f"ORDER BY ({key}) IS NULL, {key} {direction}, customer_id {direction} "
            "LIMIT :limit OFFSET :offset",
            {**params, "limit": per_page, "offset": (page - 1) * per_page},
        ).fetchall()
        return Page([_from_row(r) for r in rows], int(total), page, per_page)

    def overview(self) -> Overview:
        # Each figure from the narrowest query that gives it (an index, a few columns): the
        # page must stay fast at 100,000 customers (bench/console.py).
        per_stage = {
            "" if stage is None else str(stage): int(count)
            for stage, count in self._run("SELECT stage, COUNT(*) FROM customers GROUP BY stage")
        }
        per_stage = dict(sorted(per_stage.items()))
        totals: dict[str, Decimal] = {}
        # The engine's figures per customer and currency, summed as Decimal (exact).
        for currency, overdue in self._run("SELECT currency, amount FROM overdue"):
            totals[currency] = totals.get(currency, Decimal(0)) + Decimal(overdue)
        exposed: dict[str, Decimal] = {}
        for currency, amount in self._run("SELECT currency, amount FROM exposure"):
            exposed[currency] = exposed.get(currency, Decimal(0)) + Decimal(amount)
        (as_of,) = self._run("SELECT MAX(as_of) FROM customers").fetchone()
        return Overview(
            per_stage=per_stage,
            overdue=[(c, str(totals[c])) for c in sorted(totals)],
            customers=sum(per_stage.values()),
            as_of=as_of,
            exposure=[(c, str(exposed[c])) for c in sorted(exposed)],
        )

    def stage_counts(self) -> dict[str, int]:
        """Customers per stage (`none`: known, no stage yet); read at each /metrics scrape."""
        rows = self._run("SELECT stage, COUNT(*) FROM customers GROUP BY stage")
        return {"none" if stage is None else str(stage): int(count) for stage, count in rows}

    def as_of(self) -> str | None:
        """The latest business date any customer has reached."""
        (as_of,) = self._run("SELECT MAX(as_of) FROM customers").fetchone()
        return None if as_of is None else str(as_of)

    def stages(self) -> list[str]:
        """The stages customers are in, by name."""
        rows = self._run("SELECT DISTINCT stage FROM customers WHERE stage IS NOT NULL")
        return sorted(str(stage) for (stage,) in rows)

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
            for table in _REBUILT
        }

    # operations -----------------------------------------------------------------------------

    def _operations(self, event: EventBase) -> None:
        """Cases, their steps and parked suspensions: each keyed by its own id, so any order
        of arrival gives the same rows (a parking keeps its earliest record)."""
        if (case := ops.case_of(event)) is not None:
            self._run(
                "INSERT INTO cases (case_id, customer_id, occurred_at, kind, subscription_id,"
                " provider, command_id, error, raw) VALUES (:case_id, :customer_id,"
                " :occurred_at, :kind, :subscription_id, :provider, :command_id, :error, :raw)"
                " ON CONFLICT (case_id) DO NOTHING",
                asdict(case),
            )
        elif (note := ops.note_of(event)) is not None:
            self._run(
                "INSERT INTO case_notes (event_id, case_id, customer_id, step, actor, note,"
                " occurred_at) VALUES (:event_id, :case_id, :customer_id, :step, :by, :note,"
                " :occurred_at) ON CONFLICT (event_id) DO NOTHING",
                asdict(note),
            )
        elif (parking := ops.parking_of(event)) is not None:
            row = asdict(parking)
            if parking.outcome is None:
                self._run(
                    "INSERT INTO parked (command_id, customer_id, occurred_at, version,"
                    " subscription_ids, provider, guard, reason) VALUES (:command_id,"
                    " :customer_id, :occurred_at, :version, :subscription_ids, :provider,"
                    " :guard, :reason) ON CONFLICT (command_id) DO UPDATE SET"
                    " customer_id = excluded.customer_id, occurred_at = excluded.occurred_at,"
                    " version = excluded.version, subscription_ids = excluded.subscription_ids,"
                    " provider = excluded.provider, guard = excluded.guard,"
                    " reason = excluded.reason WHERE excluded.version < parked.version",
                    row,
                )
            else:
                self._run(
                    "INSERT INTO unparked (command_id, customer_id, occurred_at, version,"
                    " outcome, actor, reason) VALUES (:command_id, :customer_id, :occurred_at,"
                    " :version, :outcome, :by, :reason) ON CONFLICT (command_id) DO UPDATE SET"
                    " customer_id = excluded.customer_id, occurred_at = excluded.occurred_at,"
                    " version = excluded.version, outcome = excluded.outcome,"
                    " actor = excluded.actor, reason = excluded.reason"
                    " WHERE excluded.version < unparked.version",
                    row,
                )

    # support ----------------------------------------------------------------------------------

    def _support(self, event: EventBase) -> None:
        """A ticket's request and resolution, each half kept from its earliest event: any
        order of arrival gives the same row (a duplicate request changes nothing)."""
        ticket = ticket_of(event)
        if ticket is None:
            return
        row = asdict(ticket)
        if ticket.opened_at is not None:
            self._run(
                f"INSERT INTO support ({_TICKET_COLUMNS}) VALUES ({_TICKET_PARAMS})"  # noqa: S608
                " ON CONFLICT (customer_id, ticket_id) DO UPDATE SET topic = excluded.topic,"
                " channel = excluded.channel, summary = excluded.summary,"
                " opened_at = excluded.opened_at WHERE support.opened_at IS NULL"
                " OR excluded.opened_at < support.opened_at",
                row,
            )
        else:
            self._run(
                f"INSERT INTO support ({_TICKET_COLUMNS}) VALUES ({_TICKET_PARAMS})"  # noqa: S608
                " ON CONFLICT (customer_id, ticket_id) DO UPDATE SET"
                " resolved_at = excluded.resolved_at, resolution = excluded.resolution"
                " WHERE support.resolved_at IS NULL OR excluded.resolved_at < support.resolved_at",
                row,
            )

    def open_tickets(self, customer_id: str | None = None, *, limit: int = 500) -> list[Ticket]:
        """Requests not resolved (of one customer), oldest first."""
        clause = " AND customer_id = :id" if customer_id is not None else ""
        rows = self._run(
            f"SELECT {_TICKET_COLUMNS} FROM support WHERE resolved_at IS NULL"  # noqa: S608
            f" AND opened_at IS NOT NULL{clause} ORDER BY opened_at, customer_id, ticket_id"
            " LIMIT :limit",
            {"id": customer_id, "limit": limit},
        ).fetchall()
        return [Ticket(*row) for row in rows]

    def ticket(self, customer_id: str, ticket_id: str) -> Ticket | None:
        row = self._run(
            f"SELECT {_TICKET_COLUMNS} FROM support"  # noqa: S608  (fixed names)
            " WHERE customer_id = :id AND ticket_id = :ticket",
            {"id": customer_id, "ticket": ticket_id},
        ).fetchone()
        return None if row is None else Ticket(*row)

    def cases_of(self, customer_id: str) -> list[CaseView]:
        """One customer's cases, newest first, with their status."""
        rows = self._run(
            f"SELECT {_CASE_COLUMNS}, {_STATUS} FROM cases WHERE customer_id = :id "  # noqa: S608
            "ORDER BY occurred_at DESC, case_id",
            {"id": customer_id},
        ).fetchall()
        return [CaseView(ops.Case(*row[:-1]), row[-1]) for row in rows]

    def claim_hook(self, webhook_id: str) -> bool:
        """Take a delivery's webhook id; False when it was taken before (a retry). Ids older
        than HOOK_DAYS go: a helpdesk retries for hours, not weeks."""
        now = datetime.now(UTC)
        self._run(
            "DELETE FROM hooks WHERE at < :cutoff",
            {"cutoff": (now - timedelta(days=HOOK_DAYS)).isoformat(timespec="microseconds")},
        )
        done = self._run(
            "INSERT INTO hooks (webhook_id, at) VALUES (:id, :at) ON CONFLICT (webhook_id)"
            " DO NOTHING",
            {"id": webhook_id, "at": now.isoformat(timespec="microseconds")},
        )
        return done.rowcount == 1

    def release_hook(self, webhook_id: str) -> None:
        """Give a webhook id back: its delivery produced nothing, so its retry must."""
        self._run("DELETE FROM hooks WHERE webhook_id = :id", {"id": webhook_id})

    def apply_letter(self, letter: ops.DeadLetter) -> bool:
        """Keep one dead letter once (by its DLQ position); False when kept before."""
        known = self._run(
            "SELECT 1 FROM letters WHERE topic = :topic AND dlq_partition = :partition"
            " AND dlq_offset = :offset",
            {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
        ).fetchone()
        if known is not None:
            return False
        self._run(
            f"INSERT INTO letters ({', '.join(_LETTER_COLUMNS)}) "  # noqa: S608  (fixed names)
            f"VALUES ({', '.join(':' + f.name for f in fields(ops.DeadLetter))}) "
            "ON CONFLICT (topic, dlq_partition, dlq_offset) DO NOTHING",
            asdict(letter),
        )
        return True

    def cases(self, status: str | None = None, *, limit: int = 500) -> list[CaseView]:
        """Cases newest first, with their status; `status` filters."""
        clause, params = "", dict[str, Any](limit=limit)
        if status in ops.STATUSES:
            clause, params = f"WHERE {_STATUS} = :status", {**params, "status": status}
        rows = self._run(
            f"SELECT {_CASE_COLUMNS}, {_STATUS} FROM cases {clause} "  # noqa: S608
            "ORDER BY occurred_at DESC, case_id LIMIT :limit",
            params,
        ).fetchall()
        return [CaseView(ops.Case(*row[:-1]), row[-1]) for row in rows]

    def case(self, case_id: str) -> tuple[ops.Case, list[ops.Note]] | None:
        row = self._run(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = :id",  # noqa: S608
            {"id": case_id},
        ).fetchone()
        if row is None:
            return None
        notes = self._run(
            "SELECT event_id, case_id, customer_id, step, actor, note, occurred_at"
            " FROM case_notes WHERE case_id = :id ORDER BY occurred_at, event_id",
            {"id": case_id},
        ).fetchall()
        return ops.Case(*row), [ops.Note(*n) for n in notes]

    def case_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(ops.STATUSES, 0)
        for status, count in self._run(
            f"SELECT {_STATUS}, COUNT(*) FROM cases GROUP BY {_STATUS}"  # noqa: S608
        ):
            counts[str(status)] = int(count)
        return counts

    def parked(self, customer_id: str | None = None) -> list[ops.Parking]:
        """Suspensions parked and not yet ended (of one customer), oldest first."""
        clause = " AND p.customer_id = :id" if customer_id is not None else ""
        rows = self._run(
            "SELECT p.command_id, p.customer_id, p.occurred_at, p.version, p.subscription_ids,"  # noqa: S608  (a fixed clause)
            " p.provider, p.guard, p.reason FROM parked p WHERE NOT EXISTS"
            " (SELECT 1 FROM unparked u WHERE u.command_id = p.command_id)"
            f"{clause} ORDER BY p.occurred_at, p.customer_id, p.command_id",
            {"id": customer_id},
        ).fetchall()
        return [ops.Parking(*row) for row in rows]

    def parking(self, command_id: str) -> ops.Parking | None:
        return next((p for p in self.parked() if p.command_id == command_id), None)

    def letters(self, topic: str | None = None, *, limit: int = 500) -> list[ops.DeadLetter]:
        clause = "WHERE topic = :topic" if topic else ""
        rows = self._run(
            f"SELECT {', '.join(_LETTER_COLUMNS)} FROM letters {clause} "  # noqa: S608
            "ORDER BY topic, dlq_partition, dlq_offset LIMIT :limit",
            {"topic": topic, "limit": limit},
        ).fetchall()
        return [ops.DeadLetter(*row) for row in rows]

    def letter_counts(self) -> dict[str, int]:
        return {
            str(topic): int(count)
            for topic, count in self._run(
                "SELECT topic, COUNT(*) FROM letters GROUP BY topic ORDER BY topic"
            )
        }

    def record_action(
        self,
        actor: str,
        action: str,
        *,
        subject: str,
        topic: str,
        event_id: str = "",
        result: str = "sent",
        detail: str = "",
    ) -> None:
        """One audit row: who did what, to what, when, the event it produced, the result."""
        if result not in RESULTS:
            raise Refused("result", f"is none of {', '.join(RESULTS)}")
        self._run(
            "INSERT INTO audit (action_id, at, actor, action, subject, topic, event_id, result,"
            " detail) VALUES (:id, :at, :actor, :action, :subject, :topic, :event_id, :result,"
            " :detail)",
            {
                "id": uuid.uuid4().hex,
                "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": actor,
                "action": action,
                "subject": subject,
                "topic": topic,
                "event_id": event_id,
                "result": result,
                "detail": detail,
            },
        )

    def actions(
        self, *, subject: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[Action]:
        """Audit rows newest first (of one subject), `limit` of them from `offset`."""
        clause = "WHERE subject = :subject" if subject else ""
        rows = self._run(
            "SELECT at, actor, action, subject, topic, event_id, result, detail FROM audit "  # noqa: S608
            f"{clause} ORDER BY at DESC, action_id LIMIT :limit OFFSET :offset",
            {"subject": subject, "limit": limit, "offset": offset},
        ).fetchall()
        return [Action(*row) for row in rows]

    def action_count(self) -> int:
        (count,) = self._run("SELECT COUNT(*) FROM audit").fetchone()
        return int(count)

    def operations_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """The operations tables' rows, sorted (the audit is the console's own, not rebuilt)."""
        return {
            table: sorted(self._run(f"SELECT * FROM {table}").fetchall())  # noqa: S608
            for table in ("cases", "case_notes", "parked", "unparked", "letters")
        }
