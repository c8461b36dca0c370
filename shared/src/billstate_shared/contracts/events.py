"""The v1 wire events as frozen pydantic models and their discriminated union `Event`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from billstate_shared.contracts.types import (
    MAX_HOLDS,
    MAX_SUBSCRIPTIONS,
    MAX_TAGS,
    Amount,
    Currency,
    CustomerId,
    Date,
    DayCount,
    Email,
    EventId,
    Id,
    Label,
    Locale,
    NonEmptyStr,
    NonEmptyText,
    PositiveAmount,
    PositiveInt,
    SchemaVersion,
    SignedAmount,
    SubscriptionId,
    Subscriptions,
    Tag,
    Text,
    Timestamp,
    TimeZoneName,
)
from billstate_shared.domain.currencies import ISO_4217_CODES

MAX_POLICY_STAGES = 64  # stages a policy.accepted record names

__all__ = [
    "EVENT_TYPES",
    "INBOUND_TYPES",
    "MAX_EXCHANGES",
    "AccessApprovalNeeded",
    "AccessApprovalNeededData",
    "AccessApprove",
    "AccessApproveData",
    "AccessCommandData",
    "AccessCommitment",
    "AccessCommitmentData",
    "AccessDecisionData",
    "AccessDrift",
    "AccessDriftData",
    "AccessFailed",
    "AccessFailedData",
    "AccessParked",
    "AccessParkedData",
    "AccessReject",
    "AccessRejectData",
    "AccessRestore",
    "AccessRestoreData",
    "AccessRestored",
    "AccessRestoredData",
    "AccessSuspend",
    "AccessSuspendData",
    "AccessSuspended",
    "AccessSuspendedData",
    "AccessUnparked",
    "AccessUnparkedData",
    "CaseAcknowledged",
    "CaseAcknowledgedData",
    "CaseNoteData",
    "CaseResolved",
    "CaseResolvedData",
    "ClockTick",
    "ClockTickData",
    "CollectionsState",
    "CollectionsStateData",
    "ContractModel",
    "CostRecorded",
    "CostRecordedData",
    "CustomerUpserted",
    "CustomerUpsertedData",
    "Event",
    "EventBase",
    "Guard",
    "Hold",
    "HoldKind",
    "HoldPlaced",
    "HoldPlacedData",
    "HoldReleased",
    "HoldReleasedData",
    "InvoiceAdjusted",
    "InvoiceAdjustedData",
    "InvoiceAged",
    "InvoiceAgedData",
    "InvoiceIssued",
    "InvoiceIssuedData",
    "InvoiceVoided",
    "InvoiceVoidedData",
    "Money",
    "NextStage",
    "NoticeDelivered",
    "NoticeDeliveredData",
    "NoticeFailed",
    "NoticeFailedData",
    "NoticeRequested",
    "NoticeRequestedData",
    "OpenTicket",
    "PaymentFailed",
    "PaymentFailedData",
    "PaymentPending",
    "PaymentPendingData",
    "PaymentReceived",
    "PaymentReceivedData",
    "PaymentReversed",
    "PaymentReversedData",
    "PendingPayment",
    "PolicyAccepted",
    "PolicyAcceptedData",
    "PolicyRef",
    "ProviderExchange",
    "StageEntered",
    "StageEnteredData",
    "SupportRequested",
    "SupportRequestedData",
    "SupportResolved",
    "SupportResolvedData",
    "SupportTopic",
    "Why",
]


class ContractModel(BaseModel):
    """Base of every contract model: immutable, strict, and closed to unknown fields."""

    # strict: a JSON number is never coerced into a string, a decimal or a bool, so a
    # producer's type mistake is refused at the border instead of changing a balance.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# ---------------------------------------------------------------------------------------
# Shared values
# ---------------------------------------------------------------------------------------


class Money(ContractModel):
    """An exact amount in one currency."""

    amount: Amount
    currency: Currency


# One money amount per currency at most.
MoneyList = Annotated[list[Money], Field(max_length=len(ISO_4217_CODES))]


class PolicyRef(ContractModel):
    """The collections policy (name and version) that made a decision."""

    name: NonEmptyStr
    version: PositiveInt


HoldKind = Literal["dispute", "promise_to_pay", "manual"]

# The hold rules, restated for the published schema so that producers validating with it
# get the same verdict as `decode`.
_HOLD_RULES: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "dispute"}}, "required": ["kind"]},
            "then": {"required": ["invoice_id"], "properties": {"invoice_id": {"type": "string"}}},
        },
        {
            "if": {"properties": {"kind": {"const": "promise_to_pay"}}, "required": ["kind"]},
            "then": {"required": ["until"], "properties": {"until": {"type": "string"}}},
        },
        {
            "if": {
                "properties": {"kind": {"enum": ["promise_to_pay", "manual"]}},
                "required": ["kind"],
            },
            "then": {"properties": {"amount": {"type": "null"}}},
        },
    ]
}


class _HoldFields(ContractModel):
    """Fields and rules common to a placed hold and a hold held in collections state."""

    model_config = ConfigDict(json_schema_extra=_HOLD_RULES)

    hold_id: Id
    kind: HoldKind
    # validate_default: the "dispute needs an invoice" rule must also fire when it is absent.
    invoice_id: Id | None = Field(default=None, validate_default=True)
    amount: PositiveAmount | None = None
    until: Date | None = Field(default=None, validate_default=True)
    reason: Text
    by: Label

    @field_validator("invoice_id")
    @classmethod
    def _dispute_names_invoice(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("kind") == "dispute":
            raise PydanticCustomError("hold_rule", "is required on a dispute hold")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_only_on_dispute(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        kind = info.data.get("kind")
        if value is not None and kind is not None and kind != "dispute":
            raise PydanticCustomError(
                "hold_rule",
                "is only allowed on a dispute hold, not on a {kind} hold",
                {"kind": kind},
            )
        return value

    @field_validator("until")
    @classmethod
    def _promise_has_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None and info.data.get("kind") == "promise_to_pay":
            raise PydanticCustomError("hold_rule", "is required on a promise_to_pay hold")
        return value


class Hold(_HoldFields):
    """A hold in force, as collections state reports it."""

    placed_on: Date | None


class NextStage(ContractModel):
    """The next stage the customer would enter, and the first date it can happen."""

    stage: Label
    earliest_on: Date


class PendingPayment(ContractModel):
    """A payment the customer has started and that has not settled yet."""

    payment_id: Id
    amount: PositiveAmount
    currency: Currency
    expected_by: Date


class Why(ContractModel):
    """Which rule and which inputs decided a stage change."""

    rule: Label
    text: Text
    trigger_event_id: EventId | None
    anchor_invoice_id: Id | None
    anchor_due_on: Date | None
    days_past_due: DayCount | None
    overdue: MoneyList
    policy: PolicyRef


# ---------------------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------------------


class EventBase(ContractModel):
    """The envelope every event shares; subclasses pin `event_type` and `data`."""

    event_id: EventId
    event_type: str
    schema_version: SchemaVersion = 1
    occurred_at: Timestamp
    customer_id: CustomerId
    data: ContractModel


# ---------------------------------------------------------------------------------------
# Inbound: billing.customers.v1, billing.invoices.v1, billing.payments.v1, billing.clock.v1
# ---------------------------------------------------------------------------------------


class CustomerUpsertedData(ContractModel):
    """A customer's current master data; the latest record wins."""

    name: NonEmptyText
    locale: Locale
    billing_email: Email
    partner_contact_email: Email
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)]
    subscription_ids: Subscriptions
    # The customer's own zone: its business dates (due dates, days past due, business days,
    # reminders) are dates there. Absent: the policy's zone.
    timezone: TimeZoneName | None = None


