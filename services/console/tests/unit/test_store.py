"""Which back end a setting opens, and what a store keeps when it is opened again."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from billstate_console.config import Settings
from billstate_console.entrypoints.service import Stages
from billstate_console.store import LAYOUT, Store, sqlite_path, to_psycopg
from billstate_shared.contracts import Event
from billstate_shared.errors import ConfigRefused
from billstate_shared.runtime.metrics import Metrics

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)


def test_the_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "console")
    assert settings.store_url == f"sqlite:///{tmp_path}/console/console.sqlite3"
    store = Store(settings.store_url)
    store.close()
    assert (tmp_path / "console" / "console.sqlite3").is_file()


def test_the_database_url_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_CONSOLE_DATABASE_URL", "postgresql://u@db.example/console")
    assert Settings().store_url == "postgresql://u@db.example/console"


def test_sqlite_urls_and_paths() -> None:
    assert sqlite_path("sqlite:///data/console.sqlite3") == "data/console.sqlite3"
    assert sqlite_path("sqlite:////var/lib/console.sqlite3") == "/var/lib/console.sqlite3"
    assert sqlite_path(Path("/x/console.sqlite3")) == "/x/console.sqlite3"
    assert sqlite_path(":memory:") == ":memory:"
    for bad in ("mysql://db/console", "sqlite:///"):
        with pytest.raises(ConfigRefused):
            sqlite_path(bad)


def test_named_parameters_become_psycopg_ones() -> None:
    sql = "SELECT 1 FROM t WHERE a = :id AND b LIKE :q ESCAPE '\\' AND c = excluded.c"
    assert to_psycopg(sql) == (
        "SELECT 1 FROM t WHERE a = %(id)s AND b LIKE %(q)s ESCAPE '\\' AND c = excluded.c"
    )


def test_a_kept_sqlite_store_keeps_its_generation_and_rows(
    tmp_path: Path, history: list[Event]
) -> None:
    url = f"sqlite:///{tmp_path}/console.sqlite3"
    first = Store(url)
    for event in history:
        first.apply(event)
    generation, rows = first.generation, first.rows()
    first.close()
    again = Store(url)
    assert (again.generation, again.rows()) == (generation, rows)
    assert not any(again.apply(event) for event in history)
    again.close()


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    """The dev kit's server, with `search_path` on a schema of this test's own."""
    schema = f"store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_kept_postgres_store_keeps_its_generation_and_rows(
    schema_url: str, history: list[Event]
) -> None:
    first = Store(schema_url)
    assert first.postgres
    for event in history:
        first.apply(event)
    generation, rows = first.generation, first.rows()
    first.close()
    again = Store(schema_url)
    assert (again.generation, again.rows()) == (generation, rows)
    assert not any(again.apply(event) for event in history)
    again.close()


def test_a_lost_postgres_connection_is_opened_again(
    schema_url: str, history: list[Event], postgres_url: str
) -> None:
    store = Store(schema_url)
    first, rest = history[0], history[1:]
    assert store.apply(first)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store.db.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        store.apply(rest[0])  # the runtime's retry calls again
    assert all(store.apply(event) for event in rest)  # a new connection, nothing lost
    assert not store.apply(first)
    store.close()


def test_rows_cover_every_table_the_topics_rebuild(make_store: MakeStore) -> None:
    store = make_store()
    listing = (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        if store.postgres
        else "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    tables = {name for (name,) in store.db.execute(listing).fetchall()}
    # Not rebuilt: the store's own generation, and the console's own actions.
    assert set(store.rows()) == tables - {"meta", "audit", "hooks"}


def test_a_store_of_another_layout_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "console.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '1' WHERE key = 'layout'")
    db.commit()
    db.close()
    with pytest.raises(ConfigRefused, match=f"layout 1, this console needs layout {LAYOUT}"):
        Store(path)


def test_customers_per_stage_are_on_metrics(store: Store) -> None:
    metrics = Metrics("console")
    metrics.registry.register(Stages(store, "console"))
    per_stage = {stage or "none": n for stage, n in store.overview().per_stage.items()}
    assert per_stage == {"current": 1}  # the lifecycle's one customer, paid up at the end
    sample = metrics.registry.get_sample_value
    found = {
        s: sample("billstate_customers", {"service": "console", "stage": s}) for s in per_stage
    }
    assert found == {s: float(n) for s, n in per_stage.items()}
    assert "# TYPE billstate_customers gauge" in metrics.render().decode()
