"""The customer page tells what `billstate replay` and `billstate plan` tell: the same open and
overdue amounts per currency and the same next date, for every customer of a real history."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_cli.plan import plan
from billstate_cli.replay import Replay
from billstate_collections.domain.snapshot import state_data
from billstate_console.domain.auth import AuthConfig
from billstate_console.domain.i18n import Words
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts import CollectionsState, Event, decode
from billstate_shared.domain.ledger import ZERO
from billstate_shared.policy_file import load_policy
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[4]
LIFECYCLE = ROOT / "docs/examples/lifecycle.jsonl"
POLICY = ROOT / "policies/standard.yaml"
BIN = Path(sys.executable).parent / "billstate"
TOKEN = "parity-viewer-token"
# What the console observes of replay's output (access commands and aged events it does not).
OBSERVED = {"collections.stage_entered", "notice.requested"}
Client = TestClient[web.Request, web.Application]
MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)


@dataclass(frozen=True)
class Truth:
    """What the CLI says of one customer: the final state record, the open amount per
    currency, and the date of the first stage `plan` schedules (None: none)."""

    state: dict[str, object]
    open: dict[str, str]
    first_stage_on: str | None


def billstate(*args: str) -> str:
    return subprocess.run(  # noqa: S603  (our own command, fixed argv)
        [str(BIN), *args], check=True, capture_output=True, text=True
    ).stdout


def feed(path: Path) -> tuple[list[Event], dict[str, Truth]]:
    """The events the console reads (the inputs, replay's output, the collections worker's
    last state record per customer), and the CLI's truth per customer."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    inputs = [decode(line) for line in lines]
    replayed = billstate("replay", "--policy", str(POLICY), str(path)).splitlines()
    outputs = [decode(line) for line in replayed]
    policy = load_policy(POLICY)
    replay = Replay(policy)
    for event in inputs:
        replay.feed(event)
    end = max(e.occurred_at for e in inputs) + timedelta(minutes=1)
    events = [e for e in inputs if e.customer_id != "*"]
    events += [e for e in outputs if e.event_type in OBSERVED]
    truth: dict[str, Truth] = {}
    for cid, book in replay.books.items():
        # The record the worker publishes after the book's last change.
        state = state_data(book, policy)
        events.append(
            CollectionsState(
                event_id=f"state-{cid}-last",
                event_type="collections.state",
                occurred_at=end,
                customer_id=cid,
                data=state,
            )
        )
        opened: dict[str, Decimal] = {}
        for inv in book.ledger.open_invoices():
            opened[inv.currency] = opened.get(inv.currency, ZERO) + inv.open
        stages = [
            row["date"]
            for row in plan(replay, cid, replay.last_tick).items()
            if row["what"].startswith("stage ")
        ]
        truth[cid] = Truth(
            state.model_dump(mode="json"),
            {c: str(a) for c, a in opened.items()},
            stages[0] if stages else None,
        )
    return sorted(events, key=lambda e: e.occurred_at), truth


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "sim.jsonl"
    billstate("simulate", "--customers", "30", "--days", "120", "--seed", "7", "--out", str(out))
    return out


