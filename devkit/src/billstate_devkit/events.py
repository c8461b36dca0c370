"""Contract events as tests send them: one builder per shape several test files need."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from billstate_shared.contracts import (
    AccessCommandData,
    AccessRestore,
    AccessSuspend,
    PolicyRef,
    encode,
)

COMMANDS_AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)


def notice_request(
    customer_id: str,
    notice_id: str,
    *,
    kind: str = "final_notice",
    audience: str = "customer",
    locale: str = "en",
    stage: str = "final_notice",
) -> bytes:
    """A `notice.requested` with the facts collections gives a final notice of USD 1,234.50."""
    return json.dumps(
        {
            "event_id": f"evt-{notice_id}",
            "event_type": "notice.requested",
            "schema_version": 1,
            "occurred_at": "2026-11-14T08:00:00+08:00",
            "customer_id": customer_id,
            "data": {
                "notice_id": notice_id,
                "kind": kind,
                "audience": audience,
                "locale": locale,
                "facts": {
                    "customer_id": customer_id,
                    "stage": stage,
                    "as_of": "2026-11-14",
                    "days_past_due": 14,
                    "overdue": [{"amount": "1234.50", "currency": "USD"}],
                    "invoices": [
                        {
                            "invoice_id": "INV-1",
                            "due_on": "2026-10-31",
                            "open": "1234.50",
                            "currency": "USD",
                        }
                    ],
                    "suspension_on": "2026-11-21",
                    "policy": {"name": "standard", "version": 3},
                },
            },
        }
    ).encode()


def access_command(
    kind: str,
    customer_id: str,
    command_id: str,
    subscription_ids: Sequence[str],
    *,
    reason: str = "overdue",
    stage: str = "suspended",
    at: datetime = COMMANDS_AT,
) -> bytes:
    """An `access.suspend` (kind "suspend") or `access.restore` (kind "restore") as
    collections sends it, event id `evt-<command_id>`."""
    cls = AccessSuspend if kind == "suspend" else AccessRestore
    return encode(
        cls(
            event_id=f"evt-{command_id}",
            event_type=f"access.{kind}",  # type: ignore[arg-type]
            occurred_at=at,
            customer_id=customer_id,
            data=AccessCommandData(
                command_id=command_id,
                subscription_ids=list(subscription_ids),
                reason=reason,
                stage=stage,
                policy=PolicyRef(name="standard", version=1),
            ),
        )
    )


def hold_placed(customer_id: str, hold_id: str, **data: Any) -> bytes:
    """A `hold.placed` as raw JSON (a manual hold unless `data` says otherwise); raw, so a
    test can also make one the contract refuses."""
    fields = {"hold_id": hold_id, "kind": "manual", "reason": "review", "by": "ops.alice", **data}
    return json.dumps(
        {
            "event_id": f"hold-{hold_id}-placed",
            "event_type": "hold.placed",
            "schema_version": 1,
            "occurred_at": "2026-12-18T11:00:00+00:00",
            "customer_id": customer_id,
            "data": fields,
        }
    ).encode()
