"""The audit: every action taken from the console, refused ones too, newest first, paginated;
operators and viewers may read it, in both languages and as JSON."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.errors import Refused
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)
Client = TestClient[web.Request, web.Application]
VIEWER, OPERATOR = "audit-viewer", "audit-operator"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.fixture
async def served(make_store: MakeStore) -> AsyncIterator[tuple[Store, Client]]:
    store = make_store()
    auth = AuthConfig(tokens=((VIEWER, "viewer"), (OPERATOR, "operator")))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app)) as client:
        yield store, client


async def test_newest_first_and_paginated(served: tuple[Store, Client]) -> None:
    store, client = served
    for n in range(120):
        store.record_action(
            "ops-anna", "hold.placed", subject=f"c{n:03d}", topic="collections.control.v1",
            event_id=f"evt-{n:03d}",
        )  # fmt: skip
    async with client.get("/api/audit", headers=AS_VIEWER) as answer:
        first = await answer.json()
    assert (first["total"], first["pages"], first["page"]) == (120, 3, 1)
    assert [a["subject"] for a in first["items"][:2]] == ["c119", "c118"]
    async with client.get("/api/audit?page=3", headers=AS_OPERATOR) as answer:
        last = await answer.json()
    assert [a["event_id"] for a in last["items"]] == [f"evt-{n:03d}" for n in range(19, -1, -1)]
    assert set(last["items"][0]) == {
        "at", "actor", "action", "subject", "topic", "event_id", "result", "detail",
    }  # fmt: skip
    async with client.get("/audit?page=2&lang=zh-TW", headers=AS_VIEWER) as answer:
        html = await answer.text()
    assert "操作紀錄" in html
    assert "c069" in html
    assert "c070" not in html  # on the first page
    assert 'rel="prev"' in html
    assert 'rel="next"' in html


async def test_a_refused_action_is_audited_without_an_event(served: tuple[Store, Client]) -> None:
    store, client = served
    body = {"kind": "dispute", "reason": "wrong seats"}  # a dispute names its invoice
    async with client.post(
        "/api/customers/contoso/holds", json=body, headers=AS_OPERATOR
    ) as answer:
        assert answer.status == 400
        field = (await answer.json())["field"]
    (row,) = store.actions()
    assert (row.actor, row.action, row.subject, row.result, row.event_id) == (
        "token:operator", "hold.placed", "contoso", "refused", "",
    )  # fmt: skip
    assert row.detail.startswith(f"{field}: ")
    async with client.get("/audit", headers=AS_VIEWER) as answer:
        html = await answer.text()
    assert '<tr class="action refused">' in html


async def test_the_audit_needs_an_identity(served: tuple[Store, Client]) -> None:
    _, client = served
    async with client.get("/api/audit") as answer:
        assert answer.status == 401
    async with client.get("/audit", headers={"Accept": "text/html"}, allow_redirects=False) as a:
        assert a.status == 303


def test_an_unknown_result_is_refused(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(Refused):
        store.record_action("x", "y", subject="z", topic="t", result="maybe")
    assert store.actions() == []


def test_an_older_audit_table_gains_its_result_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE audit (action_id VARCHAR(64) PRIMARY KEY, at VARCHAR(40) NOT NULL,"
            " actor VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL, subject TEXT NOT NULL,"
            " topic VARCHAR(249) NOT NULL, event_id VARCHAR(200) NOT NULL)"
        )
        db.execute(
            "INSERT INTO audit VALUES ('a1', '2026-12-01T00:00:00+00:00', 'ops', 'redrive',"
            " 's', 't', 'e1')"
        )
    store = Store(f"sqlite:///{path}")
    (row,) = store.actions()
    assert (row.event_id, row.result, row.detail) == ("e1", "sent", "")
    store.close()
