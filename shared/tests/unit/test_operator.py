"""The operator's builders (shared by the CLI and the console): checked events, refusals
that name the field, deterministic ids, and the re-drive plan's stale check."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from billstate_shared.contracts import (
    AccessApprove,
    AccessReject,
    CaseAcknowledged,
    CaseResolved,
    HoldPlaced,
    decode,
    encode,
)
from billstate_shared.errors import Refused
from billstate_shared.operator.approvals import build_decision_for
from billstate_shared.operator.cases import build_note
from billstate_shared.operator.holds import OptionRefused, build_placed, build_released
from billstate_shared.operator.letters import REDRIVE_HEADER, Letter, plan_redrive, stale_reason

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_case_steps_are_checked_contract_events_with_stable_ids() -> None:
    ack = build_note("acknowledged", "contoso", "failed-1", "ops-anna", "on it", now=NOW)
    assert isinstance(ack, CaseAcknowledged)
    assert ack.data.case_id == "failed-1"
    assert ack.data.by == "ops-anna"
    again = build_note("acknowledged", "contoso", "failed-1", "ops-anna", "on it", now=NOW)
    assert again.event_id == ack.event_id  # the same form sent twice is one step
    other = build_note("acknowledged", "contoso", "failed-1", "ops-anna", "still on it", now=NOW)
    assert other.event_id != ack.event_id
    done = build_note("resolved", "contoso", "failed-1", "ops-anna", "MS fixed it", now=NOW)
    assert isinstance(done, CaseResolved)
    assert decode(encode(done)) == done


@pytest.mark.parametrize(
    ("by", "note", "field"),
    [
        ("anna@example.com", "on it", "--by"),
        ("", "on it", "--by"),
        ("ops-anna", "  ", "--note"),
        ("ops-anna", "x" * 5000, "--note (data.note)"),
    ],
)
def test_case_step_refusals_name_the_field(by: str, note: str, field: str) -> None:
    with pytest.raises(OptionRefused) as caught:
        build_note("resolved", "contoso", "failed-1", by, note, now=NOW)
    assert isinstance(caught.value, Refused)
    assert caught.value.field == field


def test_holds_and_decisions_refuse_an_email_as_who() -> None:
    with pytest.raises(OptionRefused) as caught:
        build_placed("contoso", "manual", "call", "a@b.example", NOW)
    assert caught.value.name == "by"
    with pytest.raises(OptionRefused) as caught:
        build_decision_for("approve", "contoso", "cmd-1", "a@b.example", "ok", now=NOW)
    assert caught.value.name == "by"
    with pytest.raises(OptionRefused) as caught:
        build_placed("contoso", "promise_to_pay", "promised", "ops-anna", NOW)
    assert caught.value.name == "until"


def test_hold_and_decision_events() -> None:
    placed = build_placed("contoso", "manual", "call first", "ops-anna", NOW)
    assert isinstance(placed, HoldPlaced)
    assert placed.event_id == f"hold-{placed.data.hold_id}-placed"
    released = build_released("contoso", placed.data.hold_id, "called", "ops-anna", NOW)
    assert released.event_id == f"hold-{placed.data.hold_id}-released"
    approve = build_decision_for("approve", "contoso", "cmd-1", "ops-anna", "checked", now=NOW)
    reject = build_decision_for("reject", "contoso", "cmd-1", "ops-anna", "paid", now=NOW)
    assert isinstance(approve, AccessApprove)
    assert approve.event_id == "approve-cmd-1"
    assert isinstance(reject, AccessReject)
    assert reject.event_id == "reject-cmd-1"


def _suspend(sequence: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"suspend-{sequence}",
            "event_type": "access.suspend",
            "occurred_at": NOW.isoformat(),
            "customer_id": "contoso",
            "data": {
                "command_id": f"cmd-{sequence}",
                "subscription_ids": ["sub-1"],
                "reason": "overdue",
                "stage": "suspended",
                "policy": {"name": "standard", "version": 3},
                "sequence": sequence,
            },
        }
    ).encode()


def _letter(offset: int, value: bytes) -> Letter:
    headers = {"topic": "access.commands.v1", "partition": "0", "offset": str(offset)}
    return Letter(0, offset, 0, b"contoso", value, {**headers, "reason": "x", "field": "$"})


def test_redrive_plan_skips_stale_commands_and_marks_the_rest() -> None:
    letters = [_letter(1, _suspend(1)), _letter(2, _suspend(5)), _letter(3, b"not json")]
    plan = plan_redrive("access.commands.v1.dlq", letters, {"contoso": 4})
    assert [i.origin for i in plan.items] == ["0:2"]
    assert plan.items[0].headers == ((REDRIVE_HEADER, b"access.commands.v1.dlq:0:2"),)
    assert len(plan.stale) == 1
    assert "stale" in plan.stale[0]
    assert len(plan.refused) == 1
    assert stale_reason(decode(_suspend(5)), {"contoso": 4}) is None
