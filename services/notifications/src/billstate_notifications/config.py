"""Settings of notifications, read once from `BILLSTATE_NOTIFICATIONS_*`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from billstate_notifications.domain.locales import SUPPORTED_LOCALES
from billstate_shared.settings import ServiceSettings

PREFIX = "BILLSTATE_NOTIFICATIONS_"
ChannelName = Literal["outbox", "email", "webhook"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    service: str = "notifications"
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/notifications")
    # Where the file outbox channel writes `<notice_id>.json`; default `<data_dir>/outbox`.
    outbox_dir: Path | None = None
    # The partner's locale: staff notices use it, and so does a customer without one.
    default_locale: str = "en"
    # Delivery attempts per notice (the first included) and the first backoff; it doubles.
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_delay: float = Field(default=0.5, ge=0.0, le=30.0)
    consumer_group: str = "notifications"
    # Records per poll. Kept small: a batch of notices whose channel is down costs
    # attempts x backoff each, and the whole batch must finish within max.poll.interval.
    max_records: int = Field(default=50, ge=1)

    # How customer notices leave, and how partner and staff notices do (default: the same).
    channel: ChannelName = "outbox"
    partner_channel: ChannelName | None = None

    # E-mail (channel email): SMTP submission with STARTTLS and AUTH.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    smtp_from_address: str = ""
    smtp_from_name: str = ""
    smtp_reply_to: str | None = None
    # A private CA to trust (PEM), for a relay with an internal certificate.
    smtp_ca_file: Path | None = None
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)

    # Webhook (channel webhook): generic JSON signed with Standard Webhooks, or a Teams or
    # Slack incoming webhook (their URL is the secret; they take no signature).
    # A Teams or Slack URL carries its key: kept as a secret, never logged.
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    webhook_format: Literal["generic", "teams", "slack"] = "generic"
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("default_locale")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @model_validator(mode="after")
    def _channels_complete(self) -> Self:
        """A channel without what it needs stops the start-up, naming the variables."""
        chosen = {self.channel, self.partner_channel or self.channel}
        missing: list[str] = []
        if "email" in chosen:
            if not self.smtp_host:
                missing.append("SMTP_HOST")
            if not self.smtp_from_address:
                missing.append("SMTP_FROM_ADDRESS")
            if self.smtp_username and self.smtp_password is None:
                missing.append("SMTP_PASSWORD (or _FILE)")
        if "webhook" in chosen:
            if self.webhook_url is None:
                missing.append("WEBHOOK_URL (or _FILE)")
            if self.webhook_format == "generic" and self.webhook_secret is None:
                missing.append("WEBHOOK_SECRET (or _FILE)")
        if missing:
            raise ValueError("the channels need " + ", ".join(PREFIX + m for m in missing))
        return self

    @property
    def outbox(self) -> Path:
        return self.outbox_dir if self.outbox_dir is not None else self.data_dir / "outbox"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "notifications.sqlite3"
