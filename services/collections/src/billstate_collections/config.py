"""Settings of collections, read once from `BILLSTATE_COLLECTIONS_*`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTATE_COLLECTIONS_", frozen=True, extra="ignore"
    )

    service: str = "collections"
    consumer_group: str = (
        "collections"  # also the faust app id, which prefixes its changelog topics
    )
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/collections")
    replication_factor: int = 1
    commit_interval: float = 0.5  # seconds between offset commits (outputs are flushed first)
    # Seconds a produce batch may wait to fill: each event writes its changelog value, its
    # state record and any decisions, and one request per batch costs less than one per record.
    producer_linger: float = 0.005
    cache_size: int = 50_000  # live books kept parsed in memory; the table holds them all
    # faust standby replicas of the table: with 2+ workers each keeps a warm copy of other
    # workers' partitions, so a partition that moves (a pod restarted, even on an empty disk)
    # resumes from that copy instead of reading the whole changelog. 0 for a single worker:
    # there is no other worker to hold a copy, and a standby costs a consumer and disk.
    standby_replicas: int = Field(default=0, ge=0)