class CustomerUpserted(EventBase):
    """`customer.upserted` on billing.customers.v1 (compacted)."""

    event_type: Literal["customer.upserted"]
    data: CustomerUpsertedData


class InvoiceIssuedData(ContractModel):
    """An invoice and the subscriptions it bills."""

    invoice_id: Id
    currency: Currency
    amount: PositiveAmount
    issued_on: Date
    due_on: Annotated[Date, Field(description="On or after issued_on.")]
    subscription_ids: Subscriptions
    # The service period the invoice bills (both days included). Exposure to Microsoft
    # (docs/policy.md) matches cost lines against it; absent, the calendar month before
    # `issued_on` is assumed.
    period_start: Date | None = None
    period_end: Date | None = None

    @field_validator("due_on")
    @classmethod
    def _due_after_issue(cls, value: date, info: ValidationInfo) -> date:
        # Field validators run in declaration order, so issued_on is already parsed here
        # (and absent from info.data when it was itself invalid).
        issued_on = info.data.get("issued_on")
        if isinstance(issued_on, date) and value < issued_on:
            raise PydanticCustomError("invoice_rule", "must not be before issued_on")
        return value


class InvoiceIssued(EventBase):
    """`invoice.issued` on billing.invoices.v1."""

    event_type: Literal["invoice.issued"]
    data: InvoiceIssuedData


