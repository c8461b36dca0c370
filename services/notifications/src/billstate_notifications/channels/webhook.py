"""The webhook channel: POSTs a rendered notice as generic signed JSON, Teams or Slack."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from billstate_notifications.channels.base import Audience, ChannelError, document
from billstate_notifications.domain import Rendered
from billstate_shared.domain.ids import make_id
from billstate_shared.runtime.wallclock import WallClock, utc_now
from billstate_shared.webhooks import (
    CONTENT_TYPE,
    DeliveryError,
    Poster,
    is_message_id,
    signed_headers,
    validate_secret,
)

Format = Literal["generic", "teams", "slack"]

# Teams connectors have answered throttling with a 2xx whose text says so.
_TEAMS_THROTTLED = "HTTP error 429"


class WebhookChannelConfig(BaseModel):
    """Where and how notices are posted.

    `generic` is a Standard Webhooks endpoint and must have a `secret`; `teams` and `slack`
    incoming webhooks are unsigned (the URL is the credential), a secret there only adds
    the signature headers. `url` stays out of repr and validation errors for that reason.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: AnyHttpUrl = Field(repr=False)
    secret: SecretStr | None = None
    format: Format = "generic"
    timeout: float = Field(default=15.0, gt=0, le=120, description="seconds per attempt")

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            validate_secret(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _generic_is_signed(self) -> WebhookChannelConfig:
        if self.format == "generic" and self.secret is None:
            raise ValueError("a generic webhook needs a secret (whsec_...) to sign deliveries")
        return self


def message_id(notice_id: str) -> str:
    """The webhook-id: the notice id itself where it is a plain token (the spec forbids "."),
    else a stable hash of it; either way a redelivered notice keeps its id."""
    return notice_id if is_message_id(notice_id) else make_id("ntc", notice_id)


def slack_payload(rendered: Rendered) -> dict[str, Any]:
    """Slack's simplest message; &, < and > are control characters in its mrkdwn."""
    text = f"{rendered.subject}\n\n{rendered.text}".rstrip("\n")
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"text": escaped}


def teams_payload(rendered: Rendered) -> dict[str, Any]:
    """An Adaptive Card in the message envelope Teams incoming webhooks and Workflows take:
    the subject as a heading, then one text block per paragraph."""
    paragraphs = [p.strip("\n") for p in rendered.text.split("\n\n") if p.strip()]
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": rendered.subject,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    body.extend({"type": "TextBlock", "text": p, "wrap": True} for p in paragraphs)
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": body,
                },
            }
        ],
    }


class WebhookChannel:
    """Delivers notices to one webhook. The recipient's address is never sent: whoever owns
    the endpoint decides who reads it. `clock` stamps signatures and reads Retry-After."""

    name = "webhook"

    def __init__(self, config: WebhookChannelConfig, *, clock: WallClock | None = None) -> None:
        self.config = config
        self.clock: WallClock = clock or utc_now
        self._poster = Poster(str(config.url), timeout=config.timeout, clock=self.clock)

    def body(self, notice_id: str, audience: Audience, rendered: Rendered) -> bytes:
        """The exact bytes posted for a notice (the same notice gives the same bytes)."""
        if self.config.format == "slack":
            payload = slack_payload(rendered)
        elif self.config.format == "teams":
            payload = teams_payload(rendered)
        else:  # generic: the whole notice, the same document the outbox writes
            payload = document(notice_id, audience, rendered)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def deliver(
        self,
        notice_id: str,
        audience: Audience,
        address: str | None,  # noqa: ARG002  (the Channel signature; no address is ever sent)
        rendered: Rendered,
    ) -> None:
        body = self.body(notice_id, audience, rendered)
        msg_id = message_id(notice_id)
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers = signed_headers(secret, msg_id, body, self.clock())
        else:
            headers = {"content-type": CONTENT_TYPE, "webhook-id": msg_id}
        try:
            answer = await self._poster.send(body, headers)
        except DeliveryError as err:
            raise ChannelError(
                err.message, retryable=err.retryable, retry_after=err.retry_after
            ) from None
        if self.config.format == "teams" and _TEAMS_THROTTLED in answer:
            raise ChannelError(
                "teams webhook throttled the delivery (429 in its answer)", retryable=True
            )

    async def close(self) -> None:
        """Release the HTTP session (the service calls it on the way out)."""
        await self._poster.close()


__all__ = [
    "WebhookChannel",
    "WebhookChannelConfig",
    "message_id",
    "slack_payload",
    "teams_payload",
]
