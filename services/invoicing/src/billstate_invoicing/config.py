"""Settings of invoicing, read once from `BILLSTATE_INVOICING_*`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_INVOICING_", frozen=True, extra="ignore"
    )

    service: str = "invoicing"
    consumer_group: str = "invoicing"  # also the faust app id, which prefixes its changelog topics
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/invoicing")
    replication_factor: int = 1
    commit_interval: float = 0.5  # seconds between offset commits (outputs are flushed first)
    # Seconds a clock tick's occurred_at may be ahead of its record's Kafka time (which the
    # broker stamps); a tick further ahead is dead-lettered and changes nothing.
    clock_skew: float = Field(default=600.0, ge=0)
    # faust standby replicas of the table: with 2+ workers each keeps a warm copy of other
    # workers' partitions, so a partition that moves (a pod restarted, even on an empty disk)
    # resumes from that copy instead of reading the whole changelog. 0 for a single worker:
    # there is no other worker to hold a copy, and a standby costs a consumer and disk.
    standby_replicas: int = Field(default=0, ge=0)
