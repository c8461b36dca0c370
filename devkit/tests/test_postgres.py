"""The throwaway PostgreSQL server: a real server, a real table, real rows."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from billstate_devkit.postgres import LocalPostgres, LocalPostgresError, find_bin_dir


def test_a_table_round_trips_rows(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://billstate@127.0.0.1:")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE customers (id text PRIMARY KEY, stage text NOT NULL)")
        conn.execute(
            "INSERT INTO customers (id, stage) VALUES (%s, %s), (%s, %s)",
            ("c-1", "current", "c-2", "suspended"),
        )
        conn.commit()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT id, stage FROM customers ORDER BY id").fetchall()
        database = conn.execute("SELECT current_database()").fetchone()
    assert rows == [("c-1", "current"), ("c-2", "suspended")]
    assert database == ("billstate_test",)


def test_stop_ends_the_server_and_removes_its_folder() -> None:
    server = LocalPostgres(database="stopped")
    url = server.start()
    root, pid = server.root, server.pid
    assert root is not None
    assert root.is_dir()
    assert pid is not None
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.stop()
    assert not root.exists()
    assert not _runs(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_missing_binaries_name_the_install_step(tmp_path: Path) -> None:
    with pytest.raises(LocalPostgresError, match="make setup-system"):
        find_bin_dir(debian_root=tmp_path, path=str(tmp_path))


def _runs(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
