"""Secrets in settings: from the environment or a mounted file, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from billstate_shared.settings import ServiceSettings


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSTATE_TEST_", frozen=True, extra="ignore")

    api_secret: SecretStr | None = None
    api_secret_file: Path | None = None


def test_a_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_TEST_API_SECRET", "s3cr3t-env")
    settings = _Settings()
    assert settings.api_secret is not None
    assert settings.api_secret.get_secret_value() == "s3cr3t-env"
    assert "s3cr3t-env" not in repr(settings)
    assert "s3cr3t-env" not in str(settings.model_dump())


def test_a_secret_comes_from_a_mounted_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "api-secret"
    path.write_text("s3cr3t-file\n", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_TEST_API_SECRET_FILE", str(path))
    settings = _Settings()
    assert settings.api_secret is not None
    assert settings.api_secret.get_secret_value() == "s3cr3t-file"  # newline dropped


def test_an_unreadable_secret_file_stops_the_start_with_the_setting_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILLSTATE_TEST_API_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="api_secret_file: cannot read the secret file"):
        _Settings()


def test_a_secret_set_twice_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "api-secret"
    path.write_text("one", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_TEST_API_SECRET", "two")
    monkeypatch.setenv("BILLSTATE_TEST_API_SECRET_FILE", str(path))
    with pytest.raises(ValidationError, match="both set"):
        _Settings()


def test_the_kafka_sasl_password_comes_from_a_mounted_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On Kubernetes: the `password` key of the Secret Strimzi writes for the KafkaUser."""
    secret = tmp_path / "password"
    secret.write_text("scram-pw\n")
    monkeypatch.setenv("BILLSTATE_TEST_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("BILLSTATE_TEST_KAFKA_SASL_USERNAME", "invoicing")
    monkeypatch.setenv("BILLSTATE_TEST_KAFKA_SASL_PASSWORD_FILE", str(secret))
    options = _Settings().kafka_auth.client_options()
    assert options["sasl_plain_username"] == "invoicing"
    assert options["sasl_plain_password"] == "scram-pw"
