"""The channel protocol: deliver one rendered notice, or say whether trying again may help."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from billstate_notifications.domain import Rendered

Audience = Literal["customer", "partner"]


class ChannelError(Exception):
    """A delivery that did not happen.

    `retryable`: whether the same delivery may succeed later (a timeout, a 4xx from a mail
    server) or never will (no address, a refused recipient). `message` goes into the
    delivery log, notice.failed and the DLQ reason, so it must not carry addresses.
    `retry_after`: the wait the far side asked for (a 429's Retry-After), in seconds.
    """

    def __init__(self, retryable: bool, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.message, self.retry_after = retryable, message, retry_after


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
