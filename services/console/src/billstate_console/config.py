"""Settings of the console, read once from `BILLSTATE_CONSOLE_*`."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from billstate_console.domain.auth import AuthConfig, Role
from billstate_shared.settings import ServiceSettings
from billstate_shared.webhooks import validate_secret

PREFIX = "BILLSTATE_CONSOLE_"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    service: str = "console"
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/console")
    # Where the read model is: `sqlite:///<path>` or `postgresql://...`; unset, the SQLite
    # file `<data_dir>/console.sqlite3`.
    database_url: SecretStr | None = None
    database_url_file: Path | None = None  # the URL holds a password: mount it as a file
    # The group's name; the store's generation is appended, so a new store reads from the start.
    consumer_group: str = "console"
    max_records: int = Field(default=500, ge=1)
    page_size: int = Field(default=50, ge=1, le=500)
    # Static tokens for local use (mount as files: VIEWER_TOKEN_FILE, OPERATOR_TOKEN_FILE).
    viewer_token: SecretStr | None = None
    viewer_token_file: Path | None = None
    operator_token: SecretStr | None = None
    operator_token_file: Path | None = None
    # An OpenID Connect proxy in front: its addresses (IPs or CIDRs, as a JSON list), the
    # headers it sets, and the groups that make a viewer or an operator.
    trusted_proxies: tuple[str, ...] = ()
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    # The proxy's username header: events name an operator by it, never by an e-mail address.
    username_header: str = "X-Forwarded-Preferred-Username"
    # Signs browser sessions and CSRF tokens; unset, a random one per process (a restart
    # signs everyone out). Several replicas behind one address need the same one.
    session_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_hex(32)))
    session_secret_file: Path | None = None
    session_hours: float = Field(default=8, gt=0, le=24 * 7)
    viewer_groups: tuple[str, ...] = ("billstate-viewers",)
    operator_groups: tuple[str, ...] = ("billstate-operators",)

    # The helpdesk's webhook (POST /hooks/helpdesk): its Standard Webhooks secret, `whsec_...`
    # (mount as a file: HELPDESK_SECRET_FILE); unset, the route answers 404.
    helpdesk_secret: SecretStr | None = None
    helpdesk_secret_file: Path | None = None
    # Zendesk signs its webhooks its own way (POST /hooks/zendesk): the webhook's signing
    # secret as Zendesk shows it (mount as a file: ZENDESK_SECRET_FILE); unset, 404.
    zendesk_secret: SecretStr | None = Field(default=None, min_length=8)
    zendesk_secret_file: Path | None = None

    @field_validator("helpdesk_secret")
    @classmethod
    def _helpdesk_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            validate_secret(value.get_secret_value())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def store_path(self) -> Path:
        return self.data_dir / "console.sqlite3"

    @property
    def store_url(self) -> str:
        """The store's target: DATABASE_URL, else `sqlite:///<data_dir>/console.sqlite3`."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.store_path}"

    @property
    def auth(self) -> AuthConfig:
        tokens: list[tuple[str, Role]] = []
        if self.viewer_token is not None:
            tokens.append((self.viewer_token.get_secret_value(), "viewer"))
        if self.operator_token is not None:
            tokens.append((self.operator_token.get_secret_value(), "operator"))
        return AuthConfig(
            tokens=tuple(tokens),
            proxies=tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies),
            user_header=self.user_header,
            groups_header=self.groups_header,
            username_header=self.username_header,
            secret=self.session_secret.get_secret_value().encode(),
            session_ttl=timedelta(hours=self.session_hours),
            viewer_groups=frozenset(self.viewer_groups),
            operator_groups=frozenset(self.operator_groups),
        )
