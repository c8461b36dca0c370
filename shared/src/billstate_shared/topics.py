"""The topic catalog: every contract topic with partitions, cleanup, retention and key rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# One count for every customer-keyed topic, so they stay co-partitioned; changing it is a
# deliberate repartitioning, never a per-topic tweak.
CUSTOMER_PARTITIONS = 8

DAY_MS = 24 * 60 * 60 * 1000

Cleanup = Literal["delete", "compact"]


@dataclass(frozen=True)
class Topic:
    """One topic: its name, what it carries, who reads it, and how Kafka keeps it."""

    name: str
    event_types: tuple[str, ...]
    doc: str
    cleanup: Cleanup = "delete"
    retention_days: int | None = 365  # None: keep forever (compacted topics)
    key: str = "customer_id"  # the Kafka key rule; the clock writes "*" to every partition
    partitions: int = CUSTOMER_PARTITIONS
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    # Readers that keep a read model and refuse nothing (the console): they get a topic's
    # reads and count in its consumers, but no dead-letter topic is made for them.
    observers: tuple[str, ...] = ()
    is_dlq: bool = False
    extra_config: tuple[tuple[str, str], ...] = field(default=())

    @property
    def config(self) -> dict[str, str]:
        """The topic-level Kafka configs billstate owns; anything else is left to the cluster."""
        retention = "-1" if self.retention_days is None else str(self.retention_days * DAY_MS)
        return {
            "cleanup.policy": self.cleanup,
            "retention.ms": retention,
            **dict(self.extra_config),
        }

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


CUSTOMERS = Topic(
    "billing.customers.v1",
    ("customer.upserted",),
    "Customer master data from the partner's billing bus; latest record per customer wins.",
    cleanup="compact",
    retention_days=None,
    readers=("invoicing", "collections", "notifications"),
    writers=("billing bus",),
    observers=("console",),
)
INVOICES = Topic(
    "billing.invoices.v1",
    ("invoice.issued", "invoice.adjusted", "invoice.voided"),
    "Invoices, adjustments (credit notes) and voids from the partner's billing bus.",
    readers=("invoicing", "collections"),
    writers=("billing bus",),
    observers=("console",),
)
PAYMENTS = Topic(
    "billing.payments.v1",
    ("payment.received", "payment.reversed", "payment.failed", "payment.pending"),
    "Payments, reversals (chargebacks), failed payment attempts and payments in flight.",
    # access-control reads only the newest record's time: a silent feed parks suspensions.
    readers=("invoicing", "collections", "access-control"),
    writers=("billing bus",),
    observers=("console",),
)
COSTS = Topic(
    "billing.costs.v1",
    ("cost.recorded",),
    "What Microsoft bills the partner per subscription and charge period (billed"
    " reconciliation lines), keyed by the customer they are for.",
    readers=("collections",),
    writers=("billing bus", "billstate CLI", "access-control"),
    observers=("console",),
)
CLOCK = Topic(
    "billing.clock.v1",
    ("clock.tick",),
    "Business time: a tick on every partition; occurred_at is 'now'.",
    retention_days=7,
    key="*",
    readers=("invoicing",),
    writers=("billstate clock",),
    # The broker stamps each tick's record time, which no sender can set: invoicing refuses a
    # tick whose occurred_at is ahead of it by more than its clock skew.
    extra_config=(("message.timestamp.type", "LogAppendTime"),),
)
DUE_DATES = Topic(
    "billing.due-dates.v1",
    ("invoice.aged",),
    "Due-date events produced by invoicing from the clock and its invoice register.",
    retention_days=30,
    readers=("collections",),
    writers=("invoicing",),
)
CONTROL = Topic(
    "collections.control.v1",
    ("hold.placed", "hold.released"),
    "Operator actions: disputes, promises to pay, manual holds.",
    readers=("collections",),
    writers=("billstate CLI", "console"),
    observers=("console",),
)
SUPPORT = Topic(
    "support.requests.v1",
    ("support.requested", "support.resolved"),
    "Billing support tickets from the partner's helpdesk (directly, or through the console's"
    " signed webhook receiver): what each is about, and when it was resolved.",
    readers=("collections",),
    writers=("helpdesk", "console"),
    observers=("console",),
)
STATE = Topic(
    "collections.state.v1",
    ("collections.state",),
    "Collections state per customer after every change; latest record per customer wins.",
    cleanup="compact",
    retention_days=None,
    writers=("collections",),
    observers=("console",),
)
EVENTS = Topic(
    "collections.events.v1",
    ("collections.stage_entered",),
    "Every stage a customer enters, with why (access-control follows the stages to watch"
    " the commitments of customers at final notice or later).",
    readers=("access-control",),
    writers=("collections",),
    observers=("console",),
)
ACCESS_COMMANDS = Topic(
    "access.commands.v1",
    ("access.suspend", "access.restore"),
    "Suspend and restore commands; only collections writes, only access-control reads.",
    retention_days=90,
    readers=("access-control",),
    writers=("collections",),
    observers=("console",),
)
ACCESS_EVENTS = Topic(
    "access.events.v1",
    (
        "access.suspended",
        "access.restored",
        "access.failed",
        "access.drift",
        "access.commitment",
        "access.parked",
        "access.unparked",
        "access.approval_needed",
    ),
    "What access-control applied, failed to apply, found changed by hand, or parked for"
    " a person to approve.",
    retention_days=90,
    readers=("notifications",),
    writers=("access-control",),
    observers=("console",),
)
POLICIES = Topic(
    "collections.policies.v1",
    ("policy.accepted",),
    "The policy each collections consumer group runs; a new file is checked against it at"
    " start-up (a version bump, a migrate entry for every stage gone).",
    cleanup="compact",
    retention_days=None,
    key="consumer group",
    partitions=1,
    readers=("collections",),
    writers=("collections",),
)
APPROVALS = Topic(
    "access.approvals.v1",
    ("access.approve", "access.reject"),
    "Operators' decisions on suspensions parked by a guard (who, why); keyed by customer,"
    " so each reaches the access-control worker that holds the command.",
    readers=("access-control",),
    writers=("billstate CLI", "console"),
    observers=("console",),
)
CASES = Topic(
    "operations.cases.v1",
    ("case.acknowledged", "case.resolved"),
    "People's steps on escalation cases (an access.failed or access.drift, by event id):"
    " who acknowledged or resolved it, when, and a note.",
    retention_days=None,
    observers=("console",),
    writers=("console",),
)
NOTICE_REQUESTS = Topic(
    "notifications.requests.v1",
    ("notice.requested",),
    "Notices to send to customers and partner staff.",
    retention_days=90,
    readers=("notifications",),
    writers=("collections",),
    observers=("console",),
)
NOTICE_DELIVERIES = Topic(
    "notifications.deliveries.v1",
    ("notice.delivered", "notice.failed"),
    "Delivery results (no addresses).",
    retention_days=90,
    writers=("notifications",),
    observers=("console",),
)

EVENT_TOPICS: tuple[Topic, ...] = (
    CUSTOMERS,
    INVOICES,
    PAYMENTS,
    COSTS,
    CLOCK,
    DUE_DATES,
    CONTROL,
    SUPPORT,
    STATE,
    EVENTS,
    ACCESS_COMMANDS,
    ACCESS_EVENTS,
    POLICIES,
    APPROVALS,
    CASES,
    NOTICE_REQUESTS,
    NOTICE_DELIVERIES,
)


def _dlq_of(topic: Topic) -> Topic:
    return Topic(
        topic.dlq,
        (),
        f"What readers of {topic.name} could not accept: original bytes, reason in headers.",
        retention_days=90,
        key=topic.key,
        partitions=topic.partitions,
        writers=topic.readers,
        observers=("console",),
        is_dlq=True,
    )


# Every topic somebody reads gets a dead-letter topic; nothing is dropped silently.
DLQ_TOPICS: tuple[Topic, ...] = tuple(_dlq_of(t) for t in EVENT_TOPICS if t.readers)

CATALOG: tuple[Topic, ...] = EVENT_TOPICS + DLQ_TOPICS
BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOG}
TOPIC_OF_EVENT: dict[str, Topic] = {et: t for t in EVENT_TOPICS for et in t.event_types}


# Topics a service reads outside its consumer group (no offsets committed): access-control
# looks only at the newest record's time on the payments topic (the stale-feed guard), and
# collections reads the policy its group accepted once, at start-up. access-control follows
# the stages only while it watches commitments (Partner Center, a setting): not an input
# anyone settles or recovers on, since without that setting nothing consumes it.
READ_OUTSIDE_GROUP: frozenset[tuple[str, str]] = frozenset(
    {
        ("access-control", PAYMENTS.name),
        ("access-control", EVENTS.name),
        ("collections", POLICIES.name),
    }
)


def group_inputs(service: str) -> list[Topic]:
    """The catalog topics a service's consumer group consumes and commits offsets on."""
    return [
        t
        for t in CATALOG
        if (service in t.readers or service in t.observers)
        and (service, t.name) not in READ_OUTSIDE_GROUP
    ]


def topic_for(event_type: str) -> Topic:
    """The catalog topic an event type is written to."""
    try:
        return TOPIC_OF_EVENT[event_type]
    except KeyError:
        raise KeyError(f"no topic carries event type {event_type!r}") from None
