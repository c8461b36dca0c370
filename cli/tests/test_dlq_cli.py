"""`billstate dlq` without a broker: arguments, the table's masking, what a re-drive would do."""

from __future__ import annotations

import json

import pytest

from billstate_cli.commands.dlq import REDRIVE_HEADER, Letter, plan_redrive, select, table
from billstate_cli.main import main
from billstate_devkit.events import access_command, hold_placed
from billstate_shared.contracts import decode, encode
from billstate_shared.runtime.dlq import DeadLetter, read_headers

DLQ = "collections.control.v1.dlq"


def letter(offset: int, value: bytes | None, key: bytes | None = b"contoso", **why: str) -> Letter:
    dead = DeadLetter(
        topic=why.get("topic", "collections.control.v1"),
        partition=2,
        offset=100 + offset,
        key=key,
        value=value,
        reason=why.get("reason", "unexpected error after 1 attempts: boom"),
        field=why.get("field", "$"),
        service="collections",
        event_type="hold.placed",
    )
    return Letter(5, offset, 1_700_000_000_000 + offset, key, value, read_headers(dead.headers()))


def test_only_catalog_dead_letter_topics(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dlq", "list", "collections.control.v1", "--bootstrap", "127.0.0.1:1"])

    assert code == 2
    assert capsys.readouterr().err.startswith(
        "billstate dlq list: collections.control.v1 is not a dead-letter topic of the catalog"
    )


@pytest.mark.parametrize("bad", ["3", "a:1", "3:-1"])
def test_offsets_are_partition_colon_offset(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dlq", "redrive", DLQ, "--offset", bad])

    assert exit_.value.code == 2
    assert "is not PARTITION:OFFSET" in capsys.readouterr().err


def test_an_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list", DLQ, "--bootstrap", "127.0.0.1:1"]) == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in capsys.readouterr().err


def test_the_table_masks_e_mail_addresses_and_control_characters() -> None:
    x = letter(1, b"{}", key=b"cust\x1b[2J", reason="provider said: no user bob@example.com")

    rows = table([x])

    assert rows[0].split() == [
        "at",
        "customer",
        "source",
        "service",
        "event_type",
        "field",
        "reason",
    ]
    assert rows[1].split() == [
        "5:1",
        "cust?[2J",
        "collections.control.v1:2:101",
        "collections",
        "hold.placed",
        "$",
        "provider",
        "said:",
        "no",
        "user",
        "[email]",
    ]


def test_select_by_customer_also_finds_a_letter_whose_key_was_wrong() -> None:
    right = letter(1, hold_placed("contoso", "H1"))
    wrong_key = letter(2, hold_placed("contoso", "H2"), key=b"fabrikam", field="key")
    other = letter(3, hold_placed("fabrikam", "H3"), key=b"fabrikam")

    assert select([right, wrong_key, other], customer="contoso") == [right, wrong_key]
    assert select([right, wrong_key, other], field="key") == [wrong_key]
    assert select([right, wrong_key, other], positions=[(5, 3)]) == [other]


def test_a_redrive_plan_refuses_what_would_be_refused_again_and_skips_copies() -> None:
    good = letter(1, hold_placed("contoso", "H1"))
    copy = letter(2, hold_placed("contoso", "H1"))
    dispute = letter(3, hold_placed("contoso", "H2", kind="dispute"), field="data.invoice_id")
    elsewhere = letter(4, hold_placed("contoso", "H3"), topic="billing.invoices.v1")
    tombstone = letter(5, None)
    wrong_key = letter(6, hold_placed("contoso", "H4"), key=b"fabrikam", field="key")

    plan = plan_redrive(DLQ, [good, copy, dispute, elsewhere, tombstone, wrong_key])

    assert [(i.origin, i.topic, i.key, i.value) for i in plan.items] == [
        ("5:1", "collections.control.v1", b"contoso", good.value),
        ("5:6", "collections.control.v1", b"contoso", wrong_key.value),
    ]
    assert plan.items[0].headers == ((REDRIVE_HEADER, f"{DLQ}:5:1".encode()),)
    assert plan.refused == [
        f"{DLQ}:5:3: data.invoice_id: is required on a dispute hold",
        (
            f"{DLQ}:5:4: headers: billstate.dlq.topic is billing.invoices.v1, not"
            " collections.control.v1"
        ),
        f"{DLQ}:5:5: $: an empty value (tombstone) is not an event",
    ]
    assert plan.duplicates == ["duplicate 5:2: event_id hold-H1-placed as at 5:1, skipped"]


def test_a_redrive_plan_refuses_an_event_on_the_wrong_topic() -> None:
    invoice = json.loads(hold_placed("contoso", "H1"))
    invoice.update(event_type="invoice.voided", data={"invoice_id": "INV-1", "reason": "x"})
    x = letter(1, json.dumps(invoice).encode())

    plan = plan_redrive(DLQ, [x])

    assert plan.refused == [
        (
            f"{DLQ}:5:1: event_type: invoice.voided is not an event of collections.control.v1"
            " (it belongs on billing.invoices.v1)"
        )
    ]


ACCESS_DLQ = "access.commands.v1.dlq"


def access_letter(
    offset: int, command_id: str, sequence: int | None, kind: str = "suspend"
) -> Letter:
    envelope = json.loads(access_command(kind, "contoso", command_id, ["sub-a"]))
    envelope["data"]["sequence"] = sequence
    value = encode(decode(json.dumps(envelope).encode()))
    dead = DeadLetter(
        topic="access.commands.v1",
        partition=4,
        offset=200 + offset,
        key=b"contoso",
        value=value,
        reason="provider builtin could not make subscription sub-a suspended",
        field="data.subscription_ids",
        service="access-control",
        event_type=f"access.{kind}",
    )
    return Letter(
        4, offset, 1_700_000_000_000 + offset, b"contoso", value, read_headers(dead.headers())
    )


def test_a_redrive_plan_skips_access_commands_older_than_the_newest() -> None:
    """A suspend (sequence 12) dead-lettered before the customer paid (restore, 15): sent
    back, it would suspend a customer who has paid; access-control refuses it, and the plan
    says so before anything is sent."""
    old = access_letter(1, "s-12", 12)
    newer = access_letter(2, "s-16", 16)
    unnumbered = access_letter(3, "s-none", None)
    newest = {"contoso": 15, "fabrikam": 40}

    plan = plan_redrive(ACCESS_DLQ, [old, newer, unnumbered], newest)

    assert [i.origin for i in plan.items] == ["4:2", "4:3"]
    assert plan.stale == [
        (
            "stale 4:1: access.suspend s-12: stale: sequence 12 is older than 15, the newest"
            " command for contoso on access.commands.v1; skipped"
        )
    ]
    assert (plan.refused, plan.duplicates) == ([], [])

    forced = plan_redrive(ACCESS_DLQ, [old, newer], newest, force_stale=True)
    assert [i.origin for i in forced.items] == ["4:1", "4:2"]
    assert forced.stale[0].endswith("; sent anyway")
    # Without what the topic holds, nothing is judged stale.
    assert plan_redrive(ACCESS_DLQ, [old]).stale == []
