"""The channel protocol: deliver one rendered notice, or say whether trying again may help."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from billstate_notifications.domain import Rendered
from billstate_shared.errors import ExternalError

Audience = Literal["customer", "partner"]


class ChannelError(ExternalError):
    """A delivery that did not happen: `ChannelError(message, retryable=..., retry_after=...)`.

    `retryable`: whether the same delivery may succeed later (a timeout, a 4xx from a mail
    server) or never will (no address, a refused recipient). `message` goes into the
    delivery log, notice.failed and the DLQ reason, so it must not carry addresses.
    `retry_after`: the wait the far side asked for (a 429's Retry-After), in seconds.
    """


@runtime_checkable
class Channel(Protocol):
    """A way to deliver notices. `deliver` must be idempotent per `notice_id`: after a
    crash a notice can be handed over again, and the channel should not send it twice
    where it can tell (the outbox overwrites the same file; an e-mail channel can use
    `notice_id` as the Message-ID)."""

    @property
    def name(self) -> str: ...

    async def deliver(
        self, notice_id: str, audience: Audience, address: str | None, rendered: Rendered
    ) -> None:
        """Deliver or raise ChannelError; any other exception counts as retryable."""
        ...


def document(notice_id: str, audience: Audience, rendered: Rendered) -> dict[str, Any]:
    """The whole notice as one JSON document (the outbox file, a generic webhook's body):
    everything a consumer needs to show it, and no address."""
    return {
        "notice_id": notice_id,
        "kind": rendered.kind,
        "audience": audience,
        "locale": rendered.locale,
        "customer_id": rendered.customer_id,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
    }
