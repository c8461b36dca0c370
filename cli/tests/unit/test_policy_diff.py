"""`billstate policy diff`: the back-test of a policy change, on the docs' example and on a
simulated history, against what `billstate replay` decides under each policy."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main
from billstate_cli.policy_diff import align
from billstate_cli.replay import Replay
from billstate_cli.simulation import history, write_jsonl
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import Outbound
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "policies" / "standard.yaml"
BUSINESS_DAYS = ROOT / "policies" / "business-days.yaml"
LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"
GOLDEN = ROOT / "cli" / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def candidate(text: str, replace: Mapping[str, str] | None = None, *, version: int = 4) -> str:
    """standard.yaml with another version and each `old: new` text replaced."""
    text = text.replace("version: 3 ", f"version: {version} ", 1)
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    return text


SUSPEND_AT_30 = {"    days_past_due: 21\n": "    days_past_due: 30\n"}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with standard.yaml, candidate.yaml (suspends at day 30, v4), the example
    history (lifecycle.jsonl) and the same without its payment (unpaid.jsonl), all named
    relatively so the output is the same on every machine."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(STANDARD, "standard.yaml")
    shutil.copy(LIFECYCLE, "lifecycle.jsonl")
    standard = STANDARD.read_text(encoding="utf-8")
    Path("candidate.yaml").write_text(candidate(standard, SUSPEND_AT_30), encoding="utf-8")
    lines = LIFECYCLE.read_text(encoding="utf-8").splitlines(keepends=True)
    unpaid = [line for line in lines if json.loads(line)["event_type"] != "payment.received"]
    assert len(unpaid) == len(lines) - 1
    Path("unpaid.jsonl").write_text("".join(unpaid), encoding="utf-8")
    return tmp_path


def diff_json(
    old: Path | str, new: Path | str, events: Path | str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    code = main(["policy", "diff", str(old), str(new), "--history", str(events), "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    doc: dict[str, Any] = json.loads(out)
    return doc


def suspensions(policy: Path, events: Path) -> Counter[tuple[str, str, date]]:
    """(customer, subscription, business date) of every suspension `billstate replay`'s
    engine decides: the reference the diff's counts are checked against."""
    replay = Replay(load_policy(policy))
    found: Counter[tuple[str, str, date]] = Counter()
    with events.open("rb") as source:
        for line in source:
            for produced in replay.feed(decode(line)):
                if produced.event_type == "access.suspend":
                    assert isinstance(produced, Outbound)
                    book = replay.books[produced.customer_id]
                    assert book.as_of is not None
                    for sub in produced.data["subscription_ids"]:
                        found[produced.customer_id, sub, book.as_of] += 1
    return found


def check_golden(name: str, out: str) -> None:
    golden = GOLDEN / name
    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


# --- the docs' example --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "golden"),
    [("lifecycle.jsonl", "diff.lifecycle.txt"), ("unpaid.jsonl", "diff.unpaid.txt")],
)
def test_the_text_report_is_the_golden_one(
    workdir: Path, capsys: pytest.CaptureFixture[str], events: str, golden: str
) -> None:
    code = main(["policy", "diff", "standard.yaml", "candidate.yaml", "--history", events])

    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    check_golden(golden, out)