class InvoiceAdjustedData(ContractModel):
    """A change to an invoice's amount; negative is a credit note."""

    invoice_id: Id
    amount_delta: SignedAmount
    reason: Text


class InvoiceAdjusted(EventBase):
    """`invoice.adjusted` on billing.invoices.v1."""

    event_type: Literal["invoice.adjusted"]
    data: InvoiceAdjustedData


class InvoiceVoidedData(ContractModel):
    """An invoice that no longer counts."""

    invoice_id: Id
    reason: Text


class InvoiceVoided(EventBase):
    """`invoice.voided` on billing.invoices.v1."""

    event_type: Literal["invoice.voided"]
    data: InvoiceVoidedData


class PaymentReceivedData(ContractModel):
    """Money received; with invoice_id it pays that invoice first."""

    payment_id: Id
    currency: Currency
    amount: PositiveAmount
    invoice_id: Id | None = None


class PaymentReceived(EventBase):
    """`payment.received` on billing.payments.v1."""

    event_type: Literal["payment.received"]
    data: PaymentReceivedData


class PaymentReversedData(ContractModel):
    """A whole payment undone (chargeback, returned transfer)."""

    payment_id: Id
    reason: Text


class PaymentReversed(EventBase):
    """`payment.reversed` on billing.payments.v1."""

    event_type: Literal["payment.reversed"]
    data: PaymentReversedData


class PaymentFailedData(ContractModel):
    """A failed collection attempt; changes no balance. With the `payment_id` of a
    `payment.pending`, it ends that payment's wait."""

    invoice_id: Id | None = None
    payment_id: Id | None = None
    reason: Text
    will_retry: bool


class PaymentFailed(EventBase):
    """`payment.failed` on billing.payments.v1."""

    event_type: Literal["payment.failed"]
    data: PaymentFailedData


class PaymentPendingData(PendingPayment):
    """A payment in flight (a bank transfer, a card payment still settling): while in force
    and large enough, it keeps the customer out of a suspend stage until `expected_by`."""


class PaymentPending(EventBase):
    """`payment.pending` on billing.payments.v1."""

    event_type: Literal["payment.pending"]
    data: PaymentPendingData


