"""`billstate clock tick --at` refuses a tick from the future before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billstate_cli.commands.clock import not_ahead
from billstate_cli.main import main
from billstate_shared.errors import Refused

# Nothing listens here: a command that tried to connect would fail, not exit 2.
NO_BROKER = ["--bootstrap", "127.0.0.1:1"]
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_a_tick_far_in_the_future_exits_2_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["clock", "tick", "--at", "2099-01-01T00:00:00+00:00", *NO_BROKER])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("billstate clock tick: --at: 2099-01-01T00:00:00Z is ")
    assert "days ahead of now (" in err
    assert "a tick may be at most 10 minutes ahead" in err
    assert err.rstrip().endswith("; nothing sent")


def test_eleven_minutes_ahead_is_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    at = (datetime.now(UTC) + timedelta(minutes=11)).isoformat()
    assert main(["clock", "tick", "--at", at, *NO_BROKER]) == 2
    assert "is 10 minutes" in capsys.readouterr().err  # 10 minutes 59.x seconds, or so


def test_the_boundary() -> None:
    not_ahead(NOW + timedelta(minutes=10), NOW)  # exactly the skew: accepted
    not_ahead(datetime(2026, 1, 1, tzinfo=UTC), NOW)  # the past: accepted
    with pytest.raises(Refused) as caught:
        not_ahead(NOW + timedelta(minutes=10, milliseconds=1), NOW)
    assert caught.value.field == "--at"
    assert caught.value.reason.startswith(
        "2026-12-03T10:10:00.001Z is 10 minutes 0.001 seconds ahead of now (2026-12-03T10:00:00Z)"
    )


def test_a_time_without_offset_is_still_an_argument_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["clock", "tick", "--at", "2026-12-01T09:00:00", *NO_BROKER])
    assert stopped.value.code == 2
    assert "has no UTC offset" in capsys.readouterr().err
