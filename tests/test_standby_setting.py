"""Standby replicas of the faust workers' tables: off by default (one worker), a count of at
least 0 when set, in each worker's own prefix."""

from typing import Any

import pytest
from pydantic import ValidationError

from billstate_collections.config import Settings as Collections
from billstate_invoicing.config import Settings as Invoicing


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [(Collections, "BILLSTATE_COLLECTIONS_"), (Invoicing, "BILLSTATE_INVOICING_")],
)
def test_standby_replicas(monkeypatch: pytest.MonkeyPatch, settings: Any, prefix: str) -> None:
    monkeypatch.setenv(f"{prefix}KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert settings().standby_replicas == 0
    monkeypatch.setenv(f"{prefix}STANDBY_REPLICAS", "1")
    assert settings().standby_replicas == 1
    monkeypatch.setenv(f"{prefix}STANDBY_REPLICAS", "-1")
    with pytest.raises(ValidationError):
        settings()
