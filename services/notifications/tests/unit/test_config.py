"""Settings: the service prefix, defaults, and a default locale that must be supported."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from billstate_notifications.config import Settings


def test_defaults() -> None:
    s = Settings()
    assert (s.service, s.consumer_group, s.http_port) == ("notifications", "notifications", 8080)
    assert s.default_locale == "en"
    assert (s.retry_attempts, s.retry_base_delay) == (3, 0.5)
    assert s.outbox == s.data_dir / "outbox"
    assert s.store_path.parent == s.data_dir


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_DEFAULT_LOCALE", "zh-TW")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_OUTBOX_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_RETRY_ATTEMPTS", "5")
    s = Settings()
    assert (s.default_locale, s.outbox, s.retry_attempts) == ("zh-TW", tmp_path / "out", 5)


def test_unsupported_default_locale_is_refused_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(default_locale="fr")


def test_a_channel_without_its_settings_is_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_CHANNEL", "email")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_PARTNER_CHANNEL", "webhook")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    for name in (
        "SMTP_HOST",
        "SMTP_FROM_ADDRESS",
        "WEBHOOK_URL (or _FILE)",
        "WEBHOOK_SECRET (or _FILE)",
    ):
        assert f"BILLSTATE_NOTIFICATIONS_{name}" in message


def test_the_smtp_password_comes_from_a_mounted_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("hunter2-from-file\n", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_CHANNEL", "email")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_SMTP_FROM_ADDRESS", "billing@partner.example")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_SMTP_USERNAME", "billstate")
    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_SMTP_PASSWORD_FILE", str(secret))
    s = Settings()
    assert s.smtp_password is not None
    assert s.smtp_password.get_secret_value() == "hunter2-from-file"
    assert "hunter2" not in repr(s)
