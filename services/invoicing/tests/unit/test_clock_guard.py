"""The clock guard: a tick more than the skew ahead of its record's Kafka time is refused and
changes nothing; within the skew (the boundary included) it ages as before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from billstate_invoicing.config import Settings
from billstate_invoicing.domain.clock import DEFAULT_SKEW, check_tick, span, tick_refusal
from billstate_invoicing.handlers import InvoicingHandler
from billstate_shared.contracts import decode
from billstate_shared.errors import Refused
from billstate_shared.policy_file import load_policy
from billstate_shared.runtime.metrics import Metrics

POLICY = load_policy(Path(__file__).resolve().parents[4] / "policies" / "standard.yaml")
SENT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # when the broker took the record


@dataclass(frozen=True)
class Rec:
    """A consumed record as faust hands it over: timestamp in seconds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None


def envelope(event_type: str, customer: str, occurred_at: datetime, **data: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{event_type}-{customer}-{occurred_at.isoformat()}",
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": occurred_at.isoformat(),
            "customer_id": customer,
            "data": data,
        }
    )


def tick(at: datetime, record_time: datetime | None = SENT, partition: int = 0) -> Rec:
    value = envelope("clock.tick", "*", at)
    stamp = None if record_time is None else record_time.timestamp()
    return Rec("billing.clock.v1", partition, 7, b"*", value, stamp)


def handler(skew: timedelta = DEFAULT_SKEW) -> tuple[InvoicingHandler, dict[bytes, bytes]]:
    table: dict[bytes, bytes] = {}
    made = InvoicingHandler(table=table, policy=POLICY, partition_of=lambda _k: 0, clock_skew=skew)
    issued = envelope(
        "invoice.issued",
        "contoso",
        datetime(2026, 11, 1, 9, tzinfo=UTC),
        invoice_id="INV-1",
        currency="USD",
        amount="120.00",
        issued_on="2026-11-01",
        due_on="2026-11-30",
        subscription_ids=["sub-1"],
    )
    record = Rec("billing.invoices.v1", 0, 1, b"contoso", issued, SENT.timestamp())
    made.handle(record, decode(issued))
    return made, table


def handle(made: InvoicingHandler, record: Rec) -> list[dict[str, object]]:
    assert record.value is not None
    return [orjson.loads(p.value or b"") for p in made.handle(record, decode(record.value))]


def test_a_tick_far_ahead_is_refused_with_its_distance() -> None:
    refused = tick_refusal(datetime(2999, 1, 1, tzinfo=UTC), SENT, DEFAULT_SKEW)
    assert refused is not None
    assert refused.field == "occurred_at"
    assert refused.event_type == "clock.tick"
    days = (date(2999, 1, 1) - date(2026, 12, 3)).days - 1  # 10:00 on the 3rd: not a whole day
    assert refused.reason.startswith(
        f"clock tick 2999-01-01T00:00:00Z is {days:,} days ahead of its record's time"
        " 2026-12-03T10:00:00Z; at most 10 minutes is allowed"
    )


def test_the_boundary_is_accepted_and_a_millisecond_more_is_not() -> None:
    assert tick_refusal(SENT + DEFAULT_SKEW, SENT, DEFAULT_SKEW) is None
    late = SENT + DEFAULT_SKEW + timedelta(milliseconds=1)
    refused = tick_refusal(late, SENT, DEFAULT_SKEW)
    assert refused is not None
    assert "is 10 minutes 0.001 seconds ahead" in refused.reason
    with pytest.raises(Refused):
        check_tick(late, SENT, DEFAULT_SKEW)


def test_ticks_behind_their_record_time_are_always_accepted() -> None:
    assert tick_refusal(datetime(2026, 1, 1, tzinfo=UTC), SENT, timedelta(0)) is None
    assert tick_refusal(SENT, SENT, timedelta(0)) is None


@pytest.mark.parametrize(
    ("length", "words"),
    [
        (timedelta(days=1), "1 day"),
        (timedelta(days=8372, hours=5), "8,372 days"),
        (timedelta(hours=2, minutes=5), "2 hours 5 minutes"),
        (timedelta(minutes=10), "10 minutes"),
        (timedelta(minutes=1, seconds=1), "1 minute 1 second"),
        (timedelta(seconds=0.5), "0.5 seconds"),
        (timedelta(0), "0 seconds"),
    ],
)
def test_span_in_words(length: timedelta, words: str) -> None:
    assert span(length) == words


def test_handler_refuses_a_future_tick_and_changes_nothing() -> None:
    made, table = handler()
    before = dict(table)
    with pytest.raises(Refused) as caught:
        handle(made, tick(datetime(2099, 1, 1, tzinfo=UTC)))
    assert caught.value.field == "occurred_at"
    assert table == before
    # The real tick after it still ages the invoice: the refused one moved no time.
    aged = handle(made, tick(datetime(2026, 12, 2, 1, tzinfo=UTC)))
    assert [(a["event_type"], a["data"]["as_of"]) for a in aged] == [("invoice.aged", "2026-12-02")]


def test_handler_accepts_a_tick_within_the_skew() -> None:
    made, _table = handler()
    aged = handle(made, tick(SENT + DEFAULT_SKEW))
    assert [a["data"]["days_past_due"] for a in aged] == [3]


def test_a_tick_without_a_record_time_is_refused() -> None:
    made, _table = handler()
    with pytest.raises(Refused) as caught:
        handle(made, tick(SENT, record_time=None))
    assert caught.value.field == "$"


def test_a_huge_skew_lets_the_future_tick_through() -> None:
    """What a misconfigured guard does: the poison the recovery runbook repairs."""
    made, _table = handler(skew=timedelta(days=400_000))
    aged = handle(made, tick(datetime(2099, 1, 1, tzinfo=UTC)))
    assert [a["data"]["as_of"] for a in aged] == ["2099-01-01"]
    assert handle(made, tick(datetime(2026, 12, 3, 1, tzinfo=UTC))) == []  # "from the past"


def test_the_skew_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().clock_skew == 600.0
    monkeypatch.setenv("BILLSTATE_INVOICING_CLOCK_SKEW", "30")
    assert Settings().clock_skew == 30.0
    # The worker hands the setting to its handler (entrypoints/worker.py), which keeps it.
    skew = timedelta(seconds=Settings().clock_skew)
    handler = InvoicingHandler(table={}, policy=POLICY, partition_of=lambda _k: 0, clock_skew=skew)
    assert handler.clock_skew == timedelta(seconds=30)
    monkeypatch.setenv("BILLSTATE_INVOICING_CLOCK_SKEW", "-1")
    with pytest.raises(ValueError, match="clock_skew"):
        Settings()


def test_the_latest_tick_taken_is_on_metrics_and_a_refused_or_older_one_moves_nothing() -> None:
    metrics = Metrics("invoicing")
    made = InvoicingHandler(
        table={}, policy=POLICY, partition_of=lambda _k: 0, clock_skew=DEFAULT_SKEW, metrics=metrics
    )
    name, labels = "billstate_clock_last_tick_timestamp_seconds", {"service": "invoicing"}
    handle(made, tick(SENT))
    assert metrics.registry.get_sample_value(name, labels) == SENT.timestamp()
    handle(made, tick(SENT - timedelta(hours=1), partition=1))  # older: behind the latest
    with pytest.raises(Refused):
        handle(made, tick(datetime(2999, 1, 1, tzinfo=UTC)))
    assert metrics.registry.get_sample_value(name, labels) == SENT.timestamp()
    assert f'{name}{{service="invoicing"}}' in metrics.render().decode()