@pytest.fixture(scope="module")
def lifecycle_mid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lifecycle up to 2026-12-10: contoso overdue, the final notice still to come."""
    out = tmp_path_factory.mktemp("life") / "lifecycle-mid.jsonl"
    lines = LIFECYCLE.read_text().splitlines()
    out.write_text(
        "\n".join(line for line in lines if line and json.loads(line)["occurred_at"] < "2026-12-10")
        + "\n"
    )
    return out


async def detail(client: Client, cid: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with client.get(f"/api/customers/{cid}", headers=headers) as answer:
        assert answer.status == 200
        body: dict[str, object] = await answer.json()
        return body


@pytest.fixture
async def served(make_store: MakeStore) -> AsyncIterator[tuple[Store, Client]]:
    store = make_store()
    auth = AuthConfig(tokens=((TOKEN, "viewer"),))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app)) as client:
        yield store, client


async def check(store: Store, client: Client, path: Path) -> dict[str, Truth]:
    events, truth = feed(path)
    for event in events:
        store.apply(event)
    assert truth
    for cid, told in truth.items():
        shown = await detail(client, cid)
        balances = shown["balances"]
        assert isinstance(balances, list)
        overdue = {b["currency"]: Decimal(b["overdue"]) for b in balances if Decimal(b["overdue"])}
        state_overdue = told.state["overdue"]
        assert isinstance(state_overdue, list)
        assert overdue == {m["currency"]: Decimal(m["amount"]) for m in state_overdue}, cid
        opened = {b["currency"]: Decimal(b["open"]) for b in balances if Decimal(b["open"])}
        assert opened == {c: Decimal(a) for c, a in told.open.items()}, cid
        step = shown["next_step"]
        if told.first_stage_on is not None:
            assert isinstance(step, dict), cid
            assert step["on"] == told.first_stage_on, cid
        state_next = told.state["next"]
        assert (step or {}).get("on") == (state_next or {}).get("earliest_on"), cid  # type: ignore[attr-defined]
    return truth


async def test_a_simulated_history_shows_what_replay_and_plan_tell(
    served: tuple[Store, Client], simulated: Path
) -> None:
    store, client = served
    truth = await check(store, client, simulated)
    assert len(truth) == 30
    # cust-00004 disputed USD 664.29 of INV-cust-00004-5, which a later payment then paid in
    # full: the hold stays in force, and nothing open is left to dispute.
    shown = await detail(client, "cust-00004")
    invoices = [i for b in shown["balances"] for i in b["invoices"]]  # type: ignore[attr-defined]
    assert "INV-cust-00004-5" not in [i["invoice_id"] for i in invoices]
    assert all(i["disputed"] == "0.00" for i in invoices)
    assert [h["kind"] for h in shown["holds"]] == ["dispute"]  # type: ignore[attr-defined]
    assert sum(1 for t in truth.values() if t.first_stage_on) >= 3  # customers with debt
    assert any(t.state["overdue"] for t in truth.values())
    # The list's `balances` rows (its currency filter and overdue sort) tell the same: open
    # from the ledger, overdue the engine's, though no state record refolded the ledger.
    kept: dict[str, tuple[dict[str, Decimal], dict[str, Decimal]]] = {}
    for cid, currency, opened, overdue in store.db.execute(
        "SELECT customer_id, currency, open, overdue FROM balances"
    ).fetchall():
        opens, overdues = kept.setdefault(cid, ({}, {}))
        if Decimal(opened):
            opens[currency] = Decimal(opened)
        if Decimal(overdue):
            overdues[currency] = Decimal(overdue)
    for cid, told in truth.items():
        opens, overdues = kept.get(cid, ({}, {}))
        assert opens == {c: Decimal(a) for c, a in told.open.items() if Decimal(a)}, cid
        state_overdue = told.state["overdue"]
        assert isinstance(state_overdue, list)
        assert overdues == {m["currency"]: Decimal(m["amount"]) for m in state_overdue}, cid


async def test_the_lifecycle_mid_way_shows_what_billstate_plan_prints(
    served: tuple[Store, Client], lifecycle_mid: Path
) -> None:
    store, client = served
    await check(store, client, lifecycle_mid)
    printed = json.loads(
        billstate(
            "plan", "--policy", str(POLICY), "--customer", "contoso", "--json", str(lifecycle_mid)
        )
    )
    shown = await detail(client, "contoso")
    first = next(r for r in printed["schedule"] if r["what"].startswith("stage "))
    assert shown["next_step"] == {
        "stage": "final_notice",
        "on": first["date"],
        "unless": [{"currency": "USD", "amount": "1450.00"}],
        "text": f"final notice on {Words('en').day(first['date'])} unless USD 1450.00 is paid",
    }
    assert [
        {"currency": m["currency"], "amount": m["amount"]} for m in printed["state"]["overdue"]
    ] == shown["next_step"]["unless"]  # type: ignore[index]
