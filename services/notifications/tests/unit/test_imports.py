"""The notifications package imports cleanly and reads its settings."""

import importlib

import pytest


def test_package_imports() -> None:
    for name in (
        "billstate_notifications",
        "billstate_notifications.domain",
        "billstate_notifications.config",
        "billstate_notifications.handlers",
        "billstate_notifications.entrypoints.main",
        "billstate_notifications.entrypoints.service",
    ):
        importlib.import_module(name)


def test_settings_use_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from billstate_notifications.config import Settings

    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:1"