def test_a_later_suspension_after_the_payment_removes_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = diff_json("standard.yaml", "candidate.yaml", "lifecycle.jsonl", capsys)

    assert doc["old"] == {"file": "standard.yaml", "policy": "standard", "version": 3}
    assert doc["new"] == {"file": "candidate.yaml", "policy": "standard", "version": 4}
    assert doc["history"] == {"file": "lifecycle.jsonl", "events": 44, "bad_lines": 0}
    assert doc["deploy"] == {"accepted": True, "reason": None}
    totals = doc["totals"]
    assert (totals["customers_compared"], totals["customers_changed"]) == (1, 1)
    assert totals["suspensions"] == {"added": 0, "removed": 2, "moved_earlier": 0, "moved_later": 0}
    assert totals["restores"] == {"added": 0, "removed": 2, "moved_earlier": 0, "moved_later": 0}
    # The reminders, the overdue and both final notices stay, announcing 2026-12-31.
    assert totals["notices"] == {"added": 0, "removed": 3, "redated": 5}
    [contoso] = doc["customers"]
    assert contoso["customer_id"] == "contoso"
    assert contoso["old"] == {"highest_stage": "suspended", "final_stage": "current",
                              "suspended": []}  # fmt: skip
    assert contoso["new"] == {"highest_stage": "final_notice", "final_stage": "current",
                              "suspended": []}  # fmt: skip
    subs = ["sub-55d0f2", "sub-7c1e9a"]
    assert contoso["suspensions"] == [
        {"change": "removed", "from": "2026-12-22", "to": None, "days": None,
         "subscription_ids": subs}
    ]  # fmt: skip
    assert contoso["restores"] == [
        {"change": "removed", "from": "2026-12-26", "to": None, "days": None,
         "subscription_ids": subs}
    ]  # fmt: skip
    assert [(n["change"], n["on"], n["kind"], n["audience"]) for n in contoso["notices"]] == [
        ("removed", "2026-12-22", "suspended", "customer"),
        ("removed", "2026-12-22", "suspended", "partner"),
        ("removed", "2026-12-26", "restored", "customer"),
    ]
    assert contoso["stage_move"] is None


