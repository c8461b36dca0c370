"""Which exchanges an event keeps: at most MAX_EXCHANGES, a drift's read always among them."""

from __future__ import annotations

from datetime import UTC, datetime

from billstate_access_control.domain import AccessEvents, Action, evidence
from billstate_shared.contracts import ProviderExchange
from billstate_shared.contracts.events import MAX_EXCHANGES

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)


def calls(method: str, n: int) -> list[ProviderExchange]:
    return [
        ProviderExchange(at=AT, method=method, path="/v1/x", status=500, request_id=f"{method}{i}")
        for i in range(n)
    ]


def ids(kept: list[ProviderExchange]) -> list[str | None]:
    return [x.request_id for x in kept]


def test_a_failure_keeps_its_last_exchanges() -> None:
    assert ids(evidence(calls("PATCH", 3))) == ["PATCH0", "PATCH1", "PATCH2"]
    kept = evidence(calls("PATCH", MAX_EXCHANGES + 3))
    assert ids(kept) == [f"PATCH{i}" for i in range(3, MAX_EXCHANGES + 3)]


def test_a_drift_keeps_its_read_and_the_last_of_the_repair() -> None:
    kept = evidence(calls("GET", 1), calls("PATCH", MAX_EXCHANGES + 5))
    assert len(kept) == MAX_EXCHANGES
    assert ids(kept)[0] == "GET0"
    assert ids(kept)[1:] == [f"PATCH{i}" for i in range(6, MAX_EXCHANGES + 5)]
    assert ids(evidence(calls("GET", 2), calls("PATCH", 1))) == ["GET0", "GET1", "PATCH0"]


def test_events_cut_what_they_are_given_and_keep_their_ids() -> None:
    events = AccessEvents(customer_id="contoso", provider="partner_center", at=AT)
    action = Action("sub-a", "suspended", "c1")
    failed = events.failed(action, attempts=9, error="HTTP 500", exchanges=calls("GET", 12))
    assert len(failed.data.exchanges) == MAX_EXCHANGES
    assert failed.event_id == events.failed(action, attempts=9, error="HTTP 500").event_id
    assert events.failed(action, attempts=1, error="x").data.exchanges == []