class CostRecordedData(ContractModel):
    """What Microsoft bills the partner for one subscription and charge period: one billed
    reconciliation line (or the sum of a subscription's lines for one period and invoice).
    `currency` is the partner's Microsoft billing currency, which may differ from the
    customer's. A negative amount is a credit from Microsoft."""

    cost_id: Id
    subscription_id: SubscriptionId
    charge_start: Date
    charge_end: Annotated[Date, Field(description="On or after charge_start.")]
    amount: SignedAmount
    currency: Currency
    invoice_ref: Id  # Microsoft's invoice number

    @field_validator("charge_end")
    @classmethod
    def _end_after_start(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("charge_start")
        if isinstance(start, date) and value < start:
            raise PydanticCustomError("cost_rule", "must not be before charge_start")
        return value


class CostRecorded(EventBase):
    """`cost.recorded` on billing.costs.v1."""

    event_type: Literal["cost.recorded"]
    data: CostRecordedData


class ClockTickData(ContractModel):
    """No fields: the tick's `occurred_at` is the business "now"."""


class ClockTick(EventBase):
    """`clock.tick` on billing.clock.v1; customer_id is always "*"."""

    event_type: Literal["clock.tick"]
    customer_id: Literal["*"]
    data: ClockTickData


# ---------------------------------------------------------------------------------------
# Internal and outbound
# ---------------------------------------------------------------------------------------


class InvoiceAgedData(ContractModel):
    """An open invoice's age on one business date."""

    invoice_id: Id
    due_on: Date
    as_of: Date
    days_past_due: DayCount
    outstanding: Money
    subscription_ids: Subscriptions


class InvoiceAged(EventBase):
    """`invoice.aged` on billing.due-dates.v1."""

    event_type: Literal["invoice.aged"]
    data: InvoiceAgedData


class HoldPlacedData(_HoldFields):
    """An operator's hold: a dispute, a promise to pay, or a manual pause."""


class HoldPlaced(EventBase):
    """`hold.placed` on collections.control.v1."""

    event_type: Literal["hold.placed"]
    data: HoldPlacedData


class HoldReleasedData(ContractModel):
    """An operator ends a hold."""

    hold_id: Id
    reason: Text
    by: Label


class HoldReleased(EventBase):
    """`hold.released` on collections.control.v1."""

    event_type: Literal["hold.released"]
    data: HoldReleasedData


SupportTopic = Literal["billing_question", "payment_claimed", "dispute", "access_problem"]


class SupportRequestedData(ContractModel):
    """A customer's request to the partner's billing support, from its helpdesk: a ticket,
    what it is about and how it came in. `payment_claimed` ("I paid yesterday") holds the
    climb into a suspend stage for the policy's `support.payment_claim_hold_days`; `dispute`
    flags the customer for the team."""

    ticket_id: Id
    topic: SupportTopic
    channel: Label  # the helpdesk's word: email, phone, web, chat
    summary: Text | None = None  # the customer's words: shown to staff, never logged


class SupportRequested(EventBase):
    """`support.requested` on support.requests.v1."""

    event_type: Literal["support.requested"]
    data: SupportRequestedData


class SupportResolvedData(ContractModel):
    """The helpdesk closed a ticket; a `payment_claimed` hold ends with it."""

    ticket_id: Id
    resolution: NonEmptyText


class SupportResolved(EventBase):
    """`support.resolved` on support.requests.v1."""

    event_type: Literal["support.resolved"]
    data: SupportResolvedData


class OpenTicket(ContractModel):
    """A support ticket not resolved yet; a claimed payment holds the climb into the suspend
    stage through `holds_until` (null: it holds nothing, or no longer)."""

    ticket_id: Id
    topic: SupportTopic
    opened_on: Date
    holds_until: Date | None = None


class CollectionsStateData(ContractModel):
    """A customer's whole collections state after a change."""

    stage: Label
    delinquent: bool
    overdue: MoneyList
    anchor_due_on: Date | None
    days_past_due: DayCount | None
    as_of: Date | None
    holds: Annotated[list[Hold], Field(max_length=MAX_HOLDS)]
    suspended_subscription_ids: Subscriptions
    next: NextStage | None
    policy: PolicyRef
    pending_payments: Annotated[list[PendingPayment], Field(max_length=MAX_HOLDS)] = []
    # Why the customer, due for a suspend stage, is not in it yet: a payment in flight or a
    # date that is not a business date.
    waiting: Text | None = None
    # What Microsoft has billed the partner for the periods the customer has not paid for,
    # per Microsoft billing currency (docs/policy.md, "Exposure"); [] when none.
    exposure: MoneyList = []
    # Open support tickets by ticket id (docs/policy.md "Support requests"); [] when none.
    tickets: Annotated[list[OpenTicket], Field(max_length=MAX_HOLDS)] = []


class CollectionsState(EventBase):
    """`collections.state` on collections.state.v1 (compacted)."""

    event_type: Literal["collections.state"]
    data: CollectionsStateData


class StageEnteredData(ContractModel):
    """A stage change and why it happened."""

    stage: Label
    previous: Label
    as_of: Date
    days_past_due: DayCount | None
    overdue: MoneyList
    why: Why


class StageEntered(EventBase):
    """`collections.stage_entered` on collections.events.v1."""

    event_type: Literal["collections.stage_entered"]
    data: StageEnteredData


class AccessCommandData(ContractModel):
    """The desired access state for some subscriptions; command_id is deterministic."""

    command_id: Id
    subscription_ids: Annotated[
        list[SubscriptionId], Field(min_length=1, max_length=MAX_SUBSCRIPTIONS)
    ]
    reason: Text
    stage: Label
    policy: PolicyRef
    # The version of the customer's book the command was decided on: it grows with every
    # change, so access-control can refuse a command older than one it has applied (a stale
    # command re-driven from a DLQ). Absent on commands decided before it existed.
    sequence: Annotated[int, Field(ge=0, le=2**53)] | None = None


# Both commands carry the same data; the aliases keep the "<Event>Data" naming rule.
AccessSuspendData = AccessCommandData
AccessRestoreData = AccessCommandData


class AccessSuspend(EventBase):
    """`access.suspend` on access.commands.v1."""

    event_type: Literal["access.suspend"]
    data: AccessCommandData


class AccessRestore(EventBase):
    """`access.restore` on access.commands.v1."""

    event_type: Literal["access.restore"]
    data: AccessCommandData


class _AccessAppliedFields(ContractModel):
    command_id: Id
    subscription_id: SubscriptionId
    provider: Label


class AccessSuspendedData(_AccessAppliedFields):
    """A provider confirmed a subscription is suspended."""


class AccessSuspended(EventBase):
    """`access.suspended` on access.events.v1."""

    event_type: Literal["access.suspended"]
    data: AccessSuspendedData


class AccessRestoredData(_AccessAppliedFields):
    """A provider confirmed a subscription is active again."""


class AccessRestored(EventBase):
    """`access.restored` on access.events.v1."""

    event_type: Literal["access.restored"]
    data: AccessRestoredData


class ProviderExchange(ContractModel):
    """One request to a provider and its answer, as sent and received: what a partner gives
    the provider's support (Microsoft's asks for the request and correlation ids)."""

    at: Timestamp
    method: Label
    path: Text  # no query string: nothing secret or personal goes here
    status: Annotated[int, Field(ge=100, le=599)] | None  # None: no answer (a timeout)
    request_id: Label | None = None
    correlation_id: Label | None = None
    answer: Text | None = None  # the provider's error code and description, if any


# The last few exchanges are enough to escalate; more would only grow the event.
MAX_EXCHANGES = 10
Exchanges = Annotated[list[ProviderExchange], Field(max_length=MAX_EXCHANGES)]


class AccessFailedData(ContractModel):
    """A command that could not be applied to one subscription."""

    command_id: Id
    subscription_id: SubscriptionId
    provider: Label
    attempts: PositiveInt
    error: Text
    exchanges: Exchanges = []


class AccessFailed(EventBase):
    """`access.failed` on access.events.v1."""

    event_type: Literal["access.failed"]
    data: AccessFailedData


class AccessDriftData(ContractModel):
    """Access changed outside billstate; the reconciler re-applies the desired state."""

    subscription_id: SubscriptionId
    provider: Label
    desired: Literal["active", "suspended"]
    observed: Text
    exchanges: Exchanges = []


class AccessDrift(EventBase):
    """`access.drift` on access.events.v1."""

    event_type: Literal["access.drift"]
    data: AccessDriftData


Guard = Literal["brake", "stale_payment_feed"]
"""Why access-control parked a suspension for a person to approve."""


class AccessCommitmentData(ContractModel):
    """What a subscription of a customer at final notice or later commits the partner to,
    as the provider reports it, when an auto-renewal or the end of a cancellation window is
    near: staff decide; billstate never cancels anything."""

    subscription_id: SubscriptionId
    provider: Label
    term_end: Date | None
    auto_renew: bool
    renews_on: Date | None  # the next auto-renewal, when auto_renew
    cancellable_until: Timestamp | None  # a new-commerce cancellation window's end, if open
    term_cost: Money | None  # the term's cost to the partner, when the provider says it
    reason: Text  # what is at stake and until when, in words
    exchanges: Exchanges = []


class AccessCommitment(EventBase):
    """`access.commitment` on access.events.v1: a renewal or a cancellation window to act on."""

    event_type: Literal["access.commitment"]
    data: AccessCommitmentData


class AccessParkedData(ContractModel):
    """A suspend command held back by a guard at the actuator, waiting for approval."""

    command_id: Id
    subscription_ids: Annotated[
        list[SubscriptionId], Field(min_length=1, max_length=MAX_SUBSCRIPTIONS)
    ]
    provider: Label
    guard: Guard
    reason: Text


class AccessParked(EventBase):
    """`access.parked` on access.events.v1."""

    event_type: Literal["access.parked"]
    data: AccessParkedData


class AccessUnparkedData(ContractModel):
    """How a parked suspension ended: approved (then applied), rejected, or cancelled by a
    restore for the same customer (the customer paid while it waited)."""

    command_id: Id
    outcome: Literal["approved", "rejected", "cancelled"]
    by: Label
    reason: Text


class AccessUnparked(EventBase):
    """`access.unparked` on access.events.v1."""

    event_type: Literal["access.unparked"]
    data: AccessUnparkedData


class AccessApprovalNeededData(ContractModel):
    """One batch of parked suspensions that staff must approve or reject."""

    batch_id: Id
    guard: Guard
    count: PositiveInt
    customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=10)]
    reason: Text


