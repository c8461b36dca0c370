"""`billstate access` without a broker: arguments, what is pending, selection, the decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billstate_cli.commands.access import (
    NothingSelected,
    Parked,
    age,
    as_json,
    build_decision,
    open_parked,
    plan_decisions,
    select,
    table,
)
from billstate_cli.commands.dlq import Letter
from billstate_cli.main import main
from billstate_shared.contracts import (
    AccessApprove,
    AccessParked,
    AccessReject,
    AccessUnparked,
    decode,
    encode,
)
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.contracts.types import MAX_LABEL, MAX_TEXT

NOW = datetime(2027, 1, 11, 12, 0, tzinfo=UTC)
# Nothing listens here: a command that tried to connect would fail, not hang.
NO_BROKER = ["--bootstrap", "127.0.0.1:1"]


def parked(customer: str, command: str, minutes_ago: int = 60, **data: Any) -> AccessParked:
    return AccessParked.model_validate(
        {
            "event_id": data.pop("event_id", f"{command}-parked"),
            "event_type": "access.parked",
            "occurred_at": NOW - timedelta(minutes=minutes_ago),
            "customer_id": customer,
            "data": {
                "command_id": command,
                "subscription_ids": data.pop("subscription_ids", ["sub-1"]),
                "provider": "partner_center",
                "guard": data.pop("guard", "brake"),
                "reason": data.pop("reason", "4 suspensions in 24 hours, the cap is 3"),
            },
        }
    )


def unparked(customer: str, command: str, outcome: str = "cancelled") -> AccessUnparked:
    return AccessUnparked.model_validate(
        {
            "event_id": f"{command}-{outcome}",
            "event_type": "access.unparked",
            "occurred_at": NOW,
            "customer_id": customer,
            "data": {"command_id": command, "outcome": outcome, "by": "access-control",
                     "reason": "restored"},
        }
    )  # fmt: skip


def letters(*values: bytes | None) -> list[Letter]:
    return [Letter(i % 3, 100 + i, 1_700_000_000_000, b"k", v, {}) for i, v in enumerate(values)]


def pending_of(*events: AccessParked | AccessUnparked) -> list[Parked]:
    return open_parked(letters(*(encode(e) for e in events))).parked


# ---- what is pending ------------------------------------------------------------------------


def test_pending_is_parked_minus_unparked_oldest_first() -> None:
    found = open_parked(
        letters(
            encode(parked("fabrikam", "cmd-2", minutes_ago=30)),
            encode(EXAMPLES["access.suspended"]),  # not about parking: passed by
            encode(parked("contoso", "cmd-1", minutes_ago=90)),
            encode(parked("northwind", "cmd-3", minutes_ago=10)),
            encode(unparked("fabrikam", "cmd-2")),
            None,  # a tombstone
        )
    )

    assert [(p.customer_id, p.command_id) for p in found.parked] == [
        ("contoso", "cmd-1"),
        ("northwind", "cmd-3"),
    ]
    assert found.unreadable == 0
    first = found.parked[0]
    assert (first.partition, first.offset, first.at) == (2, 102, "access.events.v1:2:102")


def test_a_command_parked_twice_counts_once_at_its_first_record() -> None:
    again = parked("contoso", "cmd-1", minutes_ago=5)
    found = open_parked(letters(encode(parked("contoso", "cmd-1")), encode(again)))

    (only,) = found.parked
    assert (only.offset, only.event.occurred_at) == (100, NOW - timedelta(minutes=60))


def test_an_unparked_before_its_parked_on_another_partition_still_ends_it() -> None:
    assert pending_of(unparked("contoso", "cmd-1", "approved"), parked("contoso", "cmd-1")) == []


def test_records_that_do_not_decode_are_counted_and_passed_by() -> None:
    found = open_parked(letters(b'{"event_type": "access.parked"}', encode(parked("c", "cmd-1"))))

    assert found.unreadable == 1
    assert [p.command_id for p in found.parked] == ["cmd-1"]


@pytest.mark.parametrize(
    ("minutes", "shown"),
    [(0, "0m"), (59, "59m"), (65, "1h 05m"), (24 * 60 + 125, "1d 02h"), (-5, "0m")],
)
def test_age_is_readable(minutes: int, shown: str) -> None:
    assert age(NOW - timedelta(minutes=minutes), NOW) == shown


def test_the_table_has_every_column_and_masks_what_it_shows() -> None:
    subs = [f"sub-{i}" for i in range(5)]
    rows = table(
        pending_of(
            parked("contoso", "cmd-1", subscription_ids=subs, reason="ask bob@example.com\t")
        ),
        NOW,
    )

    header, row = rows
    assert header.split() == ["customer", "command", "subscriptions", "guard", "parked", "at",
                              "age", "reason"]  # fmt: skip
    assert row.startswith("contoso   cmd-1    sub-0, sub-1, sub-2 (+2 more)  brake")
    assert "2027-01-11 11:00Z" in row
    assert "1h 00m" in row
    assert row.endswith("ask [email]?")


def test_json_has_the_full_record() -> None:
    (p,) = pending_of(parked("contoso", "cmd-1", guard="stale_payment_feed"))

    doc = json.loads(as_json(p, NOW))

    assert doc == {
        "customer_id": "contoso",
        "command_id": "cmd-1",
        "subscription_ids": ["sub-1"],
        "provider": "partner_center",
        "guard": "stale_payment_feed",
        "reason": "4 suspensions in 24 hours, the cap is 3",
        "parked_at": "2027-01-11T11:00:00+00:00",
        "age_seconds": 3600,
        "event_id": "cmd-1-parked",
        "partition": 0,
        "offset": 100,
    }


# ---- selecting ------------------------------------------------------------------------------

PENDING = pending_of(
    parked("contoso", "cmd-1", minutes_ago=50),
    parked("fabrikam", "cmd-2", minutes_ago=40),
    parked("contoso", "cmd-3", minutes_ago=30),
)


def ids(chosen: list[Parked]) -> list[str]:
    return [p.command_id for p in chosen]


def test_select_all_customers_or_commands() -> None:
    assert ids(select(PENDING, every=True)) == ["cmd-1", "cmd-2", "cmd-3"]
    assert ids(select(PENDING, customers=["contoso"])) == ["cmd-1", "cmd-3"]
    assert ids(select(PENDING, customers=["fabrikam", "contoso", "fabrikam"])) == [
        "cmd-1",
        "cmd-2",
        "cmd-3",
    ]
    assert ids(select(PENDING, commands=["cmd-3", "cmd-2"])) == ["cmd-2", "cmd-3"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": True}, "--all: no parked suspension is pending on access.events.v1"),
        (
            {"customers": ["contoso", "northwind"]},
            "--customer: no parked suspension pending for northwind",
        ),
        (
            {"commands": ["cmd-9", "cmd-1", "cmd-8"]},
            "--command: no parked suspension pending with id cmd-9, cmd-8",
        ),
    ],
)
def test_a_selection_that_matches_nothing_names_what_was_asked(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(NothingSelected) as err:
        select([] if kwargs.get("every") else PENDING, **kwargs)

    assert str(err.value) == message


# ---- the decisions --------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "kind"), [("approve", AccessApprove), ("reject", AccessReject)])
def test_one_decision_per_command_keyed_by_its_customer_with_a_deterministic_id(
    verb: Any, kind: type[Any]
) -> None:
    items = plan_decisions(verb, PENDING, "mei.lin", "checked with the account manager", NOW)
    later = plan_decisions(verb, PENDING, "mei.lin", "checked again", NOW + timedelta(hours=1))

    assert [(i.topic, i.key, i.event.event_id) for i in items] == [
        ("access.approvals.v1", b"contoso", f"{verb}-cmd-1"),
        ("access.approvals.v1", b"fabrikam", f"{verb}-cmd-2"),
        ("access.approvals.v1", b"contoso", f"{verb}-cmd-3"),
    ]
    # A run later sends the same ids: access-control applies a decision once.
    assert [i.event.event_id for i in later] == [i.event.event_id for i in items]
    # All of one verb: a run never approves and rejects the same command.
    assert {type(i.event) for i in items} == {kind}
    event = decode(items[0].value)
    assert isinstance(event, kind)
    assert event.data.model_dump() == {
        "command_id": "cmd-1",
        "by": "mei.lin",
        "reason": "checked with the account manager",
    }
    assert event.occurred_at == NOW
    assert items[0].origin == PENDING[0].at


@pytest.mark.parametrize(
    ("by", "reason", "message"),
    [
        ("b" * (MAX_LABEL + 1), "ok", "--by (data.by): String should have at most 128 characters"),
        ("ops\x07", "ok", "--by (data.by): String should match pattern"),
        ("ops", "r" * (MAX_TEXT + 1), "--reason (data.reason): String should have at most 1000"),
        ("ops", "why\x00", "--reason (data.reason): String should match pattern"),
        ("  ", "ok", "--by: must name the operator"),
        ("mei@partner.example", "ok", "--by: must be an operator id, not an e-mail address"),
        ("ops", " ", "--reason: must say why"),
    ],
)
def test_by_and_reason_are_checked_against_the_contract_naming_the_option(
    by: str, reason: str, message: str
) -> None:
    with pytest.raises(Exception) as err:  # noqa: PT011  (the message is the assertion)
        build_decision("approve", PENDING[0], by, reason, NOW)

    assert str(err.value).startswith(message)


def test_a_command_id_too_long_for_its_decisions_event_id_is_named() -> None:
    (long,) = pending_of(parked("contoso", "c" * 125, event_id="parked-1"))

    with pytest.raises(Exception) as err:  # noqa: PT011
        build_decision("approve", long, "ops", "ok", NOW)

    assert str(err.value).startswith(f"command {'c' * 125} (event_id): ")


# ---- the command line -----------------------------------------------------------------------


def decide(*extra: str) -> list[str]:
    return ["access", "approve", "--by", "ops.alice", "--reason", "checked", *NO_BROKER, *extra]


@pytest.mark.parametrize(
    "argv",
    [
        decide(),  # no selection
        decide("--all", "--customer", "contoso"),
        decide("--customer", "contoso", "--command", "cmd-1"),
        ["access", "reject", "--all", "--reason", "x", *NO_BROKER],  # no --by
        ["access", "reject", "--all", "--by", "x", *NO_BROKER],  # no --reason
    ],
)
def test_exactly_one_selection_and_by_and_reason_are_required(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)

    assert exit_.value.code == 2
    assert "usage: billstate access" in capsys.readouterr().err


def test_a_bad_option_is_refused_before_kafka_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["access", "reject", "--all", "--by", "a@b.example", "--reason", "x", *NO_BROKER])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        "billstate access reject: --by: must be an operator id, not an e-mail address;"
        " nothing sent\n"
    )


@pytest.mark.parametrize("argv", [["access", "pending", *NO_BROKER], decide("--all", "--send")])
def test_an_unreachable_broker_is_a_message_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1" in err
    assert "Traceback" not in err


def test_incomplete_kafka_settings_are_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")

    assert main(["access", "pending", *NO_BROKER]) == 2
    assert capsys.readouterr().err.startswith("billstate access pending: Kafka settings: ")
