"""Staff notices from access.events.v1: what partner staff must act on, as notice requests."""

from __future__ import annotations

from pydantic import JsonValue

from billstate_shared.contracts import (
    AccessApprovalNeeded,
    AccessCommitment,
    AccessDrift,
    AccessFailed,
    NoticeRequestedData,
)
from billstate_shared.domain.ids import make_id

STAFF_KINDS = ("access_failed", "access_drift", "approval_needed", "commitment_alert")


def staff_notice(
    event: AccessFailed | AccessDrift | AccessApprovalNeeded | AccessCommitment, locale: str
) -> NoticeRequestedData:
    """The partner notice for a failed access change, access drift, or a batch of
    suspensions parked by a guard that staff must approve or reject.

    The notice id is deterministic: a redelivered access.failed (same command and
    subscription), access.drift (same event id) or access.approval_needed (same batch id)
    dedupes like any other notice.
    """
    facts: dict[str, JsonValue]
    if isinstance(event, AccessCommitment):
        dc = event.data
        kind = "commitment_alert"
        # The event id names the subscription and the renewal date or window: one notice each.
        notice_id = make_id("ntc", event.customer_id, kind, event.event_id)
        facts = {
            "customer_id": event.customer_id,
            "subscription_id": dc.subscription_id,
            "provider": dc.provider,
            "term_end": None if dc.term_end is None else dc.term_end.isoformat(),
            "auto_renew": dc.auto_renew,
            "renews_on": None if dc.renews_on is None else dc.renews_on.isoformat(),
            "cancellable_until": (
                None if dc.cancellable_until is None else dc.cancellable_until.isoformat()
            ),
            "term_cost": None if dc.term_cost is None else dc.term_cost.model_dump(mode="json"),
            "reason": dc.reason,
        }
    elif isinstance(event, AccessApprovalNeeded):
        da = event.data
        kind = "approval_needed"
        # By batch alone: one notice per batch, whichever customer the event is keyed by.
        notice_id = make_id("ntc", kind, da.batch_id)
        facts = {
            "batch_id": da.batch_id,
            "guard": da.guard,
            "count": da.count,
            "customer_ids": list(da.customer_ids),
            "reason": da.reason,
        }
    elif isinstance(event, AccessFailed):
        d = event.data
        kind = "access_failed"
        notice_id = make_id("ntc", event.customer_id, kind, d.command_id, d.subscription_id)
        facts = {
            "customer_id": event.customer_id,
            "subscription_id": d.subscription_id,
            "provider": d.provider,
            "command_id": d.command_id,
            "attempts": d.attempts,
            "error": d.error,
        }
    else:
        dd = event.data
        kind = "access_drift"
        notice_id = make_id("ntc", event.customer_id, kind, event.event_id)
        facts = {
            "customer_id": event.customer_id,
            "subscription_id": dd.subscription_id,
            "provider": dd.provider,
            "desired": dd.desired,
            "observed": dd.observed,
        }
    return NoticeRequestedData(
        notice_id=notice_id, kind=kind, audience="partner", locale=locale, facts=facts
    )
