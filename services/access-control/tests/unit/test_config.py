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
