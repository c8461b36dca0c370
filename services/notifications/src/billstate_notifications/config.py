"""Settings of notifications, read once from `BILLSTATE_NOTIFICATIONS_*`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from billstate_notifications.domain.locales import SUPPORTED_LOCALES
from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_NOTIFICATIONS_", frozen=True, extra="ignore"
    )

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

    @field_validator("default_locale")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @property
    def outbox(self) -> Path:
        return self.outbox_dir if self.outbox_dir is not None else self.data_dir / "outbox"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "notifications.sqlite3"
