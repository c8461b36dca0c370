"""The access-control package imports cleanly and reads its settings."""

import importlib

import pytest


def test_package_imports() -> None:
    for name in (
        "billstate_access_control",
        "billstate_access_control.domain",
        "billstate_access_control.config",
        "billstate_access_control.handlers",
        "billstate_access_control.entrypoints.main",
    ):
        importlib.import_module(name)


def test_settings_use_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from billstate_access_control.config import Settings

    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:1"
