"""`billstate recover rebuild` without a broker: what it refuses before it reads anything."""

from __future__ import annotations

import pytest

from billstate_cli.commands.recover import changelog, inputs_of, parse_groups
from billstate_cli.main import main
from billstate_shared.errors import Refused

NO_BROKER = ["--bootstrap", "127.0.0.1:1"]


def test_groups_default_to_the_service_names_and_can_be_named() -> None:
    assert parse_groups("invoicing,collections", []) == {
        "invoicing": "invoicing",
        "collections": "collections",
    }
    assert parse_groups("collections, invoicing", ["collections=books-2"])["collections"] == (
        "books-2"
    )
    assert changelog("books-2", "collections") == "books-2-books-changelog"
    assert changelog("invoicing", "invoicing") == "invoicing-registers-changelog"


def test_the_inputs_are_what_the_workers_read() -> None:
    assert sorted(inputs_of("invoicing")) == sorted(
        ["billing.customers.v1", "billing.invoices.v1", "billing.payments.v1", "billing.clock.v1"]
    )
    assert sorted(inputs_of("collections")) == sorted(
        [
            "billing.customers.v1",
            "billing.invoices.v1",
            "billing.payments.v1",
            "billing.due-dates.v1",
            "collections.control.v1",
        ]
    )


@pytest.mark.parametrize(
    ("services", "groups", "field"),
    [
        ("collections", [], "--service"),
        ("invoicing,collections,notifications", [], "--service"),
        ("invoicing,collections", ["notifications=x"], "--group"),
        ("invoicing,collections", ["invoicing"], "--group"),
        ("invoicing,collections", ["invoicing="], "--group"),
    ],
)
def test_refused_options(services: str, groups: list[str], field: str) -> None:
    with pytest.raises(Refused) as caught:
        parse_groups(services, groups)
    assert caught.value.field == field


def test_a_refused_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "rebuild", "--service", "collections", *NO_BROKER]) == 2
    assert capsys.readouterr().err.startswith("billstate recover rebuild: --service: must be")


def test_a_negative_skew_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "rebuild", "--skew", "-1", *NO_BROKER]) == 2
    assert "--skew: must not be negative" in capsys.readouterr().err
