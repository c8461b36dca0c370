"""`billstate recover rebuild` without a broker: what it refuses before it reads anything, and
how it numbers a rebuilt book's commands on above those already out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import ConsumerRecord

from billstate_cli.commands.recover import (
    changelog,
    continue_sequences,
    high_water,
    inputs_of,
    parse_groups,
)
from billstate_cli.drive import tick_event
from billstate_cli.main import main
from billstate_cli.replay import Replay
from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import Outbound, to_bytes
from billstate_shared.errors import Refused
from billstate_shared.policy_file import load_policy
from billstate_shared.topics import ACCESS_COMMANDS

NO_BROKER = ["--bootstrap", "127.0.0.1:1"]
POLICY = Path(__file__).resolve().parents[2] / "policies" / "standard.yaml"
TAIPEI = ZoneInfo("Asia/Taipei")


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
            "billing.costs.v1",
            "billing.due-dates.v1",
            "collections.control.v1",
            "support.requests.v1",
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


# ---- the sequences of a rebuilt book's commands ---------------------------------------------

SUSPEND_ON = datetime(2026, 3, 11, 9, tzinfo=TAIPEI)


def command(
    kind: str, command_id: str, sequence: int | None, customer: str = "contoso"
) -> Outbound:
    data: dict[str, object] = {
        "command_id": command_id,
        "subscription_ids": ["SUB-1"],
        "reason": "why",
        "stage": "suspended",
        "policy": {"name": "standard", "version": 3},
    }
    if sequence is not None:
        data["sequence"] = sequence
    return Outbound(f"evt-{command_id}", f"access.{kind}", SUSPEND_ON, customer, data)


def test_the_commands_sent_go_on_above_the_highest_out_in_order() -> None:
    """The poisoned book sent up to sequence 5; the rebuilt one has made 3 decisions. The
    suspension the replay makes (its 3) and the recovery's restore are numbered 6 and 7, ids
    kept; the book's later commands add a base of 4, so its next decision's command is 8."""
    book = Book("contoso", transitions=3)
    stage = Outbound("evt-stg", "collections.stage_entered", SUSPEND_ON, "contoso", {"x": 1})
    suspend, restore = command("suspend", "sus-3", 3), command("restore", "rst-r", None)
    sent, restored, continued = continue_sequences(
        {"contoso": book}, {"contoso": 5}, [stage, suspend], [restore]
    )
    assert sent[0] is stage
    assert [o.data["sequence"] for o in (sent[1], restored[0])] == [6, 7]
    for before, after in ((suspend, sent[1]), (restore, restored[0])):
        assert isinstance(after, Outbound)
        assert after.event_id == before.event_id
        assert {**after.data, "sequence": None} == {**before.data, "sequence": None}
    assert book.sequence_base == 4
    assert book.transitions == 3  # part of every id: unchanged
    assert continued == {"contoso": 5}


def test_numbers_above_the_mark_are_the_replays() -> None:
    """Below the mark: the next numbers, in order; above what went before: kept as they are.
    A book that has made more decisions than any sequence out needs no base."""
    books = {"contoso": Book("contoso", transitions=9), "fabrikam": Book("fabrikam", transitions=6)}
    missing = [
        command("suspend", "c-2", 2),
        command("restore", "c-3", 3),
        command("suspend", "c-9", 9),
        command("suspend", "f-5", 5, customer="fabrikam"),
    ]
    sent, _, continued = continue_sequences(books, {"contoso": 5, "fabrikam": 3}, missing, [])
    assert [(o.customer_id, json.loads(to_bytes(o))["data"]["sequence"]) for o in sent] == [
        ("contoso", 6),
        ("contoso", 7),
        ("contoso", 9),
        ("fabrikam", 5),
    ]
    assert (books["contoso"].sequence_base, books["fabrikam"].sequence_base) == (0, 0)
    assert continued == {"contoso": 5}


def test_a_mark_alone_sets_the_base_and_no_mark_clears_it() -> None:
    books = {"contoso": Book("contoso", transitions=1), "fabrikam": Book("fabrikam")}
    books["fabrikam"].sequence_base = 9
    assert continue_sequences(books, {"contoso": 4}, [], []) == ([], [], {"contoso": 4})
    assert (books["contoso"].sequence_base, books["fabrikam"].sequence_base) == (3, 0)


def record(topic: str, offset: int, key: str, value: object) -> ConsumerRecord[bytes, bytes]:
    raw = None if value is None else json.dumps(value).encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, key.encode(), raw, None, 0, 0, [])


def test_the_high_water_is_the_highest_sequence_out_or_the_stored_book() -> None:
    books = "collections-books-changelog"

    def cmd(offset: int, customer: str, sequence: int | None) -> ConsumerRecord[bytes, bytes]:
        data = {} if sequence is None else {"sequence": sequence}
        return record(
            ACCESS_COMMANDS.name, offset, customer, {"customer_id": customer, "data": data}
        )

    def row(
        offset: int, customer: str, transitions: int, base: int = 0
    ) -> ConsumerRecord[bytes, bytes]:
        book = {"transitions": transitions, **({"sequence_base": base} if base else {})}
        return record(books, offset, customer, {"book": book, "sent": []})

    records = [
        cmd(0, "contoso", 4), cmd(1, "contoso", 2), cmd(2, "contoso", None), cmd(3, "fabrikam", 1),
        row(1, "contoso", 3),  # the last row of a key is the book: 3, not 5 + 1
        row(0, "contoso", 5, base=1),
        row(2, "fabrikam", 9), record(books, 3, "fabrikam", None),  # deleted
        row(4, "northwind", 2, base=2),
        record(books, 5, "wingtip", {"book": {"transitions": "x"}, "sent": []}),
        record(ACCESS_COMMANDS.name, 4, "adatum", [1, 2]),  # not an event: no mark
    ]  # fmt: skip
    assert high_water(records, books) == {"contoso": 4, "fabrikam": 1, "northwind": 4}


def test_a_rebuilt_book_adds_its_base_to_its_commands_and_keeps_it_stored() -> None:
    """The engine stamps transitions + sequence_base, and only the sequence: the restore after
    the last payment has the same id and fields as a fresh replay's. The base survives the
    table (a book without one is stored as before)."""
    policy = load_policy(POLICY)
    replays = [Replay(policy), Replay(policy)]
    customer = [
        {"event_id": "c-up", "event_type": "customer.upserted", "schema_version": 1,
         "occurred_at": "2026-01-01T00:05:00+08:00", "customer_id": "contoso",
         "data": {"name": "Contoso", "locale": "en", "billing_email": "ap@contoso.example",
                  "partner_contact_email": "am@partner.example", "tags": [],
                  "subscription_ids": ["SUB-1"]}},
        {"event_id": "i-1", "event_type": "invoice.issued", "schema_version": 1,
         "occurred_at": "2026-01-19T10:00:00+08:00", "customer_id": "contoso",
         "data": {"invoice_id": "INV-1", "currency": "USD", "amount": "100.00",
                  "issued_on": "2026-01-19", "due_on": "2026-02-18",
                  "subscription_ids": ["SUB-1"]}},
    ]  # fmt: skip
    ticks = [tick_event(SUSPEND_ON - timedelta(days=n)) for n in range(30, -1, -1)]
    paid = {"event_id": "p-1", "event_type": "payment.received", "schema_version": 1,
            "occurred_at": "2026-03-12T12:00:00+08:00", "customer_id": "contoso",
            "data": {"payment_id": "PAY-1", "currency": "USD", "amount": "100.00",
                     "invoice_id": "INV-1"}}  # fmt: skip
    for replay in replays:
        for event in [*customer, *ticks]:
            replay.feed(decode(json.dumps(event).encode()))
    book = replays[1].books["contoso"]
    assert (book.transitions, book.suspended) == (3, ("SUB-1",))
    continue_sequences(replays[1].books, {"contoso": 7}, [], [])
    policy = replays[1].policy
    stored = load_book(json.loads(orjson.dumps(dump_book(book, policy))), policy)
    assert stored.sequence_base == book.sequence_base == 4
    assert "sequence_base" not in dump_book(replays[0].books["contoso"], policy)
    replays[1].books["contoso"] = stored

    fresh, rebuilt = (
        [json.loads(to_bytes(o)) for o in r.feed(decode(json.dumps(paid).encode()))]
        for r in replays
    )
    restores = [[o for o in out if o["event_type"] == "access.restore"] for out in (fresh, rebuilt)]
    assert [r[0]["data"]["sequence"] for r in restores] == [4, 8]  # above the 7 out
    for out in (fresh, rebuilt):
        for o in out:
            o["data"].pop("sequence", None)
    assert fresh == rebuilt
