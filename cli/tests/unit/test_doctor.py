"""`billstate doctor`'s verdicts without a broker: lag, clock age, the report, the test records."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from billstate_access_control.config import Settings as AccessControlSettings
from billstate_cli.commands.doctor import (
    SERVICES,
    Check,
    clock_check,
    exit_code,
    group_check,
    groups_of,
    lag,
    probe_events,
    render,
    settled,
)
from billstate_cli.main import main
from billstate_collections.config import Settings as CollectionsSettings
from billstate_console.config import Settings as ConsoleSettings
from billstate_invoicing.config import Settings as InvoicingSettings
from billstate_notifications.config import Settings as NotificationsSettings
from billstate_shared.contracts import decode

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_lag_counts_from_the_commit_or_the_oldest_record_kept() -> None:
    assert lag(end=100, begin=0, committed=60) == 40
    assert lag(end=100, begin=0, committed=100) == 0
    assert lag(end=100, begin=20, committed=None) == 80  # never committed: all that is kept
    assert lag(end=100, begin=90, committed=50) == 10  # retention deleted what it missed
    assert lag(end=0, begin=0, committed=None) == 0


def test_a_group_is_named_when_absent_empty_or_behind() -> None:
    absent = group_check("collections", None, 0, {}, 1000)
    assert not absent.ok
    assert "--group collections=GROUP" in absent.detail
    empty = group_check("collections", "collections", 0, {}, 1000)
    assert not empty.ok
    assert "consumer group collections has no members" in empty.detail
    assert "is the collections workload running?" in empty.detail
    behind = group_check(
        "invoicing", "invoicing", 2, {"billing.clock.v1": 1001, "billing.invoices.v1": 5}, 1000
    )
    assert not behind.ok
    assert "consumer group invoicing is behind by more than 1000 records on" in behind.detail
    assert "billing.clock.v1 1001" in behind.detail
    assert "billing.invoices.v1" not in behind.detail  # under the threshold
    fine = group_check("invoicing", "invoicing", 2, {"billing.invoices.v1": 1000}, 1000)
    assert fine == Check(
        "group invoicing", ok=True, detail="invoicing: 2 member(s), 1000 records behind"
    )


def test_the_clock_verdict_by_the_newest_ticks_age() -> None:
    age = timedelta(minutes=30)
    assert clock_check(NOW - timedelta(minutes=30), NOW, age).ok
    stale = clock_check(NOW - timedelta(hours=20), NOW, age)
    assert not stale.ok
    assert stale.detail.startswith("the clock has not ticked since 2026-12-02T14:00:00+00:00")
    assert stale.detail.endswith("is the clock workload running?")
    none = clock_check(None, NOW, age)
    assert not none.ok
    assert "holds no tick" in none.detail


def test_the_report_one_line_per_check_and_its_exit_code() -> None:
    checks = [Check("topics", ok=True, detail="fine"), Check("clock", ok=False, detail="quiet")]
    assert render(checks) == ["OK    topics: fine", "FAIL  clock: quiet"]
    assert exit_code(checks) == 1
    assert exit_code(checks[:1]) == 0


def test_the_test_records_are_valid_and_the_same_all_day() -> None:
    day = date(2026, 12, 3)
    events = probe_events("billstate-doctor", day)
    assert events == probe_events("billstate-doctor", day)  # a re-run sends duplicates
    assert events != probe_events("billstate-doctor", day + timedelta(days=1))
    decoded = [decode(json.dumps(e).encode()) for e in events]  # the contracts accept them
    assert [e.event_type for e in decoded] == [
        "customer.upserted",
        "invoice.issued",
        "invoice.voided",
    ]
    assert len({e["event_id"] for e in events}) == len(events)
    customer, invoice, void = events
    # No address anybody reads: .invalid never resolves (RFC 2606).
    assert customer["data"]["billing_email"].endswith(".invalid")
    assert customer["data"]["partner_contact_email"].endswith(".invalid")
    assert invoice["data"]["subscription_ids"] == []  # nothing that could be suspended
    assert void["data"]["invoice_id"] == invoice["data"]["invoice_id"]


def test_settled_is_the_state_after_the_void_with_nothing_open() -> None:
    paid_at = "2026-12-03T00:00:02+00:00"
    data: dict[str, list[Any]] = {"overdue": [], "suspended_subscription_ids": []}
    assert settled({"occurred_at": "2026-12-03T00:00:02Z", "data": data}, paid_at)
    assert not settled({"occurred_at": "2026-12-03T00:00:01Z", "data": data}, paid_at)
    owed = {**data, "overdue": [{"amount": "1.00", "currency": "USD"}]}
    assert not settled({"occurred_at": paid_at, "data": owed}, paid_at)
    assert not settled(None, paid_at)


def test_groups_default_to_each_services_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    configs: tuple[type[BaseSettings], ...] = (
        InvoicingSettings,
        CollectionsSettings,
        AccessControlSettings,
        NotificationsSettings,
        ConsoleSettings,
    )
    for service in SERVICES:  # whatever the shell running the tests exports
        env = f"BILLSTATE_{service.replace('-', '_').upper()}_CONSUMER_GROUP"
        monkeypatch.delenv(env, raising=False)
    defaults = {
        s: c.model_fields["consumer_group"].default for s, c in zip(SERVICES, configs, strict=True)
    }
    assert groups_of(SERVICES, {}) == defaults
    monkeypatch.setenv("BILLSTATE_ACCESS_CONTROL_CONSUMER_GROUP", "ac-blue")
    found = groups_of(SERVICES, {"invoicing": "inv-2"})
    assert found["access-control"] == "ac-blue"
    assert found["invoicing"] == "inv-2"


def test_a_group_flag_names_a_known_service(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--group", "billing=x"])
    assert exited.value.code == 2
    assert "is not SERVICE=GROUP" in capsys.readouterr().err


def test_refused_kafka_settings_are_one_failed_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # without a user: refused
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  kafka: the KAFKA_* settings are refused: ")
    assert "needs a SASL username and password" in out
