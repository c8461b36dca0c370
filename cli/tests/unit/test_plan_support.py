"""`billstate replay` and `plan` with support tickets: a payment claim moves the suspension in
the plan exactly as ticking on moves it in replay; support events decide nothing themselves.

The input is docs/examples/lifecycle.jsonl cut after the tick of 2026-12-20 without the payment
(the suspension is due on 2026-12-22), with a payment claimed that day.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main
from billstate_cli.plan import plan
from billstate_cli.replay import Replay
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "policies" / "standard.yaml"
LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"


def _event(event_type: str, data: dict[str, Any], at: str) -> str:
    return json.dumps({
        "event_id": f"{data['ticket_id']}-{event_type}", "event_type": event_type,
        "schema_version": 1, "occurred_at": at, "customer_id": "contoso", "data": data,
    })  # fmt: skip


CLAIM = _event(
    "support.requested",
    {"ticket_id": "ZD-4711", "topic": "payment_claimed", "channel": "phone"},
    "2026-12-20T03:00:00Z",
)


def history(tmp_path: Path, *extra: str) -> Path:
    lines: list[str] = []
    for line in LIFECYCLE.read_text("utf-8").splitlines():
        if '"payment.received"' not in line:
            lines.append(line)
        if '"tick-2026-12-20T01:00Z"' in line:
            break
    path = tmp_path / "claimed.jsonl"
    path.write_text("\n".join([*lines, *extra]) + "\n", "utf-8")
    return path


def replayed(path: Path) -> Replay:
    replay = Replay(load_policy(STANDARD))
    for line in path.read_bytes().splitlines():
        replay.feed(decode(line))
    return replay


def test_support_events_decide_nothing_by_themselves(tmp_path: Path) -> None:
    replay = replayed(history(tmp_path))
    resolved = _event(
        "support.resolved", {"ticket_id": "ZD-4711", "resolution": "n/a"}, "2026-12-20T04:00:00Z"
    )
    assert replay.feed(decode(CLAIM)) == []
    assert replay.feed(decode(resolved)) == []  # not due yet: nothing to enter
    assert replay.books["contoso"].tickets == {}


def test_the_plan_counts_the_claim_and_ticking_on_agrees(tmp_path: Path) -> None:
    path = history(tmp_path, CLAIM)
    replay = replayed(path)
    scheduled = plan(replay, "contoso", replay.last_tick)
    assert scheduled.state.next is not None
    assert scheduled.state.next.earliest_on == date(2026, 12, 24)  # held 21-23, not the 22nd
    (suspended,) = [
        (day, e) for day, e in scheduled.events if e.event_type == "collections.stage_entered"
    ]
    assert suspended[0] == date(2026, 12, 24)
    assert (
        "support ticket ZD-4711 (filed 2026-12-20), held 3 business days to 2026-12-23"
        in (suspended[1].data["why"]["text"])
    )
    # The same daily ticks through replay give the same suspension, byte for byte.
    tick = datetime(2026, 12, 20, 1, tzinfo=UTC)
    later: list[Any] = []
    for _ in range(5):
        tick += timedelta(days=1)
        stamp = tick.isoformat().replace("+00:00", "Z")
        envelope = {"event_id": f"tick-{stamp}", "event_type": "clock.tick", "schema_version": 1,
                    "occurred_at": stamp, "customer_id": "*", "data": {}}  # fmt: skip
        later.extend(replay.feed(decode(json.dumps(envelope))))
    entered = [e for e in later if e.event_type == "collections.stage_entered"]
    assert [to_bytes(e) for e in entered] == [to_bytes(suspended[1])]


def test_billstate_plan_shows_the_later_suspension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", "--policy", str(STANDARD), "--customer", "contoso"]
    assert main([*args, str(history(tmp_path, CLAIM))]) == 0
    out, _ = capsys.readouterr()
    assert "2026-12-24  stage suspended" in out
    assert "2026-12-22  stage suspended" not in out
