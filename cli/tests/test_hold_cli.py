"""`billstate hold place|release` without a broker: option checks, envelopes, dry runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from billstate_cli.commands.hold import build_placed, build_released, derived_hold_id
from billstate_cli.main import main
from billstate_shared.contracts import HoldPlaced, HoldReleased, decode

NOW = datetime(2026, 12, 18, 11, 0, tzinfo=UTC)
# Nothing listens here: a command that tried to connect would fail, not hang.
NO_BROKER = ["--bootstrap", "127.0.0.1:1"]


def place(*extra: str) -> list[str]:
    return [
        "hold",
        "place",
        "--customer",
        "contoso",
        "--reason",
        "seat count",
        "--by",
        "ops.alice",
        *NO_BROKER,
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kind", "dispute"], "--invoice (data.invoice_id): is required on a dispute hold"),
        (
            ["--kind", "promise_to_pay", "--until", "2027-01-10", "--amount", "200.00"],
            "--amount (data.amount): is only allowed on a dispute hold, not on a promise_to_pay",
        ),
        (["--kind", "manual", "--amount", "5"], "--amount (data.amount): is only allowed on a"),
        (["--kind", "promise_to_pay"], "--until (data.until): is required on a promise_to_pay"),
        (
            ["--kind", "promise_to_pay", "--until", "2027-02-30"],
            "--until (data.until): is not a calendar date",
        ),
        (
            ["--kind", "dispute", "--invoice", "INV-1", "--amount", "200,00"],
            "--amount (data.amount): must be a decimal string",
        ),
        (
            ["--kind", "dispute", "--invoice", "INV-1", "--amount", "0"],
            "--amount (data.amount): must be greater than zero",
        ),
        (["--kind", "manual", "--hold-id", "has space"], "--hold-id (data.hold_id): "),
        (["--kind", "manual", "--hold-id", "h" * 115], "--hold-id: must be at most 114"),
    ],
)
def test_place_refuses_a_bad_combination_naming_the_option(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(place(*extra))

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(f"billstate hold place: {message}")
    assert err.endswith("; nothing sent\n")


def test_place_refuses_a_bad_customer_id(capsys: pytest.CaptureFixture[str]) -> None:
    args = place("--kind", "manual")
    args[args.index("contoso")] = "contoso ltd"

    assert main(args) == 2
    assert capsys.readouterr().err.startswith("billstate hold place: --customer (customer_id): ")


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--by", "alice@example.com", "must be an operator id, not an e-mail address"),
        ("--by", " ", "must name the operator"),
        ("--reason", "", "must say why"),
    ],
)
def test_operator_rules(
    option: str, value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = place("--kind", "manual")
    args[args.index(option) + 1] = value

    assert main(args) == 2
    assert capsys.readouterr().err == f"billstate hold place: {option}: {reason}; nothing sent\n"


def test_dry_run_prints_the_envelope_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(place("--kind", "dispute", "--invoice", "INV-7", "--amount", "200.00", "--dry-run"))

    out, err = capsys.readouterr()
    assert code == 0
    event = decode(out.strip())
    assert isinstance(event, HoldPlaced)
    assert event.customer_id == "contoso"
    assert event.event_id == f"hold-{event.data.hold_id}-placed"
    assert event.data.hold_id == derived_hold_id(
        "contoso",
        "dispute",
        invoice="INV-7",
        amount="200.00",
        until=None,
        reason="seat count",
        by="ops.alice",
        on=event.occurred_at.astimezone(UTC).date(),
    )
    assert (event.data.kind, event.data.invoice_id, str(event.data.amount)) == (
        "dispute",
        "INV-7",
        "200.00",
    )
    assert event.occurred_at.utcoffset() is not None
    assert "nothing sent" in err
    assert "would be placed on collections.control.v1, key contoso" in err


HOLD_FIELDS = ("customer", "kind", "invoice", "amount", "until", "reason", "by", "on")


def hold_id_of(values: Sequence[Any]) -> str:
    return derived_hold_id(**dict(zip(HOLD_FIELDS, values, strict=True)))


def test_the_derived_hold_id_depends_on_every_field_and_nothing_else() -> None:
    base = (
        "contoso",
        "promise_to_pay",
        None,
        None,
        "2027-01-10",
        "after close",
        "ops.alice",
        date(2026, 12, 18),
    )
    first = hold_id_of(base)

    assert first == hold_id_of(base)
    assert first.startswith("promise_to_pay-")
    assert len(first) == len("promise_to_pay-") + 16
    others = ["fabrikam", "manual", "INV-1", "1", "2027-01-11", "x", "ops.bob", date(2026, 12, 19)]
    for i, other in enumerate(others):
        changed = list(base)
        changed[i] = other
        assert hold_id_of(changed) != first, f"field {i} is not in the hold id"


def test_the_same_command_the_same_day_builds_the_same_event_apart_from_occurred_at() -> None:
    later = NOW + timedelta(hours=1)
    one = build_placed("contoso", "manual", "review", "ops.alice", NOW)
    two = build_placed("contoso", "manual", "review", "ops.alice", later)

    assert one.event_id == two.event_id
    assert one.data == two.data
    assert one.occurred_at != two.occurred_at


def test_the_same_hold_placed_again_on_a_later_day_is_a_new_hold() -> None:
    # After a release the old id is spent; a hold placed again the next day must not be it.
    one = build_placed("contoso", "manual", "review", "ops.alice", NOW)
    two = build_placed("contoso", "manual", "review", "ops.alice", NOW + timedelta(days=1))

    assert one.data.hold_id != two.data.hold_id


def test_a_given_hold_id_is_used() -> None:
    event = build_placed("contoso", "manual", "review", "ops.alice", NOW, hold_id="HOLD-21")

    assert (event.data.hold_id, event.event_id) == ("HOLD-21", "hold-HOLD-21-placed")


def test_release_builds_hold_released(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "hold",
            "release",
            "--customer",
            "contoso",
            "--hold-id",
            "HOLD-19",
            "--reason",
            "Paid",
            "--by",
            "ops.alice",
            "--dry-run",
            *NO_BROKER,
        ]
    )

    out, _ = capsys.readouterr()
    assert code == 0
    event = decode(out.strip())
    assert isinstance(event, HoldReleased)
    assert event.event_id == "hold-HOLD-19-released"
    assert json.loads(out)["data"] == {"hold_id": "HOLD-19", "reason": "Paid", "by": "ops.alice"}
    assert event == build_released("contoso", "HOLD-19", "Paid", "ops.alice", event.occurred_at)


def test_release_refuses_an_e_mail_as_operator(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "hold",
            "release",
            "--customer",
            "contoso",
            "--hold-id",
            "HOLD-19",
            "--reason",
            "Paid",
            "--by",
            "a@b.example",
            *NO_BROKER,
        ]
    )

    assert code == 2
    assert "--by: must be an operator id" in capsys.readouterr().err


def test_an_unreachable_broker_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(place("--kind", "manual"))

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "cannot reach Kafka at 127.0.0.1:1" in err
