"""Settings of access-control, read once from `BILLSTATE_ACCESS_CONTROL_*`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_ACCESS_CONTROL_", frozen=True, extra="ignore"
    )

    service: str = "access-control"
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/access-control")
    consumer_group: str = "access-control"
    provider: str = "ledger"
    # Per subscription: the first call plus retries; delays double from the base delay.
    retry_attempts: int = Field(default=5, ge=1)
    retry_base_delay: float = Field(default=0.2, ge=0)
    retry_max_delay: float = Field(default=30.0, ge=0)
    # Seconds between reconcile passes (desired vs what the provider reports); 0: only on
    # POST /reconcile. A pass reads every subscription billstate has touched, a page at a time.
    reconcile_interval: float = Field(default=300.0, ge=0)
    reconcile_page: int = Field(default=500, ge=1)
