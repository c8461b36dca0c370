"""`billstate status` and `billstate timeline` against a real console app (its aiohttp app on
a real store filled with docs/examples/lifecycle.jsonl and what replay decides of it), served
on a loopback port; the errors in words with their exit codes."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from rich.console import Console

from billstate_cli.commands.status import NA, fetch, status_lines, status_view, timeline_lines
from billstate_cli.local import free_port
from billstate_cli.main import main
from billstate_cli.replay import Replay
from billstate_console.domain.auth import AuthConfig
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer
from billstate_shared.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
LIFECYCLE = ROOT / "docs/examples/lifecycle.jsonl"
POLICY = ROOT / "policies/standard.yaml"
VIEWER = "viewer-token-for-status-tests"


def filled_store() -> Store:
    """The lifecycle's inputs and replay's decisions, applied to a new store."""
    store = Store(":memory:")
    replay = Replay(load_policy(POLICY))
    for line in LIFECYCLE.read_text().splitlines():
        if not line.strip():
            continue
        event = decode(line.encode())
        store.apply(event)
        for out in replay.feed(event):
            store.apply(decode(to_bytes(out)))
    return store


@pytest.fixture(scope="module")
async def console() -> AsyncIterator[tuple[str, Store]]:
    store = filled_store()
    app = build_app(
        store, AuthConfig(tokens=((VIEWER, "viewer"),)), progress=Progress(), metrics=Metrics("c")
    )
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}", store
    await server.stop()
    store.close()


async def billstate(*argv: str) -> int:
    # The CLI is synchronous (urllib); the console answers on this event loop meanwhile.
    return await asyncio.to_thread(main, list(argv))


async def test_status_plain(
    console: tuple[str, Store], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, store = console
    monkeypatch.setenv("BILLSTATE_CONSOLE_TOKEN", VIEWER)
    monkeypatch.setenv("BILLSTATE_CONSOLE_URL", url)
    assert await billstate("status", "contoso") == 0
    out = capsys.readouterr().out
    row = store.customer("contoso")
    assert row is not None
    assert row.why
    assert out.startswith("contoso (Contoso Ltd.)\n")
    assert f"stage: {row.stage} since {row.since}" in out
    assert row.why in out
    for title in ("Why", "Holds", "Pending payments", "Subscriptions", "Next step"):
        assert f"\n{title}\n" in out
    assert "\x1b[" not in out  # no terminal colours in a pipe


async def test_status_json_is_the_api_document(
    console: tuple[str, Store], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = console
    monkeypatch.setenv("BILLSTATE_CONSOLE_TOKEN", VIEWER)
    assert await billstate("status", "contoso", "--console", url, "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == await asyncio.to_thread(fetch, url, "/api/customers/contoso", VIEWER)
    assert printed["customer_id"] == "contoso"


async def test_timeline_newest_first_with_limit(
    console: tuple[str, Store],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url, store = console
    monkeypatch.delenv("BILLSTATE_CONSOLE_TOKEN", raising=False)
    token = tmp_path / "viewer.token"
    token.write_text(VIEWER + "\n")
    argv = ("timeline", "contoso", "--console", url, "--token-file", str(token))
    assert await billstate(*argv, "--limit", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    newest = store.timeline("contoso")[:3]
    assert lines[0] == "contoso: 3 entries, newest first"
    entries = [line for line in lines[1:] if not line.startswith("    why: ")]
    assert [e.split()[0] for e in entries] == [n.occurred_at for n in newest]
    assert all(n.summary in e for n, e in zip(newest, entries, strict=True))
    whys = [line[len("    why: ") :] for line in lines if line.startswith("    why: ")]
    assert whys == [n.why for n in newest if n.why]

    assert await billstate(*argv, "--limit", "2", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["customer_id"] == "contoso"
    assert [i["event_id"] for i in doc["items"]] == [n.event_id for n in newest[:2]]


async def test_unknown_customer_exits_1(
    console: tuple[str, Store], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = console
    monkeypatch.setenv("BILLSTATE_CONSOLE_TOKEN", VIEWER)
    assert await billstate("status", "nobody", "--console", url) == 1
    assert "unknown customer" in capsys.readouterr().err
    assert await billstate("timeline", "nobody", "--console", url) == 1


async def test_without_or_with_a_wrong_token_exits_2_saying_what_to_set(
    console: tuple[str, Store],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url, _ = console
    monkeypatch.delenv("BILLSTATE_CONSOLE_TOKEN", raising=False)
    assert await billstate("status", "contoso", "--console", url) == 2
    err = capsys.readouterr().err
    assert "401" in err
    assert "BILLSTATE_CONSOLE_TOKEN" in err
    assert "--token-file" in err
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-a-token")
    assert await billstate("status", "contoso", "--console", url, "--token-file", str(wrong)) == 2
    assert "401" in capsys.readouterr().err
    missing = tmp_path / "missing.token"
    assert await billstate("status", "contoso", "--console", url, "--token-file", str(missing)) == 2
    assert "cannot read --token-file" in capsys.readouterr().err


async def test_forbidden_exits_2_saying_which(capsys: pytest.CaptureFixture[str]) -> None:
    # A sign-in proxy that knows the user but gives no console role answers 403.
    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": "no console role for this user"}, status=403)

    app = web.Application()
    app.router.add_get("/api/customers/{id}", refuse)
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        assert await billstate("status", "c1", "--console", f"http://127.0.0.1:{server.port}") == 2
    finally:
        await server.stop()
    err = capsys.readouterr().err
    assert "403 forbidden (no console role for this user)" in err


async def test_unreachable_console_exits_2_naming_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert await billstate("status", "contoso", "--console", url) == 2
    err = capsys.readouterr().err
    assert f"the console at {url} is unreachable" in err


FULL: dict[str, Any] = {
    "customer_id": "c1",
    "name": "Northwind",
    "locale": "en",
    "tags": ["smb"],
    "stage": "final_notice",
    "since": "2026-02-20",
    "why": "Entered final_notice: invoice INV-1 is 14 days past due.",
    "why_rule": "stage.final_notice",
    "overdue": [{"currency": "USD", "amount": "835.94"}],
    "days_past_due": 14,
    "exposure": [{"currency": "EUR", "amount": "40.00"}, {"currency": "USD", "amount": "702.11"}],
    "next": {"stage": "suspended", "on": "2026-02-28"},
    "as_of": "2026-02-21",
    "waiting": None,
    "balances": [
        {
            "currency": "USD",
            "overdue": "835.94",
            "open": "1035.94",
            "credit": "0.00",
            "invoices": [
                {
                    "invoice_id": "INV-1",
                    "issued_on": "2026-01-01",
                    "due_on": "2026-02-07",
                    "amount": "900.00",
                    "open": "835.94",
                    "disputed": "50.00",
                    "days_past_due": 14,
                }
            ],
        }
    ],
    "holds": [
        {
            "hold_id": "H1",
            "kind": "promise_to_pay",
            "invoice_id": None,
            "amount": "100.00",
            "until": "2026-03-01",
            "reason": "called",
            "by": "ops",
            "placed_on": "2026-02-19",
        }
    ],
    "pending_payments": [
        {"payment_id": "PAY-9", "amount": "200.00", "currency": "USD", "expected_by": "2026-03-02"}
    ],
    "subscriptions": [
        {
            "subscription_id": "sub-1",
            "access": "active",
            "provider": "builtin",
            "at": "2026-02-23T01:00:00.000000Z",
            "detail": None,
        }
    ],
    "next_step": {
        "stage": "suspended",
        "on": "2026-02-28",
        "unless": [{"currency": "USD", "amount": "835.94"}],
        "text": "suspension on 2026-02-28 unless USD 835.94 is paid",
    },
    "policy": {"name": "standard", "version": 3},
}


def test_status_shows_every_part_of_the_full_document() -> None:
    plain = "\n".join(status_lines(FULL))
    terminal = Console(file=io.StringIO(), width=140, record=True, color_system="truecolor")
    terminal.print(status_view(FULL))
    rich = terminal.export_text()
    for out in (plain, rich):
        assert "stage: final_notice since 2026-02-20" in out
        assert "[stage.final_notice]" in out
        assert "USD balance: overdue 835.94, open 1035.94, credit 0.00" in out
        assert "policy: standard v3" in out
        assert "Exposure to Microsoft\n  EUR 40.00, USD 702.11" in out
        for cells in (
            ("INV-1", "2026-02-07", "835.94", "50.00"),
            ("H1", "promise_to_pay", "2026-03-01", "ops"),
            ("PAY-9", "200.00", "2026-03-02"),
            ("sub-1", "active", "builtin", "2026-02-23 01:00Z"),
        ):
            assert any(all(c in line for c in cells) for line in out.splitlines()), cells
        assert "suspension on 2026-02-28 unless USD 835.94 is paid" in out
        assert NA not in out


def test_absent_keys_are_not_available_and_the_old_next_is_used() -> None:
    old = {k: FULL[k] for k in ("customer_id", "stage", "since", "why", "overdue", "next")}
    out = "\n".join(status_lines(old))
    assert "Holds\n  not available" in out
    assert f"Exposure to Microsoft\n  {NA}" in out
    assert "Subscriptions\n  not available" in out
    assert f"open invoices: {NA}" in out
    assert "overdue: USD 835.94" in out
    assert "Next step\n  suspended on 2026-02-28" in out
    no_step = "\n".join(status_lines({**FULL, "next_step": None, "holds": []}))
    assert "Next step\n  none scheduled" in no_step
    assert "Holds\n  none" in no_step
    assert "Exposure to Microsoft\n  none" in "\n".join(status_lines({**FULL, "exposure": []}))


def test_timeline_lines_without_entries() -> None:
    assert timeline_lines({"customer_id": "c1", "items": []}) == ["c1: 0 entries, newest first"]
