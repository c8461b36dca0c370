"""`billstate replay` as a user meets it: bad lines, missing files, a reader that stops early.

Exit statuses (docs/replay.md "Exit status"): 0 done, 1 a file cannot be opened, 2 refused,
3 bad lines skipped (0 with --allow-bad-lines), 141 stdout closed before the end.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from billstate_cli.main import main
from billstate_cli.replay import BAD_LINES_EXIT, BROKEN_PIPE_EXIT, UNREADABLE_EXIT

ROOT = Path(__file__).resolve().parents[3]
STANDARD = str(ROOT / "policies" / "standard.yaml")
LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"
BILLSTATE = Path(sys.executable).parent / "billstate"


def replay(*args: str | Path) -> list[str]:
    return ["replay", "--policy", STANDARD, *map(str, args)]


@pytest.fixture
def with_bad(tmp_path: Path) -> Path:
    """lifecycle.jsonl with two bad lines among the first three."""
    lines = LIFECYCLE.read_text("utf-8").splitlines()
    path = tmp_path / "with-bad.jsonl"
    lines[1:1] = ['{"event_id": "x", "event_type": "invoice.paid"}']
    lines[3:3] = ["{not json"]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_a_clean_file_exits_0_with_nothing_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(replay(LIFECYCLE)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(out.splitlines()) == 47


def test_skipped_bad_lines_exit_3_after_the_whole_output(
    with_bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(replay(LIFECYCLE)) == 0
    clean = capsys.readouterr().out
    assert main(replay(with_bad)) == BAD_LINES_EXIT == 3
    out, err = capsys.readouterr()
    assert out == clean  # the other lines are processed as without the bad ones
    assert err.splitlines() == [
        f"{with_bad}:2: event_type: unknown event type 'invoice.paid'; expected one of: "
        + err.split("expected one of: ", 1)[1].splitlines()[0],
        f"{with_bad}:4: $: invalid JSON: key must be a string at line 1 column 2",
        "2 bad line(s) skipped",
    ]


def test_allow_bad_lines_exits_0_and_still_reports_them(
    with_bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*replay(with_bad), "--allow-bad-lines"]) == 0
    err = capsys.readouterr().err
    assert err.endswith("\n2 bad line(s) skipped\n")


def test_bad_lines_from_stdin_exit_3_too(
    with_bad: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(with_bad.read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(replay("-")) == 3
    assert capsys.readouterr().err.startswith("-:2: event_type: unknown event type")


def test_a_missing_events_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(replay(missing)) == UNREADABLE_EXIT == 1
    assert capsys.readouterr() == ("", f"{missing}: no such file\n")


def test_a_missing_policy_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code = main(["replay", "--policy", str(missing), str(LIFECYCLE)])
    assert code == 1
    assert capsys.readouterr() == ("", f"{missing}: no such file\n")


def test_both_missing_are_both_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy, events = tmp_path / "p.yaml", tmp_path / "e.jsonl"
    assert main(["replay", "--policy", str(policy), str(events)]) == 1
    assert capsys.readouterr().err == f"{policy}: no such file\n{events}: no such file\n"


def test_a_directory_is_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(replay(tmp_path)) == 1
    assert capsys.readouterr().err == f"{tmp_path}: is a directory\n"


def test_a_refused_policy_is_still_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "empty.yaml"
    policy.write_text("", "utf-8")
    assert main(["replay", "--policy", str(policy), str(LIFECYCLE)]) == 2
    assert capsys.readouterr().err.startswith("refused policy: ")


def test_a_reader_that_stops_early_ends_replay_quietly(tmp_path: Path) -> None:
    """A real pipe: the reader takes one line and closes it, as `| head -1` does. Replay's
    output (about 9 MB) is far more than a pipe holds, so it is still writing then."""
    base = LIFECYCLE.read_text("utf-8").splitlines(keepends=True)
    ticks = [line for line in base if '"clock.tick"' in line]
    # Without the payment, so that every customer's invoice ages through the ticks.
    rest = [line for line in base if '"clock.tick"' not in line and "payment" not in line]
    many = tmp_path / "many.jsonl"
    with many.open("w", encoding="utf-8") as out:
        for n in range(400):
            out.writelines(line.replace('"contoso"', f'"contoso-{n}"') for line in rest)
        out.writelines(ticks)
    proc = subprocess.Popen(
        [BILLSTATE, *replay(many)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    code = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert json.loads(first)["event_type"] == "invoice.aged"
    assert (code, err) == (BROKEN_PIPE_EXIT, "")
    assert code == 141
