"""Escalation cases: an operator's `case.acknowledged` / `case.resolved` for operations.cases.v1."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from billstate_shared.contracts import CaseAcknowledged, CaseResolved, ContractError, decode
from billstate_shared.operator.holds import OptionRefused, operator_id

Step = Literal["acknowledged", "resolved"]
STEPS: tuple[Step, ...] = ("acknowledged", "resolved")
EVENT_TYPE: dict[Step, str] = {"acknowledged": "case.acknowledged", "resolved": "case.resolved"}
OPTION_OF = {"data.case_id": "--case", "data.by": "--by", "data.note": "--note"}


def note_id(step: Step, case_id: str, by: str, note: str) -> str:
    """`case-<step>-<16 hex>` over the case, who and the note: the same form sent twice is
    one step (applied once); another note is another step."""
    canonical = json.dumps([step, case_id, by, note], ensure_ascii=False, separators=(",", ":"))
    return f"case-{step}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def build_note(
    step: Step, customer: str, case_id: str, by: str, note: str, *, now: datetime
) -> CaseAcknowledged | CaseResolved:
    """A checked case step, keyed by the case's customer; raises OptionRefused naming the
    field (`--note`, `--by`, `--case`)."""
    operator_id(by)
    if not note.strip():
        raise OptionRefused("--note", "must say what was done or found")
    envelope = {
        "event_id": note_id(step, case_id, by, note),
        "event_type": EVENT_TYPE[step],
        "schema_version": 1,
        "occurred_at": now.isoformat(),
        "customer_id": customer,
        "data": {"case_id": case_id, "by": by, "note": note},
    }
    try:
        event = decode(json.dumps(envelope, ensure_ascii=False))
    except ContractError as err:
        raise OptionRefused(OPTION_OF.get(err.field, err.field), err.reason, err.field) from None
    assert isinstance(event, CaseAcknowledged | CaseResolved)
    return event
