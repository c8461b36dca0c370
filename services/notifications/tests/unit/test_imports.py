"""The notifications package imports cleanly and reads its settings."""

import importlib


def test_package_imports() -> None:
    for name in (
        "billstate_notifications",
        "billstate_notifications.domain",
        "billstate_notifications.config",
        "billstate_notifications.handlers",
        "billstate_notifications.entrypoints.main",
    ):
        importlib.import_module(name)


def test_settings_use_service_prefix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from billstate_notifications.config import Settings

    monkeypatch.setenv("BILLSTATE_NOTIFICATIONS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:1"
