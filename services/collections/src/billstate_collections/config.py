"""Typed, frozen settings of the collections service, read once from `BILLSTATE_COLLECTIONS_*`."""

from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_COLLECTIONS_", frozen=True, extra="ignore"
    )

    service: str = "collections"
