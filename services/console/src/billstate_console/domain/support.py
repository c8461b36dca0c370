"""Support requests as the read model keeps them: one row per ticket, and its age in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billstate_console.domain.i18n import Words
from billstate_console.domain.projection import utc
from billstate_shared.contracts import SupportRequested, SupportResolved
from billstate_shared.contracts.events import EventBase

# The topics, in the order the pages explain them; `dispute` flags the customer.
TOPICS = ("billing_question", "payment_claimed", "dispute", "access_problem")
FLAGGING = "dispute"


@dataclass(frozen=True)
class Ticket:
    """A customer's support ticket: its request (the earliest one read) and its resolution
    (None while open). `opened_at`/`resolved_at` are UTC, fixed width (text order is time)."""

    customer_id: str
    ticket_id: str
    topic: str | None = None
    channel: str | None = None
    summary: str | None = None  # the customer's words: pages only, never logs
    opened_at: str | None = None
    resolved_at: str | None = None
    resolution: str | None = None

    @property
    def open(self) -> bool:
        return self.opened_at is not None and self.resolved_at is None


def ticket_of(event: EventBase) -> Ticket | None:
    """The row a support event writes (the other half stays None); None for other events."""
    match event:
        case SupportRequested(data=d):
            return Ticket(
                event.customer_id, d.ticket_id, d.topic, d.channel, d.summary, opened_at=utc(event)
            )
        case SupportResolved(data=d):
            return Ticket(
                event.customer_id, d.ticket_id, resolved_at=utc(event), resolution=d.resolution
            )
    return None


def opened(ticket: Ticket) -> datetime:
    assert ticket.opened_at is not None
    return datetime.strptime(ticket.opened_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def age_days(ticket: Ticket, now: datetime) -> int:
    """Whole days since the request (0 on its first day, never negative)."""
    return max(0, (now - opened(ticket)).days)


def age_text(days: int, words: Words) -> str:
    if days == 0:
        return words("age_today")
    return words("age_day" if days == 1 else "age_days").format(n=days)


__all__ = ["FLAGGING", "TOPICS", "Ticket", "age_days", "age_text", "opened", "ticket_of"]
