"""How a client authenticates to Kafka: PLAINTEXT locally, SASL/SCRAM over TLS on a cluster."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from billstate_shared.errors import ConfigRefused

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# The unprefixed variables every service and the CLI fall back to (like
# KAFKA_BOOTSTRAP_SERVERS) when no prefixed setting is given.
ENV = {
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_ca_file": "KAFKA_SSL_CA_FILE",
}


class KafkaAuth(BaseModel):
    """One client's security settings. Strimzi's KafkaUsers are SCRAM-SHA-512 (the default
    mechanism); the password is the `password` key of the Secret Strimzi writes per user, and
    the CA is the cluster CA (`<cluster>-cluster-ca-cert`, key `ca.crt`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr | None = None
    # A PEM bundle to trust instead of the system's (a private cluster CA).
    ssl_ca_file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.sasl and (not self.sasl_username or self.sasl_password is None):
            raise ConfigRefused(
                "sasl_username",
                f"security protocol {self.security_protocol} needs a SASL username and password",
            )
        if self.ssl_ca_file is not None and not self.ssl_ca_file.is_file():
            raise ConfigRefused(
                "ssl_ca_file", f"the Kafka CA file {self.ssl_ca_file} does not exist"
            )
        return self

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (certificate and host name checked)."""
        if not self.tls:
            return None
        cafile = str(self.ssl_ca_file) if self.ssl_ca_file is not None else None
        context = ssl.create_default_context(cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's consumer, producer and admin client."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            assert self.sasl_password is not None  # checked at construction
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password.get_secret_value(),
            }
        return options


def client_options(auth: KafkaAuth | None) -> dict[str, Any]:
    """aiokafka keyword arguments for `auth`; none (plain defaults) without it."""
    return {} if auth is None else auth.client_options()
