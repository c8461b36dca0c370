"""One canonical, valid example of every event type, for tests, docs and broker checks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from billstate_shared.contracts.events import (
    EVENT_TYPES,
    AccessApprovalNeeded,
    AccessApprovalNeededData,
    AccessApprove,
    AccessCommandData,
    AccessCommitment,
    AccessCommitmentData,
    AccessDecisionData,
    AccessDrift,
    AccessDriftData,
    AccessFailed,
    AccessFailedData,
    AccessParked,
    AccessParkedData,
    AccessReject,
    AccessRestore,
    AccessRestored,
    AccessRestoredData,
    AccessSuspend,
    AccessSuspended,
    AccessSuspendedData,
    AccessUnparked,
    AccessUnparkedData,
    CaseAcknowledged,
    CaseNoteData,
    CaseResolved,
    ClockTick,
    ClockTickData,
    CollectionsState,
    CollectionsStateData,
    CostRecorded,
    CostRecordedData,
    CustomerUpserted,
    CustomerUpsertedData,
    Event,
    Hold,
    HoldPlaced,
    HoldPlacedData,
    HoldReleased,
    HoldReleasedData,
    InvoiceAdjusted,
    InvoiceAdjustedData,
    InvoiceAged,
    InvoiceAgedData,
    InvoiceIssued,
    InvoiceIssuedData,
    InvoiceVoided,
    InvoiceVoidedData,
    Money,
    NextStage,
    NoticeDelivered,
    NoticeDeliveredData,
    NoticeFailed,
    NoticeFailedData,
    NoticeRequested,
    NoticeRequestedData,
    OpenTicket,
    PaymentFailed,
    PaymentFailedData,
    PaymentPending,
    PaymentPendingData,
    PaymentReceived,
    PaymentReceivedData,
    PaymentReversed,
    PaymentReversedData,
    PolicyAccepted,
    PolicyAcceptedData,
    PolicyRef,
    ProviderExchange,
    StageEntered,
    StageEnteredData,
    SupportRequested,
    SupportRequestedData,
    SupportResolved,
    SupportResolvedData,
    Why,
)

__all__ = ["EXAMPLES"]

# One story runs through the examples: Contoso's November invoice goes unpaid, a reminder
# goes out, a promise to pay is broken, access is suspended, the customer pays and access is
# restored. Docs quote these verbatim.
_CUSTOMER = "contoso"
_INVOICE = "INV-2026-0001"
_SUBSCRIPTIONS = ["sub-7c1e9a", "sub-55d0f2"]
_POLICY = PolicyRef(name="standard", version=3)
_OVERDUE = [Money(amount=Decimal("1250.00"), currency="USD")]


def _at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


_EXAMPLES: list[Event] = [
    CustomerUpserted(
        event_id="cust-contoso-v12",
        event_type="customer.upserted",
        occurred_at=_at(date(2026, 10, 2), 14, 5),
        customer_id=_CUSTOMER,
        data=CustomerUpsertedData(
            name="Contoso Ltd.",
            locale="en",
            billing_email="ap@contoso.example",
            partner_contact_email="am@partner.example",
            tags=["enterprise"],
            subscription_ids=list(_SUBSCRIPTIONS),
        ),
    ),
    InvoiceIssued(
        event_id="inv-2026-0001-issued",
        event_type="invoice.issued",
        occurred_at=_at(date(2026, 11, 1), 9, 30),
        customer_id=_CUSTOMER,
        data=InvoiceIssuedData(
            invoice_id=_INVOICE,
            currency="USD",
            amount=Decimal("1450.00"),
            issued_on=date(2026, 11, 1),
            due_on=date(2026, 12, 1),
            subscription_ids=list(_SUBSCRIPTIONS),
        ),
    ),
    InvoiceAdjusted(
        event_id="inv-2026-0001-credit-1",
        event_type="invoice.adjusted",
        occurred_at=_at(date(2026, 11, 5)),
        customer_id=_CUSTOMER,
        data=InvoiceAdjustedData(
            invoice_id=_INVOICE,
            amount_delta=Decimal("-200.00"),
            reason="Credit note CN-88: seats removed mid-term",
        ),
    ),
    InvoiceVoided(
        event_id="inv-2026-0002-voided",
        event_type="invoice.voided",
        occurred_at=_at(date(2026, 11, 6)),
        customer_id=_CUSTOMER,
        data=InvoiceVoidedData(invoice_id="INV-2026-0002", reason="Issued twice"),
    ),
    PaymentReceived(
        event_id="pay-5521-received",
        event_type="payment.received",
        occurred_at=_at(date(2027, 1, 13), 16, 45),
        customer_id=_CUSTOMER,
        data=PaymentReceivedData(
            payment_id="PAY-5521",
            currency="USD",
            amount=Decimal("1250.00"),
            invoice_id=_INVOICE,
        ),
    ),
    PaymentReversed(
        event_id="pay-5480-reversed",
        event_type="payment.reversed",
        occurred_at=_at(date(2026, 12, 3)),
        customer_id=_CUSTOMER,
        data=PaymentReversedData(payment_id="PAY-5480", reason="Chargeback"),
    ),
    PaymentFailed(
        event_id="pay-attempt-77-failed",
        event_type="payment.failed",
        occurred_at=_at(date(2026, 12, 1), 6),
        customer_id=_CUSTOMER,
        data=PaymentFailedData(invoice_id=_INVOICE, reason="Card declined", will_retry=True),
    ),
    PaymentPending(
        event_id="pay-5521-pending",
        event_type="payment.pending",
        occurred_at=_at(date(2027, 1, 8), 15),
        customer_id=_CUSTOMER,
        data=PaymentPendingData(
            payment_id="PAY-5521",
            amount=Decimal("1250.00"),
            currency="USD",
            expected_by=date(2027, 1, 13),
        ),
    ),
    CostRecorded(
        # The ids and time `billstate costs import` and access-control's poller give it.
        event_id="cost:G012345678:contoso:sub-7a1c:2026-12-01:2026-12-31",
        event_type="cost.recorded",
        occurred_at=_at(date(2026, 12, 1), 0),
        customer_id=_CUSTOMER,
        data=CostRecordedData(
            cost_id="G012345678:contoso:sub-7a1c:2026-12-01:2026-12-31",
            subscription_id="sub-7a1c",
            charge_start=date(2026, 12, 1),
            charge_end=date(2026, 12, 31),
            amount=Decimal("612.40"),
            currency="USD",
            invoice_ref="G012345678",
        ),
    ),
    ClockTick(
        event_id="tick-2026-12-16T09:00Z",
        event_type="clock.tick",
        occurred_at=_at(date(2026, 12, 16)),
        customer_id="*",
        data=ClockTickData(),
    ),
    InvoiceAged(
        event_id="aged-INV-2026-0001-2026-12-16",
        event_type="invoice.aged",
        occurred_at=_at(date(2026, 12, 16)),
        customer_id=_CUSTOMER,
        data=InvoiceAgedData(
            invoice_id=_INVOICE,
            due_on=date(2026, 12, 1),
            as_of=date(2026, 12, 16),
            days_past_due=15,
            outstanding=Money(amount=Decimal("1250.00"), currency="USD"),
            subscription_ids=list(_SUBSCRIPTIONS),
        ),
    ),
    HoldPlaced(
        event_id="hold-ptp-19-placed",
        event_type="hold.placed",
        occurred_at=_at(date(2026, 12, 18), 11),
        customer_id=_CUSTOMER,
        data=HoldPlacedData(
            hold_id="HOLD-19",
            kind="promise_to_pay",
            until=date(2027, 1, 10),
            reason="Customer promised payment after year-end close",
            by="ops.alice",
        ),
    ),
    HoldReleased(
        event_id="hold-ptp-19-released",
        event_type="hold.released",
        occurred_at=_at(date(2027, 1, 13), 17),
        customer_id=_CUSTOMER,
        data=HoldReleasedData(hold_id="HOLD-19", reason="Paid", by="ops.alice"),
    ),
    SupportRequested(
        event_id="zd-4711-requested",
        event_type="support.requested",
        occurred_at=_at(date(2026, 12, 20), 10, 15),
        customer_id=_CUSTOMER,
        data=SupportRequestedData(
            ticket_id="ZD-4711",
            topic="payment_claimed",
            channel="email",
            summary="We paid INV-2026-0001 by bank transfer yesterday",
        ),
    ),
    SupportResolved(
        event_id="zd-4711-resolved",
        event_type="support.resolved",
        occurred_at=_at(date(2026, 12, 22), 16, 40),
        customer_id=_CUSTOMER,
        data=SupportResolvedData(ticket_id="ZD-4711", resolution="Transfer found and applied"),
    ),
    CollectionsState(
        event_id="state-contoso-2026-12-18-1",
        event_type="collections.state",
        occurred_at=_at(date(2026, 12, 18), 11),
        customer_id=_CUSTOMER,
        data=CollectionsStateData(
            stage="reminder",
            delinquent=True,
            overdue=list(_OVERDUE),
            anchor_due_on=date(2026, 12, 1),
            days_past_due=17,
            as_of=date(2026, 12, 18),
            holds=[
                Hold(
                    hold_id="HOLD-19",
                    kind="promise_to_pay",
                    until=date(2027, 1, 10),
                    reason="Customer promised payment after year-end close",
                    by="ops.alice",
                    placed_on=date(2026, 12, 18),
                )
            ],
            suspended_subscription_ids=[],
            next=NextStage(stage="final_notice", earliest_on=date(2027, 1, 11)),
            policy=_POLICY,
            tickets=[
                OpenTicket(
                    ticket_id="ZD-4702",
                    topic="payment_claimed",
                    opened_on=date(2026, 12, 18),
                    holds_until=date(2026, 12, 23),
                )
            ],
        ),
    ),
    StageEntered(
        event_id="stage-contoso-reminder-2026-12-16",
        event_type="collections.stage_entered",
        occurred_at=_at(date(2026, 12, 16)),
        customer_id=_CUSTOMER,
        data=StageEnteredData(
            stage="reminder",
            previous="current",
            as_of=date(2026, 12, 16),
            days_past_due=15,
            overdue=list(_OVERDUE),
            why=Why(
                rule="stages.reminder.after_days",
                text="USD 1250.00 overdue for 15 days (reminder after 14 days)",
                trigger_event_id="aged-INV-2026-0001-2026-12-16",
                anchor_invoice_id=_INVOICE,
                anchor_due_on=date(2026, 12, 1),
                days_past_due=15,
                overdue=list(_OVERDUE),
                policy=_POLICY,
            ),
        ),
    ),
    AccessSuspend(
        event_id="cmd-contoso-suspend-3f9a",
        event_type="access.suspend",
        occurred_at=_at(date(2027, 1, 11)),
        customer_id=_CUSTOMER,
        data=AccessCommandData(
            command_id="cmd-contoso-suspend-3f9a",
            subscription_ids=list(_SUBSCRIPTIONS),
            reason="USD 1250.00 overdue for 41 days",
            stage="suspended",
            policy=_POLICY,
            sequence=4,
        ),
    ),
    AccessRestore(
        event_id="cmd-contoso-restore-8b21",
        event_type="access.restore",
        occurred_at=_at(date(2027, 1, 13), 16, 45),
        customer_id=_CUSTOMER,
        data=AccessCommandData(
            command_id="cmd-contoso-restore-8b21",
            subscription_ids=list(_SUBSCRIPTIONS),
            reason="Nothing overdue",
            stage="current",
            policy=_POLICY,
            sequence=6,
        ),
    ),
    AccessSuspended(
        event_id="cmd-contoso-suspend-3f9a-sub-7c1e9a-suspended",
        event_type="access.suspended",
        occurred_at=_at(date(2027, 1, 11), 9, 1),
        customer_id=_CUSTOMER,
        data=AccessSuspendedData(
            command_id="cmd-contoso-suspend-3f9a",
            subscription_id="sub-7c1e9a",
            provider="partner_center",
        ),
    ),
    AccessRestored(
        event_id="cmd-contoso-restore-8b21-sub-7c1e9a-restored",
        event_type="access.restored",
        occurred_at=_at(date(2027, 1, 13), 16, 46),
        customer_id=_CUSTOMER,
        data=AccessRestoredData(
            command_id="cmd-contoso-restore-8b21",
            subscription_id="sub-7c1e9a",
            provider="partner_center",
        ),
    ),
    AccessFailed(
        event_id="cmd-contoso-suspend-3f9a-sub-55d0f2-failed",
        event_type="access.failed",
        occurred_at=_at(date(2027, 1, 11), 9, 20),
        customer_id=_CUSTOMER,
        data=AccessFailedData(
            command_id="cmd-contoso-suspend-3f9a",
            subscription_id="sub-55d0f2",
            provider="partner_center",
            attempts=5,
            error="HTTP 412 Precondition Failed: etag changed",
            # The last exchanges of the fifth attempt: each PATCH found the etag stale.
            exchanges=[
                ProviderExchange(
                    at=datetime(2027, 1, 11, 9, 19, 58, tzinfo=UTC),
                    method=method,
                    path="/v1/customers/6f1c3a52-8d0e-4b7a-9c1f-2e4d5a6b7c8d"
                    "/subscriptions/d41d8cd9-8f00-4b20-9e98-00998ecf8427",
                    status=status,
                    request_id=request_id,
                    correlation_id=correlation_id,
                    answer=None if status == 200 else "2055: Etag is no longer valid",
                )
                for method, status, request_id, correlation_id in (
                    (
                        "GET",
                        200,
                        "0c5d7a41-6f0e-4c1b-9a8e-2d3f4b5c6d7e",
                        "8e2b6f10-3c4d-4e5f-a6b7-c8d9e0f1a2b3",
                    ),
                    (
                        "PATCH",
                        412,
                        "5b1e4c2a-7d3f-5e6a-8b9c-0d1e2f3a4b5c",
                        "1f3a5c7e-9b2d-4f6a-8c0e-2a4c6e8f0b1d",
                    ),
                    (
                        "GET",
                        200,
                        "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                        "3a4b5c6d-7e8f-4a9b-8c1d-2e3f4a5b6c7d",
                    ),
                    (
                        "PATCH",
                        412,
                        "e4f5a6b7-c8d9-5e0f-9a1b-2c3d4e5f6a7b",
                        "7c6b5a49-3827-4165-9f0e-dcba98765432",
                    ),
                )
            ],
        ),
    ),
    AccessCommitment(
        event_id="commitment-partner_center-sub-7a1c-2027-01-31",
        event_type="access.commitment",
        occurred_at=_at(date(2027, 1, 17), 6),
        customer_id=_CUSTOMER,
        data=AccessCommitmentData(
            subscription_id="sub-7a1c",
            provider="partner_center",
            term_end=date(2027, 1, 31),
            auto_renew=True,
            renews_on=date(2027, 2, 1),
            cancellable_until=None,
            term_cost=Money(amount=Decimal("7348.80"), currency="USD"),
            reason="auto-renews on 2027-02-01 for a year (USD 7348.80) while suspended",
        ),
    ),
    AccessDrift(
        event_id="drift-sub-7c1e9a-2027-01-12T03:00Z",
        event_type="access.drift",
        occurred_at=_at(date(2027, 1, 12), 3),
        customer_id=_CUSTOMER,
        data=AccessDriftData(
            subscription_id="sub-7c1e9a",
            provider="partner_center",
            desired="suspended",
            observed="active",
            # The read that found it active, then the repair: GET for the etag, PATCH.
            exchanges=[
                ProviderExchange(
                    at=datetime(2027, 1, 12, 3, 0, second, tzinfo=UTC),
                    method=method,
                    path="/v1/customers/6f1c3a52-8d0e-4b7a-9c1f-2e4d5a6b7c8d"
                    "/subscriptions/a3b9c1d2-0e4f-4a5b-8c6d-7e8f9a0b1c2d",
                    status=200,
                    request_id=request_id,
                    correlation_id=correlation_id,
                )
                for second, method, request_id, correlation_id in (
                    (
                        0,
                        "GET",
                        "2b7e1516-28ae-4d2a-abf7-158809cf4f3c",
                        "6bc1bee2-2e40-4f96-a93d-7e117393172a",
                    ),
                    (
                        1,
                        "GET",
                        "ae2d8a57-1e03-4c9e-b7ac-45af8e5130c8",
                        "1c46a35c-e411-4e5f-bb30-c81f6ac0f9c0",
                    ),
                    (
                        1,
                        "PATCH",
                        "30c81c46-a35c-5e41-9e5f-bb1e7b5f8b9a",
                        "f69f2445-df4f-4b17-9ad2-2b417be66c37",
                    ),
                )
            ],
        ),
    ),
    AccessParked(
        event_id="cmd-contoso-suspend-3f9a-parked",
        event_type="access.parked",
        occurred_at=_at(date(2027, 1, 11), 9, 0),
        customer_id=_CUSTOMER,
        data=AccessParkedData(
            command_id="cmd-contoso-suspend-3f9a",
            subscription_ids=_SUBSCRIPTIONS,
            provider="partner_center",
            guard="brake",
            reason="51 suspensions in the last 24 hours on partner_center, the cap is 50",
        ),
    ),
    AccessUnparked(
        event_id="cmd-contoso-suspend-3f9a-approved",
        event_type="access.unparked",
        occurred_at=_at(date(2027, 1, 11), 10, 15),
        customer_id=_CUSTOMER,
        data=AccessUnparkedData(
            command_id="cmd-contoso-suspend-3f9a",
            outcome="approved",
            by="mei.lin",
            reason="checked with the account manager",
        ),
    ),
    AccessApprovalNeeded(
        event_id="approval-brake-partner_center-2027-01-11T09:00Z",
        event_type="access.approval_needed",
        occurred_at=_at(date(2027, 1, 11), 9, 1),
        customer_id=_CUSTOMER,
        data=AccessApprovalNeededData(
            batch_id="brake-partner_center-2027-01-11T09:00Z",
            guard="brake",
            count=7,
            customer_ids=[_CUSTOMER, "fabrikam", "northwind"],
            reason="more than 50 suspensions in 24 hours on partner_center",
        ),
    ),
    AccessApprove(
        event_id="approve-cmd-contoso-suspend-3f9a",
        event_type="access.approve",
        occurred_at=_at(date(2027, 1, 11), 10, 14),
        customer_id=_CUSTOMER,
        data=AccessDecisionData(
            command_id="cmd-contoso-suspend-3f9a",
            by="mei.lin",
            reason="checked with the account manager",
        ),
    ),
    AccessReject(
        event_id="reject-cmd-fabrikam-suspend-91c0",
        event_type="access.reject",
        occurred_at=_at(date(2027, 1, 11), 10, 16),
        customer_id="fabrikam",
        data=AccessDecisionData(
            command_id="cmd-fabrikam-suspend-91c0",
            by="mei.lin",
            reason="paid by wire this morning, not on the feed yet",
        ),
    ),
    CaseAcknowledged(
        event_id="case-acknowledged-drift-partner_center-sub-7a1c-3",
        event_type="case.acknowledged",
        occurred_at=_at(date(2027, 1, 12), 9, 5),
        customer_id=_CUSTOMER,
        data=CaseNoteData(
            case_id="drift-partner_center-sub-7a1c-3",
            by="mei.lin",
            note="asked Microsoft commercial support, request 2701120040001",
        ),
    ),
    CaseResolved(
        event_id="case-resolved-drift-partner_center-sub-7a1c-3",
        event_type="case.resolved",
        occurred_at=_at(date(2027, 1, 13), 16, 40),
        customer_id=_CUSTOMER,
        data=CaseNoteData(
            case_id="drift-partner_center-sub-7a1c-3",
            by="mei.lin",
            note="Microsoft re-suspended the subscription; drift repaired",
        ),
    ),
    PolicyAccepted(
        event_id="policy-collections-standard-4",
        event_type="policy.accepted",
        occurred_at=_at(date(2027, 2, 1), 8),
        customer_id="*",
        data=PolicyAcceptedData(
            policy=PolicyRef(name="standard", version=4),
            digest="3f0c9e5d2b7a41c8e6f1d0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9",
            stages=["overdue", "final_notice", "suspended"],
            migrate={"warning": "overdue"},
            group="collections",
        ),
    ),
    NoticeRequested(
        event_id="notice-contoso-final_notice-2027-01-04",
        event_type="notice.requested",
        occurred_at=_at(date(2027, 1, 4)),
        customer_id=_CUSTOMER,
        data=NoticeRequestedData(
            notice_id="notice-contoso-final_notice-2027-01-04",
            kind="final_notice",
            audience="customer",
            locale="en",
            facts={
                "overdue": [{"amount": "1250.00", "currency": "USD"}],
                "due_on": "2026-12-01",
                "days_past_due": 34,
                "suspension_on": "2027-01-11",
            },
        ),
    ),
    NoticeDelivered(
        event_id="notice-contoso-final_notice-2027-01-04-delivered",
        event_type="notice.delivered",
        occurred_at=_at(date(2027, 1, 4), 9, 1),
        customer_id=_CUSTOMER,
        data=NoticeDeliveredData(
            notice_id="notice-contoso-final_notice-2027-01-04",
            channel="email",
            attempts=1,
        ),
    ),
    NoticeFailed(
        event_id="notice-contoso-final_notice-2027-01-04-webhook-failed",
        event_type="notice.failed",
        occurred_at=_at(date(2027, 1, 4), 10, 30),
        customer_id=_CUSTOMER,
        data=NoticeFailedData(
            notice_id="notice-contoso-final_notice-2027-01-04",
            channel="webhook",
            attempts=6,
            error="HTTP 503 from receiver",
        ),
    ),
]

# Keyed and ordered like EVENT_TYPES, so iteration order is the documentation order.
EXAMPLES: dict[str, Event] = {
    event_type: next(e for e in _EXAMPLES if e.event_type == event_type)
    for event_type in EVENT_TYPES
}
