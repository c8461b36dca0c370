"""Typed, frozen settings of the invoicing service, read once from `BILLSTATE_INVOICING_*`."""

from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_INVOICING_", frozen=True, extra="ignore"
    )

    service: str = "invoicing"
