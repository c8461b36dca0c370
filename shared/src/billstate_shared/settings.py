"""Typed, frozen settings shared by every service; each service subclasses with its env prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from billstate_shared.errors import ConfigRefused
from billstate_shared.kafka_auth import ENV as KAFKA_AUTH_ENV
from billstate_shared.kafka_auth import KafkaAuth, SaslMechanism, SecurityProtocol

DEFAULT_BOOTSTRAP = "127.0.0.1:39092"
# The bearer token of the non-probe HTTP routes, shared by every service unless a service's
# own `<PREFIX>HTTP_TOKEN` / `<PREFIX>HTTP_TOKEN_FILE` is set.
SHARED_HTTP_TOKEN = "BILLSTATE_HTTP_TOKEN"  # noqa: S105  (a variable's name)


class ServiceSettings(BaseSettings):
    """What every service reads once at start-up and passes down.

    `<PREFIX>KAFKA_BOOTSTRAP_SERVERS` wins; the plain `KAFKA_BOOTSTRAP_SERVERS` that the tests
    and `make` export is the fallback, so one variable points every service at a cluster. The
    Kafka security settings (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CA_FILE`)
    fall back the same way, and so does the HTTP token (`BILLSTATE_HTTP_TOKEN` or
    `BILLSTATE_HTTP_TOKEN_FILE`, one token for every service).
    """

    model_config = SettingsConfigDict(env_prefix="BILLSTATE_", frozen=True, extra="ignore")

    service: str = "billstate"
    kafka_bootstrap_servers: str = DEFAULT_BOOTSTRAP
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_file: Path | None = None
    policy_file: Path = Path("policy.yaml")
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: JSON unless stderr is a TTY; or json / console
    http_host: str = "127.0.0.1"
    http_port: int = 0
    # Bearer token of every HTTP route but /healthz, /readyz and /metrics; without one those
    # routes are disabled (403). Mount it as a file: `<PREFIX>HTTP_TOKEN_FILE`.
    http_token: SecretStr | None = None
    http_token_file: Path | None = None
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
                raise ConfigRefused(key, f"{name} and {key} are both set; set one")
            try:
                text = Path(str(value)).read_text(encoding="utf-8")
            except OSError as err:
                raise ConfigRefused(key, f"cannot read the secret file ({err.strerror})") from None
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
        plain = {"kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"}
        plain |= {f"kafka_{field}": name for field, name in KAFKA_AUTH_ENV.items()}
        plain["kafka_sasl_password_file"] = "KAFKA_SASL_PASSWORD_FILE"  # noqa: S105  (a variable's name)
        for field, name in plain.items():
            if value := os.environ.get(name):
                fallback[field] = value
        fallback |= _shared_token(settings_cls, init_settings)
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
            InitSettingsSource(settings_cls, init_kwargs=fallback),
        )

    @model_validator(mode="after")
    def _kafka_auth_complete(self) -> Self:
        """SASL without credentials, or a CA file that is not there, stops the start-up."""
        self.kafka_auth  # noqa: B018  (constructing it is the check)
        return self

    @property
    def kafka_auth(self) -> KafkaAuth:
        """How this service's Kafka clients authenticate (checked when the service starts)."""
        return KafkaAuth(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_ca_file=self.kafka_ssl_ca_file,
        )


def _shared_token(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
) -> dict[str, str]:
    """`BILLSTATE_HTTP_TOKEN` or `..._FILE`, unless the service sets a token of its own (its
    prefixed variables, or the values it was built with): never two tokens at once."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    given = getattr(init_settings, "init_kwargs", {})
    own = ("http_token", "http_token_file")
    if any(given.get(name) not in (None, "") for name in own) or any(
        os.environ.get(prefix + name.upper()) for name in own
    ):
        return {}
    return {
        name: value
        for name, value in (
            ("http_token", os.environ.get(SHARED_HTTP_TOKEN)),
            ("http_token_file", os.environ.get(SHARED_HTTP_TOKEN + "_FILE")),
        )
        if value
    }
