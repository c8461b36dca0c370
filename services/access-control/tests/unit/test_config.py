"""Settings: a provider that lacks what it needs is refused at start, naming the variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from billstate_access_control.config import Settings


def test_the_builtin_provider_needs_nothing() -> None:
    assert Settings().provider == "builtin"


def test_ledger_is_the_builtin_providers_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_PROVIDER", "ledger")
    assert Settings().provider == "builtin"


def test_partner_center_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_PROVIDER", "partner_center")
    with pytest.raises(ValidationError) as caught:
        Settings()
    for name in ("TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET (or _FILE)", "MAPPING_FILE"):
        assert f"BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_{name}" in str(caught.value)


def test_an_unknown_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_PROVIDER", "carrier_pigeon")
    with pytest.raises(ValidationError, match="builtin"):
        Settings()


def test_the_webhook_secret_comes_from_a_mounted_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "webhook-secret"
    secret.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_PROVIDER", "webhook")
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_WEBHOOK_URL", "http://127.0.0.1:9/access")
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_WEBHOOK_SECRET_FILE", str(secret))
    s = Settings()
    assert s.webhook_secret is not None
    assert s.webhook_secret.get_secret_value() == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert "MfKQ9r8" not in repr(s)


def test_the_budget_keeps_a_batch_within_the_poll_interval() -> None:
    """Two budgets per record (one waiting for the lock, one its own) within 80% of the
    consumer's 300 s max.poll.interval.ms."""
    assert Settings().command_budget == 30.0
    assert Settings().max_records == 4
    assert Settings(command_budget=120).max_records == 1
    assert Settings(command_budget=1.5).max_records == 50
    for budget in (30.0, 120.0, 1.5):
        settings = Settings(command_budget=budget)
        assert settings.max_records * 2 * budget <= 0.8 * 300
    with pytest.raises(ValidationError, match="command_budget"):
        Settings(command_budget=121)


def test_the_http_token_comes_from_a_file_or_the_shared_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().http_token is None
    shared = tmp_path / "shared-token"
    shared.write_text("shared-token-value\n", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_HTTP_TOKEN_FILE", str(shared))
    token = Settings().http_token
    assert token is not None
    assert token.get_secret_value() == "shared-token-value"
    own = tmp_path / "own-token"
    own.write_text("own-token-value", encoding="utf-8")
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_HTTP_TOKEN_FILE", str(own))
    token = Settings().http_token
    assert token is not None
    assert token.get_secret_value() == "own-token-value"  # the service's own wins
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_HTTP_TOKEN", "also-set")
    with pytest.raises(ValidationError, match="http_token and http_token_file are both set"):
        Settings()