class AccessApprovalNeeded(EventBase):
    """`access.approval_needed` on access.events.v1; keyed by the batch's first customer,
    so that it lands on a partition like every other access event."""

    event_type: Literal["access.approval_needed"]
    data: AccessApprovalNeededData


class AccessDecisionData(ContractModel):
    """An operator's decision on one parked suspension (who and why)."""

    command_id: Id
    by: Label
    reason: Text


AccessApproveData = AccessDecisionData
AccessRejectData = AccessDecisionData


class AccessApprove(EventBase):
    """`access.approve` on access.approvals.v1: apply the parked suspension."""

    event_type: Literal["access.approve"]
    data: AccessDecisionData


class AccessReject(EventBase):
    """`access.reject` on access.approvals.v1: drop the parked suspension."""

    event_type: Literal["access.reject"]
    data: AccessDecisionData


class CaseNoteData(ContractModel):
    """A person's step on an escalation case: an `access.failed` or `access.drift` event,
    named by its event id, acknowledged (someone is on it) or resolved (what was done)."""

    case_id: EventId
    by: Label
    note: Text


CaseAcknowledgedData = CaseNoteData
CaseResolvedData = CaseNoteData


class CaseAcknowledged(EventBase):
    """`case.acknowledged` on operations.cases.v1: someone is on the case."""

    event_type: Literal["case.acknowledged"]
    data: CaseNoteData


