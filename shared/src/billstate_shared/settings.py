"""Typed, frozen settings shared by every service; each service subclasses with its env prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_BOOTSTRAP = "127.0.0.1:39092"


class ServiceSettings(BaseSettings):
    """What every service reads once at start-up and passes down.

    `<PREFIX>KAFKA_BOOTSTRAP_SERVERS` wins; the plain `KAFKA_BOOTSTRAP_SERVERS` that the tests
    and `make` export is the fallback, so one variable points every service at a cluster.
    """

    model_config = SettingsConfigDict(env_prefix="BILLSTATE_", frozen=True, extra="ignore")

    service: str = "billstate"
    kafka_bootstrap_servers: str = DEFAULT_BOOTSTRAP
    policy_file: Path = Path("policy.yaml")
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: JSON unless stderr is a TTY; or json / console
    http_host: str = "127.0.0.1"
    http_port: int = 0
    data_dir: Path = Path(".cache/data")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """`<secret>_file` names a mounted file holding the secret `<secret>` (a Kubernetes
        Secret volume): its content, one trailing newline dropped, becomes the value. A file
        that cannot be read stops the start-up with the setting's name, never the secret."""
        if not isinstance(data, dict):
            return data
        loaded = dict(data)
        for key, value in data.items():
            name = key[: -len("_file")] if key.endswith("_file") else ""
            if not name or name not in cls.model_fields or value in (None, ""):
                continue
            if loaded.get(name) not in (None, ""):
                raise ValueError(f"{name} and {key} are both set; set one")
            try:
                text = Path(str(value)).read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(f"{key}: cannot read the secret file ({err.strerror})") from None
            loaded[name] = text.removesuffix("\n").removesuffix("\r")
        return loaded

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        fallback: dict[str, Any] = {}
        if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            fallback["kafka_bootstrap_servers"] = bootstrap
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
            InitSettingsSource(settings_cls, init_kwargs=fallback),
        )
