"""The simulated billing history: deterministic, valid, ordered, realistic, and replayable."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main
from billstate_cli.replay import Replay
from billstate_cli.simulation import CustomerPlan, _customers, history, write_jsonl
from billstate_shared.contracts import INBOUND_TYPES, decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "policies" / "standard.yaml"


def customer_of(invoice_id: str) -> str:
    return invoice_id.removeprefix("INV-").rsplit("-", 1)[0]  # INV-cust-00042-3


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture(scope="module")
def year_of_2000() -> list[dict[str, Any]]:
    return list(history(2000, 365, seed=11))


@pytest.fixture(scope="module")
def plans_of_2000() -> list[CustomerPlan]:
    """The customers `history(2000, ..., seed=11)` simulates, in order."""
    return [plan for plan, _rng in _customers(2000, seed=11)]


# --- deterministic, valid, ordered -----------------------------------------------------------


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"

    count = write_jsonl(first, history(40, 90, seed=3))
    write_jsonl(second, history(40, 90, seed=3))
    write_jsonl(other, history(40, 90, seed=4))

    assert count == len(lines(first)) > 40 + 90
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_a_customer_does_not_depend_on_the_others_or_on_the_horizon() -> None:
    long = list(history(30, 100, seed=5))
    short = list(history(20, 60, seed=5))
    end = "2026-03-02"  # start + 60 days

    expected = [
        e
        for e in long
        if e["occurred_at"] < end and (e["customer_id"] == "*" or e["customer_id"] <= "cust-00020")
    ]
    assert short == expected


def test_every_line_decodes_against_the_contracts(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write_jsonl(path, history(200, 150, seed=9))

    types: Counter[str] = Counter()
    for raw in lines(path):
        event = decode(raw)  # raises ContractError on any contract violation
        assert event.event_type in INBOUND_TYPES
        assert json.loads(raw)["schema_version"] == 1
        types[event.event_type] += 1

    assert types["clock.tick"] == 150
    assert types["customer.upserted"] == 200
    assert types["invoice.issued"] > 200 * 4


def test_money_is_a_two_decimal_string_and_timestamps_carry_the_offset() -> None:
    for event in history(50, 60, seed=2):
        assert event["occurred_at"].endswith("+08:00")
        for key in ("amount", "amount_delta"):
            if key in event["data"]:
                whole, _, cents = event["data"][key].lstrip("-").partition(".")
                assert whole.isdigit()
                assert len(cents) == 2
                assert cents.isdigit()


def test_occurred_at_never_goes_backwards() -> None:
    stamps = [datetime.fromisoformat(e["occurred_at"]) for e in history(300, 200, seed=1)]

    assert all(a <= b for a, b in pairwise(stamps))


def test_one_tick_a_day_at_nine_local_with_events_on_both_sides() -> None:
    events = list(history(100, 30, seed=8, start=date(2026, 3, 1)))
    ticks = [e for e in events if e["event_type"] == "clock.tick"]

    assert [t["occurred_at"] for t in ticks] == [
        f"{date(2026, 3, 1) + timedelta(days=n)}T09:00:00+08:00" for n in range(30)
    ]
    assert all(t["customer_id"] == "*" and t["data"] == {} for t in ticks)
    times = [e["occurred_at"][11:19] for e in events if e["event_type"] == "invoice.issued"]
    assert min(times) < "09:00:00" < max(times)


def test_the_time_zone_is_honoured() -> None:
    ticks = [e for e in history(1, 3, seed=1, timezone="Europe/Berlin") if e["customer_id"] == "*"]

    assert ticks[0]["occurred_at"] == "2026-01-01T09:00:00+01:00"


# --- realistic -------------------------------------------------------------------------------


def test_customers_look_like_the_brief(plans_of_2000: list[CustomerPlan]) -> None:
    plans = plans_of_2000
    n = len(plans)

    assert [p.customer_id for p in plans[:2]] == ["cust-00001", "cust-00002"]
    assert all(1 <= len(p.subscriptions) <= 4 for p in plans)
    assert {p.locale for p in plans} == {"en", "zh-TW"}
    assert all(p.billing_email == f"ap@{p.customer_id}.example" for p in plans)
    assert 0.02 < sum("strategic" in p.tags for p in plans) / n < 0.09
    eur_only = sum(p.currencies == {"EUR"} for p in plans) / n
    both = sum(p.currencies == {"USD", "EUR"} for p in plans)
    assert 0.07 < eur_only < 0.14
    assert 10 <= both <= 80  # a few
    annual = sum(any(s.annual for s in p.subscriptions) for p in plans) / n
    assert 0.10 < annual < 0.20


def test_the_profile_mix_is_roughly_as_specified(plans_of_2000: list[CustomerPlan]) -> None:
    mix = Counter(p.profile for p in plans_of_2000)
    share = {profile: count / len(plans_of_2000) for profile, count in mix.items()}

    assert share["on_time"] == pytest.approx(0.75, abs=0.04)
    assert share["late"] == pytest.approx(0.15, abs=0.03)
    assert share["partial"] == pytest.approx(0.05, abs=0.015)
    assert share["never"] == pytest.approx(0.03, abs=0.012)


def test_payment_behaviour_follows_the_profile(
    year_of_2000: list[dict[str, Any]], plans_of_2000: list[CustomerPlan]
) -> None:
    profile = {p.customer_id: p.profile for p in plans_of_2000}
    due: dict[str, date] = {}
    paid: dict[str, list[date]] = defaultdict(list)  # targeted payments per invoice
    payers: set[str] = set()
    written_off: set[str] = set()
    for e in year_of_2000:
        d = e["data"]
        if e["event_type"] == "invoice.issued":
            due[d["invoice_id"]] = date.fromisoformat(d["due_on"])
        elif e["event_type"] == "payment.received":
            payers.add(e["customer_id"])
            if "invoice_id" in d:
                paid[d["invoice_id"]].append(date.fromisoformat(e["occurred_at"][:10]))
        elif e["event_type"] == "invoice.voided" and d["reason"] == "written off":
            written_off.add(e["customer_id"])

    def lateness(kind: str) -> list[int]:
        return [
            (days[0] - due[inv]).days
            for inv, days in paid.items()
            if profile[customer_of(inv)] == kind
        ]

    on_time, late = lateness("on_time"), lateness("late")
    assert sum(d <= 0 for d in on_time) / len(on_time) > 0.9
    assert sum(d >= 5 for d in late) / len(late) > 0.6
    assert max(late) <= 40 + 25  # 40 days, or a broken promise's 20 + 25 after the due date
    partial = [inv for inv, days in paid.items() if profile[customer_of(inv)] == "partial"]
    assert sum(len(paid[inv]) >= 2 for inv in partial) / len(partial) > 0.9
    never = {c for c, kind in profile.items() if kind == "never"}
    assert not never & payers
    # Written off 3 to 5 months after the first due date: within the year for nearly all
    # (not for one whose only invoice is an annual one issued late in the year).
    assert written_off <= never
    assert len(written_off) >= 0.9 * len(never)


def test_the_sprinkling_is_there(year_of_2000: list[dict[str, Any]]) -> None:
    types = Counter(e["event_type"] for e in year_of_2000)
    holds = Counter(e["data"]["kind"] for e in year_of_2000 if e["event_type"] == "hold.placed")
    credit_notes = [
        e
        for e in year_of_2000
        if e["event_type"] == "invoice.adjusted" and e["data"]["amount_delta"].startswith("-")
    ]

    assert types["payment.reversed"] > 0
    assert types["payment.failed"] > 0
    assert credit_notes
    assert holds["dispute"] > 0
    assert holds["promise_to_pay"] > 0
    assert types["hold.released"] > 0
    assert types["invoice.voided"] > 0


def test_every_invoiced_subscription_gets_a_cost_line_for_the_invoice_period(
    year_of_2000: list[dict[str, Any]],
) -> None:
    invoices = [e for e in year_of_2000 if e["event_type"] == "invoice.issued"]
    costs = {
        (e["data"]["subscription_id"], e["data"]["charge_start"], e["data"]["charge_end"]): e
        for e in year_of_2000
        if e["event_type"] == "cost.recorded"
    }
    currencies: Counter[str] = Counter()
    for inv in invoices:
        data = inv["data"]
        lines = [
            costs[(s, data["period_start"], data["period_end"])] for s in data["subscription_ids"]
        ]
        total = sum(Decimal(c["data"]["amount"]) for c in lines)
        currencies.update(c["data"]["currency"] for c in lines)
        if all(c["data"]["currency"] == data["currency"] for c in lines):
            # What Microsoft bills: 80 to 90 % of the invoice.
            assert Decimal("0.79") * Decimal(data["amount"]) <= total
            assert total <= Decimal("0.91") * Decimal(data["amount"])
        assert {c["customer_id"] for c in lines} == {inv["customer_id"]}
        assert all(c["occurred_at"][:10] == data["issued_on"] for c in lines)
    assert len(costs) == currencies.total()  # each line belongs to one invoice
    assert currencies["USD"] > 0.8 * sum(currencies.values())
    assert currencies["EUR"] > 0


def test_monthly_invoices_bill_the_month_before_and_annual_ones_the_year_ahead(
    year_of_2000: list[dict[str, Any]],
) -> None:
    for inv in (e["data"] for e in year_of_2000 if e["event_type"] == "invoice.issued"):
        issued = date.fromisoformat(inv["issued_on"])
        start, end = date.fromisoformat(inv["period_start"]), date.fromisoformat(inv["period_end"])
        if start == issued:
            assert end == issued.replace(year=issued.year + 1) - timedelta(days=1)
        else:
            assert end == issued.replace(day=1) - timedelta(days=1)
            assert start == end.replace(day=1)


def test_payments_in_flight_arrive_fail_or_lapse(year_of_2000: list[dict[str, Any]]) -> None:
    pending = {
        e["data"]["payment_id"]: e for e in year_of_2000 if e["event_type"] == "payment.pending"
    }
    received = {
        e["data"]["payment_id"]: e for e in year_of_2000 if e["event_type"] == "payment.received"
    }
    failed = {
        e["data"]["payment_id"]: e
        for e in year_of_2000
        if e["event_type"] == "payment.failed" and "payment_id" in e["data"]
    }
    due = {
        e["data"]["invoice_id"]: date.fromisoformat(e["data"]["due_on"])
        for e in year_of_2000
        if e["event_type"] == "invoice.issued"
    }
    ended: Counter[str] = Counter()
    for payment_id, announced in pending.items():
        d = announced["data"]
        on = date.fromisoformat(announced["occurred_at"][:10])
        expected_by = date.fromisoformat(d["expected_by"])
        assert on < expected_by
        assert payment_id.startswith(f"PAY-{announced['customer_id']}-")
        assert not (payment_id in received and payment_id in failed)
        if payment_id in received:
            ended["arrived"] += 1
            paid = received[payment_id]
            assert paid["customer_id"] == announced["customer_id"]
            assert (paid["data"]["amount"], paid["data"]["currency"]) == (
                d["amount"],
                d["currency"],
            )
            assert on < date.fromisoformat(paid["occurred_at"][:10]) <= expected_by
        elif payment_id in failed:
            ended["failed"] += 1
            invoice = failed[payment_id]["data"]["invoice_id"]
            # In force on the date the standard policies would suspend (21 days past due).
            assert on < due[invoice] + timedelta(days=21) <= expected_by
            assert date.fromisoformat(failed[payment_id]["occurred_at"][:10]) <= expected_by
        else:
            ended["lapsed"] += 1
    # A few in a hundred invoices (late payers past the suspension date, some never-payers),
    # each way of ending among them.
    assert 0.01 < len(pending) / len(due) < 0.06
    assert min(ended["arrived"], ended["failed"], ended["lapsed"]) > 0
    # Failed ones name their payment and are not retried by the billing system.
    assert all(not f["data"]["will_retry"] for f in failed.values())
    assert set(failed) <= set(pending)


# --- replayable ------------------------------------------------------------------------------


def test_a_small_history_replays_with_suspensions_and_restores() -> None:
    replay = Replay(load_policy(STANDARD))
    out: Counter[str] = Counter()

    for envelope in history(50, 120, seed=1):
        event = decode(json.dumps(envelope, ensure_ascii=False).encode())
        for produced in replay.feed(event):
            to_bytes(produced)
            out[produced.event_type] += 1

    assert out["invoice.aged"] > 0
    assert out["collections.stage_entered"] > 0
    assert out["access.suspend"] > 0
    assert out["access.restore"] > 0


def test_billstate_simulate_writes_the_history(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    expected = tmp_path / "expected.jsonl"

    code = main(["simulate", "--customers", "20", "--days", "45", "--seed", "3", "--out", str(out)])
    write_jsonl(expected, history(20, 45, seed=3))

    assert code == 0
    assert out.read_bytes() == expected.read_bytes()


def test_billstate_simulate_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--customers", "1", "--days", "1", "--seed", "1"])

    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err
