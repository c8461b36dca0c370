"""`billstate plan` on the docs' example: the table, --json, its ids, and how it fails.

The input is docs/examples/lifecycle.jsonl cut after the tick of 2026-11-28 without the payment,
as in docs/policy.md "billstate plan".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main

ROOT = Path(__file__).resolve().parents[3]
STANDARD = str(ROOT / "policies" / "standard.yaml")
LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"
BILLSTATE = Path(sys.executable).parent / "billstate"


def cut(after_tick: str, tmp_path: Path, name: str = "lifecycle-cut.jsonl") -> Path:
    """lifecycle.jsonl up to and including the tick of `after_tick`, without the payment."""
    lines: list[str] = []
    for line in LIFECYCLE.read_text("utf-8").splitlines(keepends=True):
        if '"payment.received"' not in line:
            lines.append(line)
        if f'"tick-{after_tick}T01:00Z"' in line:
            break
    path = tmp_path / name
    path.write_text("".join(lines), "utf-8")
    return path


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return cut("2026-11-28", tmp_path)


def plan(events: Path, *more: str, customer: str = "contoso") -> list[str]:
    return ["plan", "--policy", STANDARD, "--customer", customer, str(events), *more]


def test_the_table(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan(history)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[:3] == [
        (
            "customer contoso: stage current as of 2026-11-28; overdue none; - days past due;"
            " suspended: none"
        ),
        "if nothing is paid (standard v3, dates in Asia/Taipei):",
        "date        what                   for       detail",
    ]
    rows = [(line[:10], line[12:34].rstrip(), line[35:44].rstrip()) for line in lines[3:]]
    assert rows == [
        ("2026-11-30", "notice reminder", "customer"),
        ("2026-12-02", "stage overdue", ""),
        ("2026-12-02", "notice overdue", "customer"),
        ("2026-12-15", "stage final_notice", ""),
        ("2026-12-15", "notice final_notice", "customer"),
        ("2026-12-15", "notice final_notice", "partner"),
        ("2026-12-22", "stage suspended", ""),
        ("2026-12-22", "access suspend", ""),
        ("2026-12-22", "notice suspended", "customer"),
        ("2026-12-22", "notice suspended", "partner"),
    ]
    assert lines[3].endswith("says access can be suspended from 2026-12-22")
    assert lines[10].endswith("   sub-55d0f2, sub-7c1e9a")
    assert all(line == line.rstrip() for line in lines)  # no trailing blanks in the table


def _replay_outputs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["replay", "--policy", STANDARD, str(LIFECYCLE)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_ids_are_the_full_replays_ids(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every item of the plan is the event the full replay (same daily ticks, the payment
    on 2026-12-26 not yet come) produces that day, with the same id, in the same order."""
    assert main(plan(history, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["customer_id"] == "contoso"
    assert (doc["state"]["stage"], doc["state"]["as_of"]) == ("current", "2026-11-28")
    schedule = doc["schedule"]
    assert schedule[0] == {
        "date": "2026-11-30",
        "id": "evt-ntc-225e092e77340f512ab6",  # as docs/replay.md shows it
        "what": "notice reminder",
        "audience": "customer",
        "locale": "zh-TW",
        "suspension_on": "2026-12-22",
    }
    later = [
        e
        for e in _replay_outputs(capsys)
        if e["event_type"] != "invoice.aged"
        and "2026-11-28" < e["occurred_at"][:10] <= "2026-12-22"
    ]
    assert [row["id"] for row in schedule] == [e["event_id"] for e in later]
    assert [row["date"] for row in schedule] == [e["occurred_at"][:10] for e in later]
    assert len(schedule) == 10


def test_a_customer_already_at_the_last_stage_has_nothing_further(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(plan(cut("2026-12-23", tmp_path))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("customer contoso: stage suspended as of 2026-12-23;")
    assert lines[0].endswith("suspended: sub-55d0f2, sub-7c1e9a")
    assert lines[-1] == "nothing further happens if nothing is paid"


def test_a_customer_with_no_events_is_a_clear_error(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(plan(history, customer="fabrikam")) == 1
    assert capsys.readouterr() == ("", "plan: no events for customer 'fabrikam' in the input\n")


def test_a_missing_events_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(plan(missing)) == 1
    assert capsys.readouterr() == ("", f"{missing}: no such file\n")


def test_a_missing_policy_is_one_line_and_exit_1(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code = main(["plan", "--policy", str(missing), "--customer", "contoso", str(history)])
    assert code == 1
    assert capsys.readouterr() == ("", f"{missing}: no such file\n")


def test_bad_lines_exit_3_after_the_plan_unless_allowed(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(plan(history)) == 0
    clean = capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(history.read_text("utf-8") + "{oops\n", "utf-8")
    assert main(plan(bad)) == 3
    out, err = capsys.readouterr()
    assert out == clean
    assert err.splitlines()[-1] == "1 bad line(s) skipped"
    assert err.startswith(f"{bad}:11: $: invalid JSON")
    assert main(plan(bad, "--allow-bad-lines")) == 0


def test_a_closed_stdout_ends_plan_quietly(history: Path) -> None:
    """The reader is gone before plan writes: the first write fails, plan stops, no trace."""
    proc = subprocess.Popen(  # our own entry point, fixed argv
        [BILLSTATE, *plan(history, "--json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, b"")
