"""`billstate clock tick|run`: argument errors, the future-tick guard's place, no broker.

Nothing listens on 127.0.0.1:1, so a command that gets as far as sending fails to connect
(exit 1, one line) rather than exiting 2: which of the two it is tells where it stopped.
"""

from __future__ import annotations

import pytest

from billstate_cli.main import main

NO_BROKER = ["--bootstrap", "127.0.0.1:1"]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


def test_clock_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["clock"], capsys)
    assert "the following arguments are required: ACTION" in err


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01T09:00:00+08:00", ""])
def test_at_that_is_not_a_time_is_named_as_such(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["clock", "tick", "--at", text, *NO_BROKER], capsys)
    assert f"argument --at: {text!r} is not an RFC 3339 time; write e.g." in err
    assert "_timestamp" not in err  # not the parser function's name


@pytest.mark.parametrize(
    ("every", "says"),
    [
        ("15", "'15' is not an interval like 30s, 15m, 1h or 1d"),
        ("1w", "'1w' is not an interval like 30s, 15m, 1h or 1d"),
        ("-5m", "'-5m' is not an interval like 30s, 15m, 1h or 1d"),
        ("0s", "'0s' is no interval; give at least 1s"),
        ("0m", "'0m' is no interval; give at least 1s"),
    ],
)
def test_run_refuses_an_interval_it_cannot_keep(
    every: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["clock", "run", f"--every={every}", *NO_BROKER], capsys)
    assert f"argument --every: {says}" in err


def test_run_takes_no_at(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["clock", "run", "--at", "2026-12-01T09:00:00+00:00"], capsys)
    assert "unrecognized arguments: --at" in err


def test_the_guard_reports_a_far_tick_in_utc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clock", "tick", "--at", "2099-01-01T08:00:00+08:00", *NO_BROKER]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("billstate clock tick: --at: 2099-01-01T00:00:00Z is ")


def test_a_past_tick_passes_the_guard_and_goes_to_the_broker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The guard refuses only the future: a tick from 2020 is sent (here: fails to connect)."""
    assert main(["clock", "tick", "--at", "2020-01-01T00:00:00+00:00", *NO_BROKER]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "billstate clock tick: cannot reach Kafka at 127.0.0.1:1: " in err
    assert "Traceback" not in err


def test_tick_without_a_broker_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clock", "tick", *NO_BROKER]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "billstate clock tick: cannot reach Kafka at 127.0.0.1:1: " in err


def test_run_without_a_broker_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clock", "run", "--every", "1s", *NO_BROKER]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no tick was sent, so none is reported
    assert "billstate clock run: cannot reach Kafka at 127.0.0.1:1: " in err
