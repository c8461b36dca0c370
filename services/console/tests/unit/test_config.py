"""Settings read once from BILLSTATE_CONSOLE_*; a bad proxy address stops the start-up."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from billstate_console.config import Settings


def test_settings_use_the_console_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "operator-token"
    token.write_text("from-a-file\n")
    monkeypatch.setenv("BILLSTATE_CONSOLE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("BILLSTATE_CONSOLE_VIEWER_TOKEN", "v")
    monkeypatch.setenv("BILLSTATE_CONSOLE_OPERATOR_TOKEN_FILE", str(token))
    monkeypatch.setenv("BILLSTATE_CONSOLE_TRUSTED_PROXIES", '["10.0.0.0/8", "::1"]')
    monkeypatch.setenv("BILLSTATE_CONSOLE_USER_HEADER", "X-Auth-Request-User")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1"
    auth = settings.auth
    assert auth.tokens == (("v", "viewer"), ("from-a-file", "operator"))
    assert auth.proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1"))
    assert auth.user_header == "X-Auth-Request-User"
    assert settings.store_path.name == "console.sqlite3"


def test_a_bad_proxy_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(trusted_proxies=("proxy.example",))


def test_no_token_and_no_proxy_lets_nobody_in() -> None:
    auth = Settings(viewer_token=None, operator_token=None).auth
    assert (auth.tokens, auth.proxies) == ((), ())


def test_the_database_url_and_session_secret_come_from_mounted_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, session = tmp_path / "url", tmp_path / "session"
    url.write_text("postgresql://console:pw@db/console\n")
    session.write_text("s" * 64)
    monkeypatch.setenv("BILLSTATE_CONSOLE_DATABASE_URL_FILE", str(url))
    monkeypatch.setenv("BILLSTATE_CONSOLE_SESSION_SECRET_FILE", str(session))
    settings = Settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://console:pw@db/console"
    assert settings.session_secret.get_secret_value() == "s" * 64
