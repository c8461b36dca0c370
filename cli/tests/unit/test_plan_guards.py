"""`billstate plan` shows what a suspension waits for: a payment in flight, a business day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billstate_cli.main import main

ROOT = Path(__file__).resolve().parents[3]
BUSINESS_DAYS = ROOT / "policies" / "business-days.yaml"


def _line(event_type: str, at: str, data: dict[str, object], customer: str = "c1") -> str:
    return json.dumps(
        {
            "event_id": f"{event_type}-{at}",
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": at,
            "customer_id": customer,
            "data": data,
        }
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    invoice = {
        "invoice_id": "INV-1",
        "currency": "USD",
        "amount": "100.00",
        "issued_on": "2026-10-01",
        "due_on": "2026-11-01",
        "subscription_ids": ["sub-A"],
    }
    pending = {
        "payment_id": "PAY-1",
        "amount": "100.00",
        "currency": "USD",
        "expected_by": "2026-11-26",
    }
    lines = [
        _line("invoice.issued", "2026-10-01T01:00:00Z", invoice),
        _line("clock.tick", "2026-11-18T01:00:00Z", {}, customer="*"),
        _line("payment.pending", "2026-11-18T02:00:00Z", pending),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_plan_shows_the_payment_in_flight_and_the_business_day_after_it(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", str(history), "--policy", str(BUSINESS_DAYS), "--customer", "c1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "payment in flight: PAY-1 of USD 100.00, expected by 2026-11-26" in out
    assert "suspensions happen on business days only" in out
    # In force through Thursday the 26th: the climb resumes on Friday the 27th.
    suspended = next(line for line in out.splitlines() if "stage suspended" in line)
    assert suspended.startswith("2026-11-27")
    assert "Postponed until today: payment PAY-1 of USD 100.00 expected by 2026-11-26." in out


def test_plan_json_carries_the_wait(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["plan", str(history), "--policy", str(BUSINESS_DAYS), "--customer", "c1", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["state"]["pending_payments"] == [
        {"payment_id": "PAY-1", "amount": "100.00", "currency": "USD", "expected_by": "2026-11-26"}
    ]
    assert doc["state"]["next"] == {"stage": "suspended", "earliest_on": "2026-11-27"}
    assert [row["date"] for row in doc["schedule"] if row["what"] == "access suspend"] == [
        "2026-11-27"
    ]
