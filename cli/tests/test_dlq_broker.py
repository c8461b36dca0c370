"""`billstate dlq list|redrive` against a real broker, on dead letters written as services do."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from billstate_cli.commands.dlq import REDRIVE_HEADER
from billstate_cli.main import main
from billstate_devkit.events import access_command, hold_placed
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import HoldPlaced, decode, encode
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.topics import ACCESS_COMMANDS, CONTROL

pytestmark = pytest.mark.broker

DLQ = CONTROL.dlq


async def write_dead_letters(bootstrap: str, letters: list[DeadLetter]) -> None:
    """Each letter's `produce()` record, as the services' loop sends it; acknowledged
    before returning."""
    await ensure_catalog(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in letters:
            out = letter.produce()
            await producer.send_and_wait(
                out.topic, value=out.value, key=out.key, headers=list(out.headers)
            )
    finally:
        await producer.stop()


def refused(customer: str, value: bytes, offset: int, field: str, reason: str) -> DeadLetter:
    return DeadLetter(
        topic=CONTROL.name,
        partition=3,
        offset=offset,
        key=customer.encode(),
        value=value,
        reason=reason,
        field=field,
        service="collections",
        event_type="hold.placed",
    )


def test_list_shows_a_dead_letter_and_masks_addresses_outside_json(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = f"cli-dlq-{uuid.uuid4().hex[:10]}"
    value = hold_placed(customer, "H1", kind="dispute", reason="call bob@example.com first")
    letter = refused(customer, value, 4711, "data.invoice_id", "is required on a dispute hold")
    asyncio.run(write_dead_letters(kafka_bootstrap, [letter]))
    where = ["--customer", customer, "--bootstrap", kafka_bootstrap]

    listed = main(["dlq", "list", DLQ, *where])
    out = capsys.readouterr().out
    as_json = main(["dlq", "list", DLQ, "--json", *where])
    json_out = capsys.readouterr().out

    assert (listed, as_json) == (0, 0)
    header, row, summary = out.splitlines()
    assert header.split() == [
        "at",
        "customer",
        "source",
        "service",
        "event_type",
        "field",
        "reason",
    ]
    cells = row.split()
    assert re.fullmatch(r"\d+:\d+", cells[0])
    assert cells[1:] == [
        customer,
        f"{CONTROL.name}:3:4711",
        "collections",
        "hold.placed",
        "data.invoice_id",
        "is",
        "required",
        "on",
        "a",
        "dispute",
        "hold",
    ]
    assert re.fullmatch(rf"1 dead letter\(s\) of \d+ in {re.escape(DLQ)}", summary)
    assert "@" not in out
    (doc,) = [json.loads(line) for line in json_out.splitlines()]
    assert doc["key"] == customer
    assert doc["dlq"] == {
        "reason": "is required on a dispute hold",
        "field": "data.invoice_id",
        "topic": CONTROL.name,
        "partition": "3",
        "offset": "4711",
        "service": "collections",
        "event_type": "hold.placed",
    }
    assert doc["value"]["data"]["reason"] == "call bob@example.com first"  # as it is, in JSON


def test_redrive_sends_a_dead_letter_back_once_and_refuses_what_would_fail_again(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = f"cli-redrive-{uuid.uuid4().hex[:10]}"
    good = hold_placed(customer, "H1")
    boom = "unexpected error after 1 attempts: RuntimeError('boom')"
    asyncio.run(
        write_dead_letters(
            kafka_bootstrap,
            [
                refused(customer, good, 10, "$", boom),
                refused(customer, good, 10, "$", boom),  # the same record, dead-lettered twice
                refused(
                    customer,
                    hold_placed(customer, "H2", kind="dispute"),
                    11,
                    "data.invoice_id",
                    "is required on a dispute hold",
                ),
            ],
        )
    )
    start = asyncio.run(end_offsets(kafka_bootstrap, CONTROL.name))
    where = ["--customer", customer, "--bootstrap", kafka_bootstrap]

    dry = main(["dlq", "redrive", DLQ, *where])
    dry_out, dry_err = capsys.readouterr()
    sent = main(["dlq", "redrive", DLQ, "--field", "$", "--send", *where])
    sent_out, sent_err = capsys.readouterr()

    assert dry == 1  # one dead letter would be refused again
    assert re.fullmatch(
        rf"{re.escape(DLQ)}:\d+:\d+: data\.invoice_id: is required on a dispute hold\n", dry_err
    )
    assert "would send" in dry_out
    assert "duplicate" in dry_out
    assert dry_out.splitlines()[-1] == (
        f"dry run: 3 selected in {DLQ}: 1 to send, 1 refused, 1 duplicate(s); add --send to produce"
    )
    assert sent == 0
    assert sent_err == ""
    assert sent_out.splitlines()[-1] == f"2 selected in {DLQ}: 1 sent, 0 refused, 1 duplicate(s)"
    match = re.search(r" partition (\d+) offset (\d+)$", sent_out.splitlines()[-2])
    assert match is not None
    partition, offset = int(match[1]), int(match[2])
    after = asyncio.run(end_offsets(kafka_bootstrap, CONTROL.name))
    last = {tp.partition: end - 1 for tp, end in after.items()}
    records = asyncio.run(
        read_after(
            kafka_bootstrap,
            start,
            lambda rs: any(r.partition == partition and r.offset >= last[partition] for r in rs),
        )
    )
    mine = [r for r in records if r.key == customer.encode()]
    assert [(r.partition, r.offset) for r in mine] == [(partition, offset)]  # once: no dry-run copy
    assert mine[0].value == good
    assert isinstance(decode(mine[0].value), HoldPlaced)
    (source,) = [v.decode() for k, v in mine[0].headers if k == REDRIVE_HEADER]
    assert re.fullmatch(rf"{re.escape(DLQ)}:\d+:\d+", source)


def numbered(kind: str, customer: str, command_id: str, sequence: int | None) -> bytes:
    """An access command as collections sends it, with its sequence."""
    envelope = json.loads(access_command(kind, customer, command_id, ["sub-a"]))
    envelope["data"]["sequence"] = sequence
    return encode(decode(json.dumps(envelope).encode()))


def test_redrive_skips_an_access_command_older_than_the_newest_for_its_customer(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A suspend (sequence 12) failed and was dead-lettered; the customer paid and the restore
    (15) went out. Re-driving the suspend would be refused by access-control as stale: the
    re-drive says so first, and sends it only with --force-stale."""
    customer = f"cli-stale-{uuid.uuid4().hex[:10]}"
    suspend = numbered("suspend", customer, "s-12", 12)
    restore = numbered("restore", customer, "r-15", 15)
    unnumbered = numbered("suspend", customer, "s-old", None)

    async def history() -> None:
        await ensure_catalog(kafka_bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in (suspend, restore):
                await producer.send_and_wait(ACCESS_COMMANDS.name, value, key=customer.encode())
        finally:
            await producer.stop()

    asyncio.run(history())

    def letter(value: bytes, offset: int) -> DeadLetter:
        return DeadLetter(
            topic=ACCESS_COMMANDS.name,
            partition=1,
            offset=offset,
            key=customer.encode(),
            value=value,
            reason="provider down could not make subscription sub-a suspended",
            field="data.subscription_ids",
            service="access-control",
            event_type="access.suspend",
        )

    asyncio.run(write_dead_letters(kafka_bootstrap, [letter(suspend, 5), letter(unnumbered, 6)]))
    where = ["--customer", customer, "--bootstrap", kafka_bootstrap]
    dlq = ACCESS_COMMANDS.dlq

    dry = main(["dlq", "redrive", dlq, *where])
    dry_out = capsys.readouterr().out
    sent = main(["dlq", "redrive", dlq, "--send", *where])
    sent_out = capsys.readouterr().out
    forced = main(["dlq", "redrive", dlq, "--send", "--force-stale", *where])
    forced_out = capsys.readouterr().out

    stale = (
        f"access.suspend s-12: stale: sequence 12 is older than 15, the newest command for"
        f" {customer} on {ACCESS_COMMANDS.name}"
    )
    assert (dry, sent, forced) == (0, 0, 0)
    lines = dry_out.splitlines()
    assert re.fullmatch(rf"stale \d+:\d+: {re.escape(stale)}; skipped", lines[0])
    assert len([x for x in lines if x.startswith("would send")]) == 1
    assert "s-old" not in lines[0]
    assert lines[-1] == (
        f"dry run: 2 selected in {dlq}: 1 to send, 0 refused, 0 duplicate(s), 1 stale;"
        " add --send to produce"
    )
    assert sent_out.splitlines()[-1] == (
        f"2 selected in {dlq}: 1 sent, 0 refused, 0 duplicate(s), 1 stale"
    )
    assert re.search(rf"stale \d+:\d+: {re.escape(stale)}; sent anyway", forced_out)
    assert forced_out.splitlines()[-1] == (
        f"2 selected in {dlq}: 2 sent, 0 refused, 0 duplicate(s), 1 stale (sent anyway)"
    )