class CaseResolved(EventBase):
    """`case.resolved` on operations.cases.v1: the case is closed, and how."""

    event_type: Literal["case.resolved"]
    data: CaseNoteData


class PolicyAcceptedData(ContractModel):
    """The policy a collections consumer group runs from now on: what the next start-up
    compares a new policy file with (a version bump, and a `migrate` entry for every stage
    that is gone)."""

    policy: PolicyRef
    digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    stages: Annotated[list[Label], Field(min_length=1, max_length=MAX_POLICY_STAGES)]
    migrate: Annotated[dict[Label, Label], Field(max_length=MAX_POLICY_STAGES)] = {}
    group: Label


class PolicyAccepted(EventBase):
    """`policy.accepted` on collections.policies.v1 (compacted; keyed by consumer group)."""

    event_type: Literal["policy.accepted"]
    customer_id: Literal["*"]
    data: PolicyAcceptedData


class NoticeRequestedData(ContractModel):
    """A notice to send; facts carry what its text needs."""

    notice_id: Id
    kind: NonEmptyStr
    audience: Literal["customer", "partner"]
    locale: Locale
    facts: dict[str, JsonValue]


class NoticeRequested(EventBase):
    """`notice.requested` on notifications.requests.v1."""

    event_type: Literal["notice.requested"]
    data: NoticeRequestedData


