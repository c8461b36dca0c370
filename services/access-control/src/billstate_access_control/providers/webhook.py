"""The webhook provider: forwards each access change as a signed Standard Webhooks POST."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from billstate_access_control.domain import Access
from billstate_access_control.providers.base import Change, ProviderError, note
from billstate_shared.contracts import ProviderExchange
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.webhooks import (
    DeliveryError,
    Poster,
    origin,
    signed_headers,
    validate_secret,
)

# A DeliveryError tells the status only in its message ("... answered HTTP 503 ...").
_STATUS = re.compile(r"answered HTTP (\d{3})\b")


class WebhookProviderConfig(BaseModel):
    """Where to POST and how to sign. `url` stays out of repr and validation errors, as a
    webhook URL can carry a token; `secret` is `whsec_<base64 of 24..64 bytes>`."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: AnyHttpUrl = Field(repr=False)
    secret: SecretStr
    # The spec suggests 15-30 s for a receiver to answer; the cap matches the settings.
    timeout: float = Field(default=15.0, gt=0, le=120, description="seconds per attempt")

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, value: SecretStr) -> SecretStr:
        validate_secret(value.get_secret_value())
        return value


def message_id(change: Change) -> str:
    """The delivery's webhook-id: the same change keeps it across retries and redeliveries,
    so the far side can dedupe; suspend and restore of one command differ."""
    return make_id("whk", change.command_id, change.subscription_id, change.desired)


def payload(change: Change) -> dict[str, str]:
    """The JSON document a receiver gets for one change."""
    return {
        "type": "access.suspend" if change.desired == "suspended" else "access.restore",
        "command_id": change.command_id,
        "customer_id": change.customer_id,
        "subscription_id": change.subscription_id,
        "desired": change.desired,
        "reason": change.reason,
        "stage": change.stage,
    }


class WebhookProvider:
    """Applies a change by telling someone else to: a 2xx means it is theirs now. It cannot
    read access back, so the reconciler leaves its subscriptions alone (`observe` is None).
    `clock` stamps signatures (wall time: freshness, not a business decision) and reads
    Retry-After dates."""

    name = "webhook"

    def __init__(self, config: WebhookProviderConfig, *, clock: WallClock = utc_now) -> None:
        self.config, self.clock = config, clock
        self._poster = Poster(str(config.url), timeout=config.timeout, clock=self.clock)

    async def apply(self, change: Change) -> None:
        # Same change, same bytes: a receiver compares bodies under a repeated id.
        body = json.dumps(payload(change), ensure_ascii=False, separators=(",", ":")).encode()
        at = self.clock()
        delivery = message_id(change)
        headers = signed_headers(self.config.secret.get_secret_value(), delivery, body, at)
        try:
            await self._poster.send(body, headers)
        except DeliveryError as err:
            found = _STATUS.search(err.message)
            note(self._exchange(at, delivery, int(found.group(1)) if found else None))
            raise ProviderError(
                err.message, retryable=err.retryable, retry_after=err.retry_after
            ) from None
        except asyncio.CancelledError:
            note(self._exchange(at, delivery, None))  # cut short by the time budget
            raise
        # A 2xx is not noted: it ends the change, so no event would carry it (and `post`
        # does not say which 2xx it was).

    def _exchange(self, at: datetime, delivery: str, status: int | None) -> ProviderExchange:
        """A delivery as noted: its webhook-id, and the URL's origin only, as a webhook's path
        is often its credential (Slack's and Teams' incoming webhooks)."""
        return ProviderExchange(
            at=at,
            method="POST",
            path=origin(str(self.config.url)),
            status=status,
            request_id=delivery,
        )

    async def observe(
        self,
        customer_id: str,  # noqa: ARG002  (the Provider protocol's signature)
        subscription_id: str,  # noqa: ARG002  (the Provider protocol's signature)
    ) -> Access | None:
        """None: a webhook cannot be read back."""
        return None

    async def close(self) -> None:
        await self._poster.close()


__all__ = ["WebhookProvider", "WebhookProviderConfig", "message_id", "payload"]
