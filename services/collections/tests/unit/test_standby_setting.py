"""Standby replicas: off by default (one worker), a count of at least 0 when set."""

import pytest
from pydantic import ValidationError

from billstate_collections.config import Settings


def test_standby_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSTATE_COLLECTIONS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert Settings().standby_replicas == 0
    monkeypatch.setenv("BILLSTATE_COLLECTIONS_STANDBY_REPLICAS", "1")
    assert Settings().standby_replicas == 1
    monkeypatch.setenv("BILLSTATE_COLLECTIONS_STANDBY_REPLICAS", "-1")
    with pytest.raises(ValidationError):
        Settings()
