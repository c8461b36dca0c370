"""Message handlers of notifications: decode, route, render, deliver, report.

One handler for the three topics the service reads:
- notifications.requests.v1 `notice.requested`: render and deliver the notice;
- access.events.v1 `access.failed` / `access.drift` / `access.approval_needed` /
  `access.commitment`: a staff notice (audience partner; for parked suspensions one per
  batch; `commitment_alert` one per subscription and renewal or cancellation window);
  `access.suspended` / `access.restored`: recorded in the access log, nothing sent;
  `access.parked` / `access.unparked`: accepted, nothing sent (the batch's
  `access.approval_needed` is the notice; `billstate access pending` lists them);
- billing.customers.v1 `customer.upserted`: the customer directory (a tombstone deletes).

Every notice ends in exactly one outcome in the delivery log and on
notifications.deliveries.v1: `notice.delivered`, or `notice.failed` plus the original
record in `<topic>.dlq` with the reason. Nothing here raises for a bad notice: a
ContractError or Refused is the record's fault and the Loop dead-letters it; anything else
is the Loop's retry-then-DLQ path.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from prometheus_client import Counter

from billstate_notifications.channels.base import Channel
from billstate_notifications.domain import Rendered, RenderError, render, staff_notice
from billstate_notifications.store import Customer, Delivery, Store
from billstate_shared.contracts import (
    AccessApprovalNeeded,
    AccessCommitment,
    AccessDrift,
    AccessFailed,
    AccessParked,
    AccessRestored,
    AccessSuspended,
    AccessUnparked,
    CustomerUpserted,
    NoticeDelivered,
    NoticeFailed,
    NoticeRequested,
    NoticeRequestedData,
    decode,
    encode,
)
from billstate_shared.domain.ids import make_id
from billstate_shared.errors import ExternalError, Refused
from billstate_shared.logging import EMAIL
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce, Record
from billstate_shared.runtime.retry import RetryPolicy, Sleep
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.topics import (
    ACCESS_EVENTS,
    BY_NAME,
    CUSTOMERS,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
)

log = structlog.get_logger("billstate.notifications")

TOPICS = (NOTICE_REQUESTS.name, ACCESS_EVENTS.name, CUSTOMERS.name)
# What each topic may carry, from the catalog: anything else there is refused (DLQ).
CARRIES = {name: BY_NAME[name].event_types for name in TOPICS}
# Bound per message for the Loop's one log line; cleared at the start of the next message.
_BOUND = ("notice_id", "kind", "outcome", "channel", "attempts")
MAX_ERROR = 500


def clean_error(message: str) -> str:
    """An error fit for the delivery log, events and DLQ headers: no addresses, bounded."""
    text = " ".join(EMAIL.sub("[email]", message).split()) or "unknown error"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def _describe(err: BaseException) -> str:
    """A failed delivery attempt in words: a channel's own message, else the error's type."""
    if isinstance(err, ExternalError):
        return clean_error(err.message)
    return clean_error(f"{type(err).__name__}: {err}")


def _source(record: Record) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


class NotificationsHandler:
    """The Loop's handler. `clock` stamps delivery outcomes (when they happened: a record,
    never a decision); `sleep` is the backoff wait (tests pass a fast one)."""

    def __init__(
        self,
        *,
        store: Store,
        channel: Channel,
        partner_channel: Channel | None = None,
        default_locale: str = "en",
        retry_attempts: int = 3,
        retry_base_delay: float = 0.5,
        service: str = "notifications",
        metrics: Metrics | None = None,
        clock: WallClock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.store, self.channel = store, channel
        # Staff and partner notices may go elsewhere (a Teams channel) than customers' mail.
        self.partner_channel = partner_channel or channel
        self.default_locale = default_locale
        # After failed try n: retry_base_delay x 2^(n-1), at most 30 s, or the far side's
        # Retry-After within the same cap.
        self.retry = RetryPolicy(max(1, retry_attempts), retry_base_delay)
        self.service, self.metrics = service, metrics
        self.clock: WallClock = clock or utc_now
        self.sleep: Sleep = sleep or asyncio.sleep
        self._notices = (
            None
            if metrics is None
            else Counter(
                "billstate_notices",
                "Notice outcomes: delivered, failed, duplicate, re-emitted",
                ["service", "channel", "status"],
                registry=metrics.registry,
            )
        )

    async def __call__(self, record: Record) -> list[Produce]:
        structlog.contextvars.unbind_contextvars(*_BOUND)
        if record.value is None:
            return self._tombstone(record)
        event = decode(record.value)
        structlog.contextvars.bind_contextvars(
            customer_id=event.customer_id, event_id=event.event_id
        )
        topic = record.topic
        carried = CARRIES.get(topic)
        if carried is None:
            raise Refused("$", f"notifications does not read {topic}", event.event_type)
        if event.event_type not in carried:
            carries = ", ".join(carried)
            reason = f"{event.event_type} is not accepted on {topic}; it carries {carries}"
            raise Refused("event_type", reason, event.event_type)
        if topic == NOTICE_REQUESTS.name and isinstance(event, NoticeRequested):
            return await self._notify(
                record, event.customer_id, event.data, event.event_type, event.event_id
            )
        if topic == ACCESS_EVENTS.name and isinstance(
            event, AccessFailed | AccessDrift | AccessApprovalNeeded | AccessCommitment
        ):
            notice = staff_notice(event, self.default_locale)
            return await self._notify(
                record, event.customer_id, notice, event.event_type, event.event_id
            )
        if topic == ACCESS_EVENTS.name and isinstance(event, AccessSuspended | AccessRestored):
            self._log_access(record, event)
            return []
        if topic == ACCESS_EVENTS.name and isinstance(event, AccessParked | AccessUnparked):
            # One notice per batch comes from its access.approval_needed, not per command.
            structlog.contextvars.bind_contextvars(outcome="no notice")
            return []
        if topic == CUSTOMERS.name and isinstance(event, CustomerUpserted):
            self._upsert_customer(event)
            return []
        # Unreachable while every type the catalog lists for these topics is handled above.
        raise Refused("event_type", f"{event.event_type} is not handled on {topic}")

    # ---- notices ------------------------------------------------------------------------

    async def _notify(
        self,
        record: Record,
        customer_id: str,
        notice: NoticeRequestedData,
        event_type: str,
        event_id: str,
    ) -> list[Produce]:
        source = _source(record)
        structlog.contextvars.bind_contextvars(notice_id=notice.notice_id, kind=notice.kind)
        channel = self.partner_channel if notice.audience == "partner" else self.channel
        if notice.audience == "partner" and notice.locale != self.default_locale:
            # The partner reads its own language, whatever the requester assumed.
            notice = notice.model_copy(update={"locale": self.default_locale})
        prior = self.store.delivery(notice.notice_id)
        if prior is not None:
            if prior.source == source:
                # This very record again: its offset was not committed after the outcome
                # was stored, so the outcome may not have been written. Write it again
                # (same event id, same bytes); consumers dedupe by event id.
                self._count(prior.channel, "re-emitted")
                structlog.contextvars.bind_contextvars(outcome="re-emitted")
                return self._outputs(prior, record, event_type)
            if prior.status == "delivered":
                self._count(prior.channel, "duplicate")
                structlog.contextvars.bind_contextvars(outcome="duplicate")
                return []
            # Failed before, requested again (a re-drive from the DLQ): try once more.

        customer = self.store.customer(customer_id)
        if (
            notice.audience == "customer"
            and customer is None
            and notice.locale != self.default_locale
        ):
            # A customer the billing bus never described has no language of its own (the
            # requester's locale is a guess): the partner's default is the better one.
            notice = notice.model_copy(update={"locale": self.default_locale})

        def outcome(
            *, locale: str, attempts: int, error: str | None, field: str | None, ok: bool
        ) -> Delivery:
            return Delivery(
                notice_id=notice.notice_id,
                customer_id=customer_id,
                kind=notice.kind,
                audience=notice.audience,
                locale=locale,
                channel=channel.name,
                attempts=attempts,
                status="delivered" if ok else "failed",
                error=error,
                error_field=field,
                event_id=event_id,
                source=source,
                finished_at=self.clock().isoformat(),
            )

        try:
            rendered = render(notice, customer.name if customer else None, customer_id=customer_id)
        except RenderError as err:
            delivery = outcome(
                locale=notice.locale,
                attempts=1,
                error=clean_error(f"render: {err}"),
                field=err.field,
                ok=False,
            )
        else:
            attempts, error, ok = await self._deliver(channel, notice, customer, rendered)
            delivery = outcome(
                locale=rendered.locale,
                attempts=attempts,
                error=error,
                field=None if ok else "$",
                ok=ok,
            )
        self.store.record(delivery)
        self._count(delivery.channel, delivery.status)
        structlog.contextvars.bind_contextvars(
            outcome=delivery.status, channel=delivery.channel, attempts=delivery.attempts
        )
        return self._outputs(delivery, record, event_type)

    async def _deliver(
        self,
        channel: Channel,
        notice: NoticeRequestedData,
        customer: Customer | None,
        rendered: Rendered,
    ) -> tuple[int, str | None, bool]:
        """(attempts, last error, delivered?) after at most `retry_attempts` tries."""
        address = customer.address_for(notice.audience) if customer else None
        errors: list[str] = []

        def failed(attempt: int, err: BaseException, retryable: bool) -> None:  # noqa: FBT001  (the policy's on_failure signature)
            errors.append(_describe(err))
            log.warning(
                "delivery attempt failed", attempt=attempt, retryable=retryable, error=errors[-1]
            )

        async def deliver() -> None:
            await channel.deliver(notice.notice_id, notice.audience, address, rendered)

        tried = await self.retry.attempt(deliver, sleep=self.sleep, on_failure=failed)
        # A delivery that landed after failed tries keeps the last error, for the record.
        return tried.attempts, errors[-1] if errors else None, tried.ok

    def _outputs(self, delivery: Delivery, record: Record, event_type: str) -> list[Produce]:
        """The outcome event, and for a failure the original record to the topic's DLQ."""
        key = delivery.customer_id.encode()
        out = [Produce(NOTICE_DELIVERIES.name, key, encode(outcome_event(delivery)))]
        if delivery.status == "failed":
            reason = f"notice {delivery.notice_id} failed: {delivery.error}"
            refused = Refused(delivery.error_field or "$", reason, event_type)
            out.append(DeadLetter.from_record(record, self.service, refused).produce())
            if self.metrics is not None:
                self.metrics.dead_lettered.labels(self.service, record.topic).inc()
            log.warning("notice failed; request dead-lettered", reason=reason)
        return out

    def _count(self, channel: str, status: str) -> None:
        if self._notices is not None:
            self._notices.labels(self.service, channel, status).inc()

    # ---- directory and access log ------------------------------------------------------

    def _upsert_customer(self, event: CustomerUpserted) -> None:
        d = event.data
        customer = Customer(
            customer_id=event.customer_id,
            name=d.name,
            locale=d.locale or self.default_locale,
            billing_email=d.billing_email,
            partner_contact_email=d.partner_contact_email,
        )
        self.store.upsert_customer(customer, event.event_id)

    def _log_access(self, record: Record, event: AccessSuspended | AccessRestored) -> None:
        d = event.data
        self.store.log_access(
            event_id=event.event_id,
            customer_id=event.customer_id,
            event_type=event.event_type,
            subscription_id=d.subscription_id,
            provider=d.provider,
            command_id=d.command_id,
            occurred_at=event.occurred_at.isoformat(),
            source=_source(record),
        )

    def _tombstone(self, record: Record) -> list[Produce]:
        if record.topic == CUSTOMERS.name and record.key:
            customer_id = record.key.decode("utf-8", errors="replace")
            structlog.contextvars.bind_contextvars(customer_id=customer_id)
            self.store.forget_customer(customer_id)
            return []
        raise Refused("$", "an empty value (tombstone) is not an event here")


def outcome_event(delivery: Delivery) -> NoticeDelivered | NoticeFailed:
    """The contract event for a stored outcome; its id depends only on notice and status."""
    delivered = delivery.status == "delivered"
    kind = NoticeDelivered if delivered else NoticeFailed
    return kind.model_validate(
        {
            "event_id": make_id("dlv", delivery.notice_id, delivery.status),
            "event_type": f"notice.{delivery.status}",
            "occurred_at": datetime.fromisoformat(delivery.finished_at),
            "customer_id": delivery.customer_id,
            "data": {
                "notice_id": delivery.notice_id,
                "channel": delivery.channel,
                "attempts": delivery.attempts,
                "error": delivery.error if delivered else delivery.error or "unknown error",
            },
        }
    )