def test_unpaid_the_suspension_moves_nine_days_later(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = diff_json("standard.yaml", "candidate.yaml", "unpaid.jsonl", capsys)

    assert doc["totals"]["suspensions"] == {
        "added": 0, "removed": 0, "moved_earlier": 0, "moved_later": 2,
    }  # fmt: skip
    [contoso] = doc["customers"]
    assert contoso["suspensions"] == [
        {"change": "moved", "from": "2026-12-22", "to": "2026-12-31", "days": 9,
         "subscription_ids": ["sub-55d0f2", "sub-7c1e9a"]}
    ]  # fmt: skip
    assert contoso["old"]["final_stage"] == contoso["new"]["final_stage"] == "suspended"
    assert contoso["restores"] == []
    assert {(n["change"], n["on"]) for n in contoso["notices"]} == {
        ("removed", "2026-12-22"), ("added", "2026-12-31"),
    }  # fmt: skip


def test_the_same_policy_changes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = diff_json("standard.yaml", "standard.yaml", "lifecycle.jsonl", capsys)

    assert doc["deploy"] == {"accepted": True, "reason": None}
    assert doc["customers"] == []
    assert doc["totals"]["customers_changed"] == 0
    assert doc["totals"]["notices"] == {"added": 0, "removed": 0, "redated": 0}

    main(["policy", "diff", "standard.yaml", "standard.yaml", "--history", "lifecycle.jsonl"])
    out = capsys.readouterr().out
    assert "customers:   1 compared, 0 changed\n" in out
    assert not out.endswith("\n\n")


def test_a_change_without_a_version_bump_is_flagged(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = candidate(STANDARD.read_text(encoding="utf-8"), SUSPEND_AT_30, version=3)
    Path("same-version.yaml").write_text(text, encoding="utf-8")

    doc = diff_json("standard.yaml", "same-version.yaml", "unpaid.jsonl", capsys)

    assert doc["deploy"]["accepted"] is False
    assert "version is still 3" in doc["deploy"]["reason"]
    assert doc["totals"]["suspensions"]["moved_later"] == 2


# --- stage moves ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("migrate", "move"),
    [
        ("", {"from": "final_notice", "to": None, "refused": True}),
        ("migrate:\n  final_notice: last_warning\n",
         {"from": "final_notice", "to": "last_warning", "refused": False}),
        ("migrate:\n  final_notice: current\n",
         {"from": "final_notice", "to": "current", "refused": False}),
    ],
)  # fmt: skip
def test_a_renamed_stage_shows_where_its_customers_move(
    workdir: Path, capsys: pytest.CaptureFixture[str], migrate: str, move: dict[str, Any]
) -> None:
    renamed = candidate(STANDARD.read_text(encoding="utf-8"))
    Path("renamed.yaml").write_text(
        renamed.replace("final_notice", "last_warning") + migrate, encoding="utf-8"
    )
    # Up to the tick of 2026-12-16: contoso is in final_notice, one day after entering it.
    Path("cut.jsonl").write_text(
        "".join(LIFECYCLE.read_text(encoding="utf-8").splitlines(keepends=True)[:28]),
        encoding="utf-8",
    )

    doc = diff_json("standard.yaml", "renamed.yaml", "cut.jsonl", capsys)

    [contoso] = doc["customers"]
    assert contoso["old"]["final_stage"] == "final_notice"
    assert contoso["new"]["final_stage"] == "last_warning"
    assert contoso["stage_move"] == move
    unmapped = 1 if move["to"] is None else 0
    assert doc["totals"]["stage_moves"] == {"mapped": 1 - unmapped, "unmapped": unmapped}
    assert doc["deploy"]["accepted"] is not move["refused"]

    main(["policy", "diff", "standard.yaml", "renamed.yaml", "--history", "cut.jsonl"])
    out = capsys.readouterr().out
    if move["to"] is None:
        assert "  stage final_notice is not in NEW: no mapping: NEW would be refused\n" in out
    else:
        assert (
            f"  stage final_notice is not in NEW: moves from final_notice to {move['to']}\n" in out
        )


def test_customers_in_a_kept_stage_do_not_move(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The whole example ends with contoso current again: nobody is left in final_notice.
    renamed = candidate(STANDARD.read_text(encoding="utf-8"))
    Path("renamed.yaml").write_text(renamed.replace("final_notice", "last_warning"), "utf-8")

    doc = diff_json("standard.yaml", "renamed.yaml", "lifecycle.jsonl", capsys)

    [contoso] = doc["customers"]  # changed: its notices have the new stage's name
    assert contoso["stage_move"] is None
    assert doc["totals"]["stage_moves"] == {"mapped": 0, "unmapped": 0}
    assert doc["deploy"]["accepted"] is False  # a worker cannot know nobody is in it


# --- a simulated history ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """200 customers over 61 and 91 days from 2026-01-01 (seed 11)."""
    out = {}
    for days in (61, 91):
        path = tmp_path_factory.mktemp("sim") / f"sim-{days}.jsonl"
        write_jsonl(path, history(200, days, seed=11))
        out[days] = path
    return out


def test_business_days_move_weekend_suspensions_to_monday(
    simulated: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events = simulated[61]
    calendar = load_policy(BUSINESS_DAYS).calendar

    started = time.perf_counter()
    doc = diff_json(STANDARD, BUSINESS_DAYS, events, capsys)
    elapsed = time.perf_counter() - started

    assert elapsed < 10, f"two replays of 200 customers x 61 days took {elapsed:.1f} s"
    old, new = suspensions(STANDARD, events), suspensions(BUSINESS_DAYS, events)
    on_closed = sum(n for (_, _, on), n in old.items() if calendar.closed(on) is not None)
    totals = doc["totals"]
    assert totals["customers_compared"] == 200
    assert on_closed > 0
    assert totals["suspensions"] == {
        "added": 0, "removed": 0, "moved_earlier": 0, "moved_later": on_closed,
    }  # fmt: skip
    assert sum(old.values()) == sum(new.values())
    weekdays: Counter[tuple[int, int]] = Counter()
    for customer in doc["customers"]:
        for move in customer["suspensions"]:
            before, after = date.fromisoformat(move["from"]), date.fromisoformat(move["to"])
            assert calendar.closed(before) is not None
            assert after == calendar.next_open(before)
            assert move["days"] == (after - before).days
            for sub in move["subscription_ids"]:
                assert old[customer["customer_id"], sub, before] == 1
                assert new[customer["customer_id"], sub, after] == 1
            weekdays[before.weekday(), after.weekday()] += 1
    assert weekdays[6, 0] > 0  # a Sunday's suspension moves to the Monday, 1 day later
    assert set(weekdays) <= {(5, 0), (6, 0)}, weekdays


def test_suspending_at_day_30_moves_suspensions_later_or_removes_them(
    simulated: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = simulated[91]
    at_30 = tmp_path / "at-30.yaml"
    at_30.write_text(candidate(STANDARD.read_text(encoding="utf-8"), SUSPEND_AT_30), "utf-8")

    doc = diff_json(STANDARD, at_30, events, capsys)

    old, new = suspensions(STANDARD, events), suspensions(at_30, events)
    s = doc["totals"]["suspensions"]
    assert s["added"] == s["moved_earlier"] == 0
    assert s["removed"] > 0
    assert s["moved_later"] > 0
    # Each side's suspensions are the unchanged ones plus what the diff says it lacks.
    assert sum(old.values()) - s["removed"] == sum(new.values()) - s["added"]
    days = Counter(
        move["days"]
        for customer in doc["customers"]
        for move in customer["suspensions"]
        if move["change"] == "moved"
    )
    # Day 21 becomes day 30; a suspension a hold or a payment in flight had already pushed
    # past day 21 moves less.
    assert days[9] > 0
    assert all(0 < d <= 9 for d in days), days
    for customer in doc["customers"]:
        if any(m["change"] == "removed" for m in customer["suspensions"]):
            assert customer["new"]["highest_stage"] in {"final_notice", "suspended"}


# --- the terminal -----------------------------------------------------------------------------


def test_a_terminal_gets_a_table(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    code = main(["policy", "diff", "standard.yaml", "candidate.yaml", "--history", "unpaid.jsonl"])

    out = ANSI.sub("", capsys.readouterr().out)
    assert code == 0
    assert "customers whose outcome changes (OLD -> NEW)" in out
    assert "suspension moved 9 days later: 2026-12-22 -> 2026-12-31 (sub-55d0f2, sub-7c1e9a)" in out
    assert "│ contoso " in out


# --- bad input --------------------------------------------------------------------------------


def test_a_refused_policy_names_its_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("bad.yaml").write_text("policy: p\nversion: 1\n", encoding="utf-8")

    code = main(["policy", "diff", "standard.yaml", "bad.yaml", "--history", "lifecycle.jsonl"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == "refused policy: bad.yaml:1: timezone: missing required key 'timezone'\n"


def test_a_missing_file_says_no_such_file(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["policy", "diff", "standard.yaml", "candidate.yaml", "--history", "none.jsonl"])

    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", "none.jsonl: no such file\n")

    code = main(["policy", "diff", "old.yaml", "candidate.yaml", "--history", "lifecycle.jsonl"])

    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", "old.yaml: no such file\n")


@pytest.mark.parametrize("flag", [[], ["--allow-bad-lines"]])
def test_bad_history_lines_are_reported_once_and_fail_unless_allowed(
    workdir: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    allow = bool(flag)
    lines = Path("unpaid.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(3, '{"event_type": "invoice.paid"}\n')
    lines.append("not json\n")
    Path("with-bad.jsonl").write_text("".join(lines), encoding="utf-8")

    code = main(["policy", "diff", "standard.yaml", "candidate.yaml",
                 "--history", "with-bad.jsonl", "--json", *flag])  # fmt: skip

    out, err = capsys.readouterr()
    assert code == (0 if allow else 3)  # as billstate replay's
    reports = err.splitlines()
    assert reports[0].startswith("with-bad.jsonl:4: event_type: unknown event type 'invoice.paid'")
    assert reports[1].startswith("with-bad.jsonl:45: $: invalid JSON")
    assert reports[2:] == ["2 bad line(s) skipped"]
    doc = json.loads(out)  # the comparison of the good lines is still given
    assert doc["history"] == {"file": "with-bad.jsonl", "events": 43, "bad_lines": 2}
    assert doc["totals"]["suspensions"]["moved_later"] == 2


# --- matching a subscription's commands ---------------------------------------------------------


def test_align_pairs_in_order_then_by_the_least_shift() -> None:
    dec22, jan22, jan31 = date(2026, 12, 22), date(2027, 1, 22), date(2027, 1, 31)

    # The December suspension is gone (paid in time), the January one is 9 days later.
    assert align([dec22, jan22], [jan31]) == [(dec22, None), (jan22, jan31)]
    assert align([jan31], [dec22, jan22]) == [(None, dec22), (jan31, jan22)]
    assert align([dec22], [dec22]) == [(dec22, dec22)]
    assert align([], [dec22]) == [(None, dec22)]
    assert align([dec22, jan22], [dec22, jan31]) == [(dec22, dec22), (jan22, jan31)]
