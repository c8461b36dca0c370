"""Exposure in `billstate policy diff` (the end line and JSON) and `policy explain` (the
threshold paragraph, en and zh-TW)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "policies" / "standard.yaml"
LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"
EXPOSED = [{"amount": "6500.00", "currency": "USD"}]


def cost(sub: str, start: str, end: str, amount: str) -> dict[str, Any]:
    cost_id = f"G012345678:contoso:{sub}:{start}:{end}"
    return {
        "event_id": f"cost:{cost_id}",
        "event_type": "cost.recorded",
        "schema_version": 1,
        "occurred_at": f"{start}T00:00:00+00:00",
        "customer_id": "contoso",
        "data": {
            "cost_id": cost_id,
            "subscription_id": sub,
            "charge_start": start,
            "charge_end": end,
            "amount": amount,
            "currency": "USD",
            "invoice_ref": "G012345678",
        },
    }


# The invoice (issued 2026-11-01) bills October; November's line is outside it.
COSTS = [
    cost("sub-7c1e9a", "2026-10-01", "2026-10-31", "4000.00"),
    cost("sub-55d0f2", "2026-10-01", "2026-10-31", "2500.00"),
    cost("sub-7c1e9a", "2026-11-01", "2026-11-30", "900.00"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """standard.yaml, candidate.yaml (suspends at day 30, v4), and the example history without
    its payment, with (costs.jsonl) and without (unpaid.jsonl) cost lines."""
    monkeypatch.chdir(tmp_path)
    standard = STANDARD.read_text(encoding="utf-8")
    Path("standard.yaml").write_text(standard, encoding="utf-8")
    new = standard.replace("version: 3 ", "version: 4 ", 1)
    new = new.replace("    days_past_due: 21\n", "    days_past_due: 30\n")
    assert new.count("version: 4 ") == 1
    assert "days_past_due: 30" in new
    Path("candidate.yaml").write_text(new, encoding="utf-8")
    events = [json.loads(line) for line in LIFECYCLE.read_text(encoding="utf-8").splitlines()]
    unpaid = [e for e in events if e["event_type"] != "payment.received"]
    issued = next(i for i, e in enumerate(unpaid) if e["event_type"] == "invoice.issued")
    with_costs = [*unpaid[: issued + 1], *COSTS, *unpaid[issued + 1 :]]
    for name, rows in (("unpaid.jsonl", unpaid), ("costs.jsonl", with_costs)):
        Path(name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tmp_path


def diff(capsys: pytest.CaptureFixture[str], history: str, *extra: str) -> str:
    args = ["policy", "diff", "standard.yaml", "candidate.yaml", "--history", history, *extra]
    code = main(args)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    return out


@pytest.mark.usefixtures("workdir")
def test_diff_shows_the_exposure_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    out = diff(capsys, "costs.jsonl")
    assert "\ncontoso\n" in out
    assert "  exposure at the end: USD 6500.00\n" in out
    doc = json.loads(diff(capsys, "costs.jsonl", "--json"))
    (customer,) = doc["customers"]
    assert customer["customer_id"] == "contoso"
    assert customer["exposure"] == EXPOSED


@pytest.mark.usefixtures("workdir")
def test_diff_without_cost_lines_has_no_exposure(capsys: pytest.CaptureFixture[str]) -> None:
    out = diff(capsys, "unpaid.jsonl")
    assert "\ncontoso\n" in out
    assert "exposure" not in out
    (customer,) = json.loads(diff(capsys, "unpaid.jsonl", "--json"))["customers"]
    assert customer["exposure"] == []


def explain(tmp_path: Path, capsys: pytest.CaptureFixture[str], locale: str, extra: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(STANDARD.read_text(encoding="utf-8") + extra, encoding="utf-8")
    code = main(["policy", "explain", str(path), "--locale", locale])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    return out


THRESHOLDS = 'exposure:\n  escalate_above: {USD: "5000.00", EUR: "4000"}\n'


@pytest.mark.parametrize(
    ("locale", "opening", "amounts"),
    [
        ("en", "We pay Microsoft for your subscriptions", "exceeds EUR 4,000.00 or USD 5,000.00,"),
        ("zh-TW", "無論您是否付款", "超過 EUR 4,000.00或USD 5,000.00，"),
    ],
)
def test_explain_has_the_exposure_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], locale: str, opening: str, amounts: str
) -> None:
    out = explain(tmp_path, capsys, locale, THRESHOLDS)
    (paragraph,) = [p for p in out.split("\n\n") if p.startswith(opening)]
    # Each currency's own threshold, either one enough, in currency order.
    assert amounts in paragraph


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_explain_without_thresholds_says_nothing_of_exposure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], locale: str
) -> None:
    assert "Microsoft" not in explain(tmp_path, capsys, locale, "")
    assert "Microsoft" not in explain(tmp_path, capsys, locale, "exposure: {}\n")
