"""SQLite (WAL) store: desired and applied access, accepted command ids and the highest
command sequence per customer, parked commands, the built-in provider's records, and for the
guards: suspend commands held back for approval, their batches, and the suspensions applied
per provider (the brake's window).

Two kinds of waiting commands, kept apart: `parked` holds commands whose *time budget* ran out
(accepted, tried again by themselves when due); `held` holds suspend commands a *guard* held
back (never accepted, never tried by themselves: only a person's approval applies them).

Synchronous and short: each call is one small transaction on one connection, used from the
event loop's thread only. Everything survives a restart, so a redelivered command is still
recognised and a subscription's applied state is still known.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from billstate_access_control.domain import (
    WINDOW,
    Access,
    CustomerAccess,
    Guard,
    SubscriptionAccess,
    batch_id,
)
from billstate_shared.errors import BillstateError

FILENAME = "access-control.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    customer_id     TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    desired         TEXT NOT NULL CHECK (desired IN ('active', 'suspended')),
    applied         TEXT NOT NULL CHECK (applied IN ('active', 'suspended')),
    command_id      TEXT,
    applied_by      TEXT,
    provider        TEXT,
    PRIMARY KEY (customer_id, subscription_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    customer_id TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    PRIMARY KEY (customer_id, command_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memos (
    provider        TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    memo            TEXT NOT NULL,
    PRIMARY KEY (provider, customer_id, subscription_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (
    customer_id TEXT NOT NULL PRIMARY KEY,
    sequence    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parked (
    customer_id  TEXT NOT NULL,
    command_id   TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    key          BLOB,
    value        BLOB NOT NULL,
    parks        INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    parked_at    TEXT NOT NULL,
    next_attempt TEXT NOT NULL,
    last_error   TEXT NOT NULL,
    PRIMARY KEY (customer_id, command_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parked_due ON parked (next_attempt);
CREATE TABLE IF NOT EXISTS held (
    customer_id      TEXT NOT NULL,
    command_id       TEXT NOT NULL,
    guard            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    provider         TEXT NOT NULL,
    subscription_ids TEXT NOT NULL,
    topic            TEXT NOT NULL,
    partition        INTEGER NOT NULL,
    "offset"         INTEGER NOT NULL,
    key              BLOB,
    value            BLOB NOT NULL,
    held_at          TEXT NOT NULL,
    batch_id         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('held', 'approved', 'rejected', 'cancelled')),
    decided_by       TEXT,
    decided_why      TEXT,
    ended_at         TEXT,
    ended_by         TEXT,
    PRIMARY KEY (customer_id, command_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_state ON held (state, guard);
CREATE INDEX IF NOT EXISTS held_batch ON held (batch_id, held_at);
CREATE TABLE IF NOT EXISTS held_batches (
    batch_id   TEXT NOT NULL PRIMARY KEY,
    guard      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    started_at TEXT NOT NULL,
    closes_at  TEXT NOT NULL,
    announced  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suspension_log (
    provider    TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    PRIMARY KEY (provider, customer_id, command_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suspension_log_at ON suspension_log (provider, applied_at);
CREATE TABLE IF NOT EXISTS ledger (
    customer_id     TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    status          TEXT NOT NULL,
    calls           INTEGER NOT NULL,
    PRIMARY KEY (customer_id, subscription_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (
    kind    TEXT NOT NULL,
    key     TEXT NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stages (
    customer_id TEXT NOT NULL PRIMARY KEY,
    stage       TEXT NOT NULL,
    as_of       TEXT NOT NULL
) WITHOUT ROWID;
"""

_STATUSES: frozenset[str] = frozenset({"active", "suspended"})


def _status(value: object) -> Access:
    if value not in _STATUSES:
        raise BillstateError(f"corrupt access store: status {value!r}")
    return cast("Access", value)