class NoticeDeliveredData(ContractModel):
    """A notice handed to its channel (no addresses)."""

    notice_id: Id
    channel: Label
    attempts: PositiveInt
    error: Text | None = None


class NoticeDelivered(EventBase):
    """`notice.delivered` on notifications.deliveries.v1."""

    event_type: Literal["notice.delivered"]
    data: NoticeDeliveredData


class NoticeFailedData(ContractModel):
    """A notice given up on after its retries (no addresses)."""

    notice_id: Id
    channel: Label
    attempts: PositiveInt
    error: NonEmptyText


class NoticeFailed(EventBase):
    """`notice.failed` on notifications.deliveries.v1."""

    event_type: Literal["notice.failed"]
    data: NoticeFailedData


# ---------------------------------------------------------------------------------------
# The union
# ---------------------------------------------------------------------------------------

Event = Annotated[
    CustomerUpserted
    | InvoiceIssued
    | InvoiceAdjusted
    | InvoiceVoided
    | PaymentReceived
    | PaymentReversed
    | PaymentFailed
    | PaymentPending
    | CostRecorded
    | ClockTick
    | InvoiceAged
    | HoldPlaced
    | HoldReleased
    | SupportRequested
    | SupportResolved
    | CollectionsState
    | StageEntered
    | AccessSuspend
    | AccessRestore
    | AccessSuspended
    | AccessRestored
    | AccessFailed
    | AccessDrift
    | AccessCommitment
    | AccessParked
    | AccessUnparked
    | AccessApprovalNeeded
    | AccessApprove
    | AccessReject
    | CaseAcknowledged
    | CaseResolved
    | PolicyAccepted
    | NoticeRequested
    | NoticeDelivered
    | NoticeFailed,
    Field(discriminator="event_type"),
]


def _event_type_of(cls: type[EventBase]) -> str:
    (literal,) = get_args(cls.model_fields["event_type"].annotation)
    assert isinstance(literal, str)
    return literal


EVENT_TYPES: dict[str, type[EventBase]] = {
    _event_type_of(cls): cls for cls in get_args(get_args(Event)[0])
}

INBOUND_TYPES: frozenset[str] = frozenset(
    {
        "customer.upserted",
        "invoice.issued",
        "invoice.adjusted",
        "invoice.voided",
        "payment.received",
        "payment.reversed",
        "payment.failed",
        "payment.pending",
        "cost.recorded",
        "clock.tick",
        "hold.placed",
        "hold.released",
        "support.requested",
        "support.resolved",
    }
)
