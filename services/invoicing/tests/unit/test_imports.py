"""The invoicing package imports cleanly and reads its settings."""

import importlib

import pytest


def test_package_imports() -> None:
    for name in (
        "billstate_invoicing",
        "billstate_invoicing.domain",
        "billstate_invoicing.config",
        "billstate_invoicing.handlers",
        "billstate_invoicing.entrypoints.main",
    ):
        importlib.import_module(name)


def test_settings_use_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from billstate_invoicing.config import Settings

    monkeypatch.setenv("BILLSTATE_INVOICING_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:1"