def _subscription(row: tuple[Any, ...]) -> SubscriptionAccess:
    """A row of (subscription_id, desired, applied, command_id, applied_by, provider)."""
    sid, desired, applied, command_id, applied_by, provider = row
    return SubscriptionAccess(
        subscription_id=sid,
        desired=_status(desired),
        applied=_status(applied),
        command_id=command_id,
        applied_by=applied_by,
        provider=provider,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Parked:
    """A command whose time budget ran out before every subscription was applied: the
    original record (to apply it again, or dead-letter it, as it came), how often it was
    parked, the provider calls made so far, and when it is due again (UTC)."""

    customer_id: str
    command_id: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    parks: int
    attempts: int
    parked_at: datetime
    next_attempt: datetime
    last_error: str

    def public(self) -> dict[str, Any]:
        """What GET /customers/{id}/access shows of it."""
        return {
            "command_id": self.command_id,
            "parks": self.parks,
            "attempts": self.attempts,
            "parked_at": self.parked_at.isoformat(),
            "next_attempt": self.next_attempt.isoformat(),
            "last_error": self.last_error,
        }


_PARKED_COLUMNS = (
    'customer_id, command_id, topic, partition, "offset", key, value, parks, attempts,'
    " parked_at, next_attempt, last_error"
)


def _parked(row: tuple[Any, ...]) -> Parked:
    (customer_id, command_id, topic, partition, offset, key, value, parks, attempts) = row[:9]
    parked_at, next_attempt, last_error = row[9:]
    return Parked(
        customer_id=customer_id,
        command_id=command_id,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        parks=parks,
        attempts=attempts,
        parked_at=datetime.fromisoformat(parked_at),
        next_attempt=datetime.fromisoformat(next_attempt),
        last_error=last_error,
    )


def _instant(at: datetime) -> str:
    """A sortable UTC text for an aware datetime (what `next_attempt` is compared by)."""
    if at.tzinfo is None:
        raise BillstateError("the access store keeps aware datetimes only")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


HeldState = Literal["held", "approved", "rejected", "cancelled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A suspend command a guard held back for a person to approve: the original record (to
    apply it, as it came, once approved), the subscriptions still to suspend (a restore takes
    its own out), the guard, its reason, the batch it was announced in, and how it ended
    (`state`; `ended_by` names what ended it: the decision record `topic:partition:offset`,
    or `command:<id>` of the restore that cancelled it)."""

    customer_id: str
    command_id: str
    guard: Guard
    reason: str
    provider: str
    subscription_ids: tuple[str, ...]
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    held_at: datetime
    batch_id: str = ""
    state: HeldState = "held"
    decided_by: str | None = None
    decided_why: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None

    def public(self) -> dict[str, Any]:
        """What GET /customers/{id}/access shows of it."""
        return {
            "command_id": self.command_id,
            "guard": self.guard,
            "reason": self.reason,
            "provider": self.provider,
            "subscription_ids": list(self.subscription_ids),
            "held_at": self.held_at.isoformat(),
            "batch_id": self.batch_id,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """Held commands announced together in one `access.approval_needed`."""

    batch_id: str
    guard: Guard
    provider: str
    started_at: datetime
    closes_at: datetime


_HELD_COLUMNS = (
    "customer_id, command_id, guard, reason, provider, subscription_ids, topic, partition,"
    ' "offset", key, value, held_at, batch_id, state, decided_by, decided_why, ended_at,'
    " ended_by"
)


def _held(row: tuple[Any, ...]) -> Held:
    (customer_id, command_id, guard, reason, provider, subs, topic, partition, offset) = row[:9]
    (key, value, held_at, batch, state, decided_by, decided_why, ended_at, ended_by) = row[9:]
    return Held(
        customer_id=customer_id,
        command_id=command_id,
        guard=guard,
        reason=reason,
        provider=provider,
        subscription_ids=tuple(json.loads(subs)),
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        held_at=datetime.fromisoformat(held_at),
        batch_id=batch,
        state=state,
        decided_by=decided_by,
        decided_why=decided_why,
        ended_at=None if ended_at is None else datetime.fromisoformat(ended_at),
        ended_by=ended_by,
    )


class Store:
    """The service's state in one SQLite file under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, params).fetchall())

    # -- access state -------------------------------------------------------------------

    def load(self, customer_id: str, command_ids: Iterable[str] = ()) -> CustomerAccess:
        """The customer's subscriptions, which of `command_ids` were accepted before, and the
        highest command sequence accepted."""
        rows = self._rows(
            "SELECT subscription_id, desired, applied, command_id, applied_by, provider"
            " FROM subscriptions WHERE customer_id = ?",
            customer_id,
        )
        subs = {row[0]: _subscription(row) for row in rows}
        seen = frozenset(
            cid
            for cid in dict.fromkeys(command_ids)
            if self._rows(
                "SELECT 1 FROM commands WHERE customer_id = ? AND command_id = ?",
                customer_id,
                cid,
            )
        )
        sequence = self._rows("SELECT sequence FROM sequences WHERE customer_id = ?", customer_id)
        return CustomerAccess(customer_id, subs, seen, sequence[0][0] if sequence else None)

    def save(self, state: CustomerAccess) -> None:
        """Write the customer's subscriptions, accepted command ids (never forgets an id) and
        highest sequence (never lowers it)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO subscriptions (customer_id, subscription_id,"
                " desired, applied, command_id, applied_by, provider)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (customer_id, subscription_id) DO UPDATE SET"
                " desired = excluded.desired, applied = excluded.applied,"
                " command_id = excluded.command_id, applied_by = excluded.applied_by,"
                " provider = excluded.provider",
                [
                    (
                        state.customer_id,
                        s.subscription_id,
                        s.desired,
                        s.applied,
                        s.command_id,
                        s.applied_by,
                        s.provider,
                    )
                    for s in state.subscriptions.values()
                ],
            )
            db.executemany(
                "INSERT OR IGNORE INTO commands (customer_id, command_id) VALUES (?, ?)",
                [(state.customer_id, cid) for cid in sorted(state.seen)],
            )
            if state.sequence is not None:
                db.execute(
                    "INSERT INTO sequences (customer_id, sequence) VALUES (?, ?)"
                    " ON CONFLICT (customer_id) DO UPDATE SET"
                    " sequence = MAX(sequence, excluded.sequence)",
                    (state.customer_id, state.sequence),
                )

    def page(
        self, after: tuple[str, str] | None = None, limit: int = 500
    ) -> list[tuple[str, SubscriptionAccess]]:
        """(customer_id, subscription) in key order after `after`: the reconciler walks every
        subscription billstate has touched a page at a time, never holding them all."""
        start = after or ("", "")
        rows = self._rows(
            "SELECT customer_id,"
            " subscription_id, desired, applied, command_id, applied_by, provider"
            " FROM subscriptions"
            " WHERE (customer_id, subscription_id) > (?, ?)"
            " ORDER BY customer_id, subscription_id LIMIT ?",
            start[0],
            start[1],
            limit,
        )
        return [(row[0], _subscription(row[1:])) for row in rows]

    # -- parked commands ----------------------------------------------------------------

    def park(self, parked: Parked) -> None:
        """Keep (or update) a parked command."""
        with self._tx() as db:
            marks = ", ".join("?" * 12)
            db.execute(
                f"INSERT INTO parked ({_PARKED_COLUMNS}) VALUES ({marks})"  # noqa: S608  (column names, no input)
                " ON CONFLICT (customer_id, command_id) DO UPDATE SET"
                " parks = excluded.parks, attempts = excluded.attempts,"
                " next_attempt = excluded.next_attempt, last_error = excluded.last_error",
                (
                    parked.customer_id,
                    parked.command_id,
                    parked.topic,
                    parked.partition,
                    parked.offset,
                    parked.key,
                    parked.value,
                    parked.parks,
                    parked.attempts,
                    _instant(parked.parked_at),
                    _instant(parked.next_attempt),
                    parked.last_error,
                ),
            )

    def unpark(self, customer_id: str, command_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM parked WHERE customer_id = ? AND command_id = ?",
                (customer_id, command_id),
            )

    def parked(self, customer_id: str, command_id: str | None = None) -> list[Parked]:
        """The customer's parked commands (or the one with `command_id`), oldest first."""
        sql = f"SELECT {_PARKED_COLUMNS} FROM parked WHERE customer_id = ?"  # noqa: S608  (column names, no input)
        params: list[Any] = [customer_id]
        if command_id is not None:
            sql += " AND command_id = ?"
            params.append(command_id)
        rows = self._rows(sql + ' ORDER BY partition, "offset"', *params)
        return [_parked(row) for row in rows]

    def due(self, now: datetime, limit: int = 100) -> list[Parked]:
        """Parked commands whose next attempt is at or before `now`, soonest first."""
        rows = self._rows(
            f"SELECT {_PARKED_COLUMNS} FROM parked WHERE next_attempt <= ?"  # noqa: S608  (column names, no input)
            ' ORDER BY next_attempt, partition, "offset" LIMIT ?',
            _instant(now),
            limit,
        )
        return [_parked(row) for row in rows]

    def parked_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM parked")[0][0])

    # -- suspend commands held back by a guard ---------------------------------------------

    def hold(self, held: Held, settle: timedelta) -> Held:
        """Keep a held command and count it in its guard's open batch for the provider (one
        not announced yet), or open a new batch starting now that closes `settle` later.
        Returns the command with its batch."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT batch_id FROM held_batches WHERE guard = ? AND provider = ?"
                " AND announced = 0 ORDER BY started_at LIMIT 1",
                (held.guard, held.provider),
            ).fetchall()
            if rows:
                batch = str(rows[0][0])
            else:
                batch = batch_id(held.guard, held.provider, held.held_at)
                db.execute(
                    "INSERT OR IGNORE INTO held_batches"
                    " (batch_id, guard, provider, started_at, closes_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        batch,
                        held.guard,
                        held.provider,
                        _instant(held.held_at),
                        _instant(held.held_at + settle),
                    ),
                )
            marks = ", ".join("?" * 18)
            db.execute(
                f"INSERT INTO held ({_HELD_COLUMNS}) VALUES ({marks})",  # noqa: S608  (column names, no input)
                (
                    held.customer_id,
                    held.command_id,
                    held.guard,
                    held.reason,
                    held.provider,
                    json.dumps(list(held.subscription_ids)),
                    held.topic,
                    held.partition,
                    held.offset,
                    held.key,
                    held.value,
                    _instant(held.held_at),
                    batch,
                    "held",
                    None,
                    None,
                    None,
                    None,
                ),
            )
        return replace(held, batch_id=batch)

    def held(self, customer_id: str, command_id: str) -> Held | None:
        """The held command `command_id` of the customer, in whatever state, or None."""
        rows = self._rows(
            f"SELECT {_HELD_COLUMNS} FROM held WHERE customer_id = ? AND command_id = ?",  # noqa: S608  (column names, no input)
            customer_id,
            command_id,
        )
        return _held(rows[0]) if rows else None

    def holding(self, customer_id: str) -> list[Held]:
        """The customer's commands still held, oldest first."""
        rows = self._rows(
            f"SELECT {_HELD_COLUMNS} FROM held WHERE customer_id = ? AND state = 'held'"  # noqa: S608  (column names, no input)
            ' ORDER BY held_at, partition, "offset"',
            customer_id,
        )
        return [_held(row) for row in rows]

    def ended_by(self, customer_id: str, ended_by: str) -> list[Held]:
        """The customer's held commands that `ended_by` ended (a restore's cancellations)."""
        rows = self._rows(
            f"SELECT {_HELD_COLUMNS} FROM held WHERE customer_id = ? AND ended_by = ?"  # noqa: S608  (column names, no input)
            " ORDER BY held_at",
            customer_id,
            ended_by,
        )
        return [_held(row) for row in rows]

    def narrow(self, customer_id: str, command_id: str, subscription_ids: tuple[str, ...]) -> None:
        """What a held command still has to suspend, after a restore took some back."""
        with self._tx() as db:
            db.execute(
                "UPDATE held SET subscription_ids = ? WHERE customer_id = ? AND command_id = ?",
                (json.dumps(list(subscription_ids)), customer_id, command_id),
            )

    def end(
        self,
        held: Held,
        state: HeldState,
        *,
        by: str,
        why: str,
        at: datetime,
        ended_by: str,
    ) -> Held:
        """A held command approved, rejected or cancelled: who, why, when, by what."""
        with self._tx() as db:
            db.execute(
                "UPDATE held SET state = ?, decided_by = ?, decided_why = ?, ended_at = ?,"
                " ended_by = ? WHERE customer_id = ? AND command_id = ?",
                (state, by, why, _instant(at), ended_by, held.customer_id, held.command_id),
            )
        return replace(
            held, state=state, decided_by=by, decided_why=why, ended_at=at, ended_by=ended_by
        )

    def held_count(self, guard: str | None = None, provider: str | None = None) -> int:
        """Commands held now (by `guard`, for `provider`, when given)."""
        sql = "SELECT COUNT(*) FROM held WHERE state = 'held'"
        params: list[Any] = []
        if guard is not None:
            sql += " AND guard = ?"
            params.append(guard)
        if provider is not None:
            sql += " AND provider = ?"
            params.append(provider)
        return int(self._rows(sql, *params)[0][0])

    def due_batches(self, now: datetime) -> list[Batch]:
        """Batches not announced yet whose settle window has passed, oldest first."""
        rows = self._rows(
            "SELECT batch_id, guard, provider, started_at, closes_at FROM held_batches"
            " WHERE announced = 0 AND closes_at <= ? ORDER BY started_at",
            _instant(now),
        )
        return [
            Batch(b, g, p, datetime.fromisoformat(s), datetime.fromisoformat(c))
            for b, g, p, s, c in rows
        ]

    def batch_members(self, batch: str) -> list[Held]:
        """The commands held in a batch, in the order they were held."""
        rows = self._rows(
            f"SELECT {_HELD_COLUMNS} FROM held WHERE batch_id = ?"  # noqa: S608  (column names, no input)
            ' ORDER BY held_at, partition, "offset"',
            batch,
        )
        return [_held(row) for row in rows]

    def announced(self, batch: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE held_batches SET announced = 1 WHERE batch_id = ?", (batch,))

    # -- the brake's window: suspend commands applied per provider -----------------------------

    def log_suspension(
        self, provider: str, customer_id: str, command_id: str, at: datetime
    ) -> None:
        """Count a suspend command let through to `provider` (once per command), and forget
        what has left the window twice over."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO suspension_log"
                " (provider, command_id, customer_id, applied_at) VALUES (?, ?, ?, ?)",
                (provider, command_id, customer_id, _instant(at)),
            )
            db.execute(
                "DELETE FROM suspension_log WHERE applied_at < ?", (_instant(at - 2 * WINDOW),)
            )

    def suspensions_since(self, provider: str, since: datetime) -> int:
        """Suspend commands let through to `provider` after `since`."""
        rows = self._rows(
            "SELECT COUNT(*) FROM suspension_log WHERE provider = ? AND applied_at > ?",
            provider,
            _instant(since),
        )
        return int(rows[0][0])

    # -- what a provider remembers between calls ------------------------------------------

    def memo(self, provider: str, customer_id: str, subscription_id: str) -> dict[str, Any] | None:
        """What `provider` wrote down for a subscription (say, the auto-renew a suspension
        dropped), or None."""
        rows = self._rows(
            "SELECT memo FROM memos WHERE provider = ? AND customer_id = ? AND subscription_id = ?",
            provider,
            customer_id,
            subscription_id,
        )
        return cast("dict[str, Any]", json.loads(rows[0][0])) if rows else None

    def remember(
        self, provider: str, customer_id: str, subscription_id: str, memo: dict[str, Any]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO memos (provider, customer_id, subscription_id, memo)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (provider, customer_id, subscription_id)"
                " DO UPDATE SET memo = excluded.memo",
                (provider, customer_id, subscription_id, json.dumps(memo, sort_keys=True)),
            )

    def forget(self, provider: str, customer_id: str, subscription_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM memos WHERE provider = ? AND customer_id = ? AND subscription_id = ?",
                (provider, customer_id, subscription_id),
            )

    # -- what the cost poller and the commitment checks have done -------------------------

    def marked(self, kind: str, key: str) -> bool:
        """Whether `key` was done already (an invoice read, a commitment announced)."""
        return bool(self._rows("SELECT 1 FROM marks WHERE kind = ? AND key = ?", kind, key))

    def mark(self, kind: str, key: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO marks (kind, key, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (kind, key, _instant(at)),
            )

    def set_stage(self, customer_id: str, stage: str, as_of: str) -> None:
        """A customer's collections stage, as of a business date (ISO); an older one than
        what is kept changes nothing (a redelivered or late stage change)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO stages (customer_id, stage, as_of) VALUES (?, ?, ?)"
                " ON CONFLICT (customer_id) DO UPDATE SET stage = excluded.stage,"
                " as_of = excluded.as_of WHERE excluded.as_of >= stages.as_of",
                (customer_id, stage, as_of),
            )

    def stage(self, customer_id: str) -> str | None:
        rows = self._rows("SELECT stage FROM stages WHERE customer_id = ?", customer_id)
        return str(rows[0][0]) if rows else None

    def customers_in(self, stages: Iterable[str]) -> list[str]:
        """The customers whose stage is one of `stages`, in id order."""
        wanted = list(stages)
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        rows = self._rows(
            f"SELECT customer_id FROM stages WHERE stage IN ({marks}) ORDER BY customer_id",  # noqa: S608  (placeholders only)
            *wanted,
        )
        return [str(r[0]) for r in rows]

    # -- the built-in provider's records ------------------------------------------------
    # (The table keeps its first name, `ledger`, so existing data files stay readable.)

    def builtin_apply(self, customer_id: str, subscription_id: str, status: Access) -> None:
        """Set the built-in provider's status of a subscription and count the call."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO ledger (customer_id, subscription_id, status, calls)"
                " VALUES (?, ?, ?, 1)"
                " ON CONFLICT (customer_id, subscription_id) DO UPDATE SET"
                " status = excluded.status, calls = calls + 1",
                (customer_id, subscription_id, status),
            )

    def builtin_status(self, customer_id: str, subscription_id: str) -> Access | None:
        """What the built-in provider holds for a subscription; None for one it never set."""
        rows = self._rows(
            "SELECT status FROM ledger WHERE customer_id = ? AND subscription_id = ?",
            customer_id,
            subscription_id,
        )
        return _status(rows[0][0]) if rows and rows[0][0] in _STATUSES else None

    # -- what GET /customers/{id}/access serves -----------------------------------------

    def view(self, customer_id: str) -> list[dict[str, Any]]:
        """Each subscription's desired and applied state, by whom, and the built-in provider's
        call count."""
        rows = self._rows(
            "SELECT s.subscription_id, s.desired, s.applied, s.command_id, s.provider,"
            " COALESCE(l.calls, 0)"
            " FROM subscriptions s LEFT JOIN ledger l"
            " ON l.customer_id = s.customer_id AND l.subscription_id = s.subscription_id"
            " WHERE s.customer_id = ? ORDER BY s.subscription_id",
            customer_id,
        )
        keys = ("subscription_id", "desired", "applied", "command_id", "provider", "calls")
        return [dict(zip(keys, row, strict=True)) for row in rows]
