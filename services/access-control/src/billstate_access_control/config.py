"""Settings of access-control, read once from `BILLSTATE_ACCESS_CONTROL_*`."""

from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_ACCESS_CONTROL_", frozen=True, extra="ignore"
    )

    service: str = "access-control"
