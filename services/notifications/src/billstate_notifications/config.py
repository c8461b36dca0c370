"""Settings of notifications, read once from `BILLSTATE_NOTIFICATIONS_*`."""

from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_NOTIFICATIONS_", frozen=True, extra="ignore"
    )

    service: str = "notifications"
