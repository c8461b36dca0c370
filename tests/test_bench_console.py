"""bench/console.py's data: a coherent two-year customer and crowd, as the real Store reads them."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from billstate_console.store import Store
from billstate_shared.contracts import (
    CollectionsState,
    InvoiceIssued,
    NoticeDelivered,
    NoticeRequested,
    PaymentReceived,
    StageEntered,
)

BENCH = Path(__file__).resolve().parents[1] / "bench" / "console.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_console", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_long_history_is_two_coherent_years(bench: ModuleType) -> None:
    events = bench.long_history()
    assert len({e.event_id for e in events}) == len(events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    states = [e for e in events if isinstance(e, CollectionsState)]
    assert len(states) == 730  # one a day
    invoices = {e.data.invoice_id: e.data.amount for e in events if isinstance(e, InvoiceIssued)}
    payments = [e for e in events if isinstance(e, PaymentReceived)]
    assert len(invoices) == 24
    assert {p.data.invoice_id: p.data.amount for p in payments} == invoices  # in full
    # The stages climb and fall back as a chain, each entry the day's state.
    stage = "current"
    by_day = {s.data.as_of: s.data.stage for s in states}
    for entered in (e for e in events if isinstance(e, StageEntered)):
        assert entered.data.previous == stage
        assert by_day[entered.data.as_of] == entered.data.stage
        stage = entered.data.stage
    kinds = Counter(e.event_type for e in events)
    assert kinds["access.suspended"] > 0
    assert kinds["access.suspended"] - kinds["access.restored"] in {0, 2}  # maybe still out
    requested = {e.data.notice_id for e in events if isinstance(e, NoticeRequested)}
    assert requested == {e.data.notice_id for e in events if isinstance(e, NoticeDelivered)}
    assert bench.long_history() == events  # repeatable


def test_the_store_shows_what_was_generated(bench: ModuleType) -> None:
    store = Store(":memory:")
    crowd = list(bench.crowd(300))
    loaded = bench.fill_events(store, [*crowd, *bench.long_history()])
    everything = [*crowd, *bench.long_history()]
    assert loaded == len(everything)
    # Every event but the daily states is a timeline entry of the long customer.
    long = [e for e in everything if e.customer_id == bench.LONG_ID]
    shown = [e for e in long if not isinstance(e, CollectionsState)]
    assert len(store.timeline(bench.LONG_ID, limit=10_000)) == len(shown)
    overview = store.overview()
    assert overview.customers == 301
    last = {e.customer_id: e for e in everything if isinstance(e, CollectionsState)}
    assert overview.per_stage == dict(Counter(s.data.stage for s in last.values()))
    totals: dict[str, Decimal] = {}
    for state in last.values():
        for money in state.data.overdue:
            totals[money.currency] = totals.get(money.currency, Decimal(0)) + money.amount
    assert {c: Decimal(a) for c, a in overview.overdue} == totals
    assert 0 < overview.per_stage["current"] < 301


def test_percentiles_by_nearest_rank(bench: ModuleType) -> None:
    probe = bench.Probe("x", "/", 10.0)
    figures = bench.Figures("sqlite", probe, [float(n) for n in range(1, 21)], 0)
    assert (figures.pct(50), figures.pct(95), figures.pct(100)) == (10.0, 19.0, 20.0)
    assert not figures.ok
    assert bench.Figures("sqlite", probe, [1.0, 9.9], 0).ok
