"""The channels the settings choose: one for customer notices, one for partner and staff."""

from __future__ import annotations

from billstate_notifications.channels.base import Channel
from billstate_notifications.channels.email import EmailChannel, EmailConfig
from billstate_notifications.channels.outbox import OutboxChannel
from billstate_notifications.channels.webhook import WebhookChannel, WebhookChannelConfig
from billstate_notifications.config import ChannelName, Settings


def build_channels(settings: Settings) -> tuple[Channel, Channel]:
    """(customer channel, partner channel); the same object when both name the same one, so
    one SMTP configuration serves both. A malformed setting is a start-up error."""
    built: dict[ChannelName, Channel] = {}

    def get(name: ChannelName) -> Channel:
        if name not in built:
            built[name] = _build(name, settings)
        return built[name]

    return get(settings.channel), get(settings.partner_channel or settings.channel)


def _build(name: ChannelName, s: Settings) -> Channel:
    if name == "email":
        return EmailChannel(
            EmailConfig(
                host=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password,
                security=s.smtp_security,
                from_address=s.smtp_from_address,
                from_name=s.smtp_from_name or None,
                reply_to=s.smtp_reply_to,
                ca_file=s.smtp_ca_file,
                timeout=s.smtp_timeout,
            )
        )
    if name == "webhook":
        assert s.webhook_url is not None  # the settings check it
        return WebhookChannel(
            WebhookChannelConfig(
                url=s.webhook_url.get_secret_value(),
                secret=s.webhook_secret,
                format=s.webhook_format,
                timeout=s.webhook_timeout,
            )
        )
    return OutboxChannel(s.outbox)
