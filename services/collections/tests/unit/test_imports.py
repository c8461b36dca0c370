"""The collections package imports cleanly and reads its settings."""

import importlib

import pytest


def test_package_imports() -> None:
    for name in (
        "billstate_collections",
        "billstate_collections.domain",
        "billstate_collections.config",
        "billstate_collections.handlers",
        "billstate_collections.entrypoints.main",
    ):
        importlib.import_module(name)


def test_settings_use_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from billstate_collections.config import Settings

    monkeypatch.setenv("BILLSTATE_COLLECTIONS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:1"
