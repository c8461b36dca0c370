"""`billstate access pending|approve|reject` on a real broker, on access.parked and
access.unparked written to access.events.v1 as access-control writes them.

The broker may hold other tests' parked commands: every check picks this test's customers
(unique ids), except the `--all` one, which first ends whatever is still parked."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from billstate_cli.main import main
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import (
    AccessApprove,
    AccessParked,
    AccessReject,
    AccessUnparked,
    EventBase,
    decode,
    encode,
)
from billstate_shared.topics import ACCESS_EVENTS, APPROVALS

pytestmark = pytest.mark.broker

SENT = re.compile(r"^sent (access\.\w+) (\S+) for customer (\S+) .* partition (\d+) offset (\d+)$")


def now() -> datetime:
    """Read when the event is made: ages are checked against the CLI's clock, however late
    in the run the test comes."""
    return datetime.now(UTC).replace(microsecond=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def parked(customer: str, command: str, minutes_ago: int, *subs: str) -> AccessParked:
    return AccessParked.model_validate(
        {
            "event_id": f"{command}-parked",
            "event_type": "access.parked",
            "occurred_at": now() - timedelta(minutes=minutes_ago),
            "customer_id": customer,
            "data": {
                "command_id": command,
                "subscription_ids": list(subs) or ["sub-1"],
                "provider": "partner_center",
                "guard": "brake",
                "reason": "4 suspensions in the last 24 hours on partner_center, the cap is 3",
            },
        }
    )


def unparked(customer: str, command: str, outcome: str = "cancelled") -> AccessUnparked:
    return AccessUnparked.model_validate(
        {
            "event_id": f"{command}-{outcome}",
            "event_type": "access.unparked",
            "occurred_at": now(),
            "customer_id": customer,
            "data": {"command_id": command, "outcome": outcome, "by": "access-control",
                     "reason": "a restore for the customer arrived first"},
        }
    )  # fmt: skip


async def write(bootstrap: str, events: list[EventBase]) -> None:
    """Each event to access.events.v1 keyed by its customer, acknowledged before returning."""
    await ensure_catalog(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                ACCESS_EVENTS.name, encode(event), key=event.customer_id.encode()
            )
    finally:
        await producer.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def pending_json(
    capsys: pytest.CaptureFixture[str], bootstrap: str, customers: set[str] | None = None
) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "access", "pending", "--json", "--bootstrap", bootstrap)
    assert (code, err) == (0, "")
    docs = [json.loads(line) for line in out.splitlines()]
    return [d for d in docs if customers is None or d["customer_id"] in customers]


def sent(out: str) -> list[tuple[str, str, str, int, int]]:
    lines = [m.groups() for m in map(SENT.match, out.splitlines()) if m is not None]
    return [(t, i, c, int(p), int(o)) for t, i, c, p, o in lines]


def approvals_after(
    bootstrap: str, start: Any, customers: set[str], count: int
) -> list[ConsumerRecord]:
    keys = {c.encode() for c in customers}

    def mine(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [r for r in records if r.key in keys]

    return mine(asyncio.run(read_after(bootstrap, start, lambda rs: len(mine(rs)) >= count, 45)))


def test_pending_lists_exactly_the_parked_commands_no_unparked_has_ended(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = unique("cli-park-a"), unique("cli-park-b"), unique("cli-park-c")
    asyncio.run(
        write(
            kafka_bootstrap,
            [
                parked(a, f"suspend-{a}", 120, "sub-a1", "sub-a2"),
                parked(b, f"suspend-{b}", 90),
                parked(c, f"suspend-{c}", 30),
                unparked(b, f"suspend-{b}", "cancelled"),
                parked(a, f"suspend-{a}", 120, "sub-a1", "sub-a2"),  # a redelivery
            ],
        )
    )

    docs = pending_json(capsys, kafka_bootstrap, {a, b, c})
    code, out, err = run(capsys, "access", "pending", "--bootstrap", kafka_bootstrap)

    assert [(d["customer_id"], d["command_id"]) for d in docs] == [
        (a, f"suspend-{a}"),
        (c, f"suspend-{c}"),
    ]
    assert docs[0]["subscription_ids"] == ["sub-a1", "sub-a2"]
    assert docs[0]["guard"] == "brake"
    assert docs[0]["age_seconds"] >= 120 * 60
    assert (code, err) == (0, "")
    header, *rows, summary = out.splitlines()
    assert header.split()[:4] == ["customer", "command", "subscriptions", "guard"]
    (row_a,) = [r for r in rows if r.startswith(a)]
    assert "sub-a1, sub-a2" in row_a
    assert "2h 0" in row_a
    assert not [r for r in rows if r.startswith(b)]
    assert re.fullmatch(r"\d+ parked suspension\(s\) pending for \d+ customer\(s\); .*", summary)


def test_approve_by_customer_writes_one_approval_per_command_keyed_by_customer_and_again_the_same(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = unique("cli-approve-x"), unique("cli-approve-y")
    commands = [f"suspend-{x}-1", f"suspend-{x}-2"]
    asyncio.run(
        write(
            kafka_bootstrap,
            [parked(x, commands[0], 60), parked(y, f"suspend-{y}", 50), parked(x, commands[1], 40)],
        )
    )
    argv = ["access", "approve", "--customer", x, "--by", "mei.lin", "--reason", "checked"]
    start = asyncio.run(end_offsets(kafka_bootstrap, APPROVALS.name))

    dry_code, dry_out, _ = run(capsys, *argv, "--bootstrap", kafka_bootstrap)
    assert dry_code == 0
    assert dry_out.splitlines()[-1].startswith("dry run: 2 of ")
    assert asyncio.run(end_offsets(kafka_bootstrap, APPROVALS.name)) == start  # nothing sent

    first_code, first_out, first_err = run(capsys, *argv, "--send", "--bootstrap", kafka_bootstrap)
    again_code, again_out, _ = run(capsys, *argv, "--send", "--bootstrap", kafka_bootstrap)

    assert (first_code, first_err, again_code) == (0, "", 0)
    first, again = sent(first_out), sent(again_out)
    assert [(t, i, c) for t, i, c, _, _ in first] == [
        ("access.approve", f"approve-{commands[0]}", x),
        ("access.approve", f"approve-{commands[1]}", x),
    ]
    assert [i for _, i, _, _, _ in again] == [i for _, i, _, _, _ in first]
    records = approvals_after(kafka_bootstrap, start, {x, y}, 4)
    assert [(r.partition, r.offset) for r in records[:2]] == [(p, o) for *_, p, o in first]
    events = [decode(r.value) for r in records]
    assert all(isinstance(e, AccessApprove) for e in events)
    assert all(r.key == x.encode() for r in records)  # y was not selected
    assert [e.event_id for e in events] == [
        f"approve-{commands[0]}",
        f"approve-{commands[1]}",
    ] * 2  # the repeat: the same ids, which access-control applies once
    assert {(e.data.command_id, e.data.by, e.data.reason) for e in events} == {
        (commands[0], "mei.lin", "checked"),
        (commands[1], "mei.lin", "checked"),
    }
    assert len({r.partition for r in records}) == 1  # one customer, one partition


def test_reject_by_command_writes_that_rejection_only(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    z = unique("cli-reject-z")
    keep, drop = f"suspend-{z}-keep", f"suspend-{z}-drop"
    asyncio.run(write(kafka_bootstrap, [parked(z, keep, 20), parked(z, drop, 10)]))
    start = asyncio.run(end_offsets(kafka_bootstrap, APPROVALS.name))

    code, out, err = run(
        capsys, "access", "reject", "--command", drop, "--by", "mei.lin",
        "--reason", "paid by wire this morning", "--send", "--bootstrap", kafka_bootstrap,
    )  # fmt: skip

    assert (code, err) == (0, "")
    assert [(t, i, c) for t, i, c, _, _ in sent(out)] == [("access.reject", f"reject-{drop}", z)]
    (record,) = approvals_after(kafka_bootstrap, start, {z}, 1)
    event = decode(record.value)
    assert isinstance(event, AccessReject)
    assert (record.key, event.event_id, event.customer_id) == (z.encode(), f"reject-{drop}", z)
    assert (event.data.command_id, event.data.reason) == (drop, "paid by wire this morning")
    # The decision is access-control's to apply: until it unparks, both are still pending.
    assert {d["command_id"] for d in pending_json(capsys, kafka_bootstrap, {z})} == {keep, drop}


def test_a_selection_that_matches_nothing_sends_nothing(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(ensure_catalog(kafka_bootstrap))
    # End what any test left parked, as access-control would: then nothing is pending.
    still = pending_json(capsys, kafka_bootstrap)
    asyncio.run(
        write(kafka_bootstrap, [unparked(d["customer_id"], d["command_id"]) for d in still])
    )
    start = asyncio.run(end_offsets(kafka_bootstrap, APPROVALS.name))
    common = ["--by", "mei.lin", "--reason", "x", "--send", "--bootstrap", kafka_bootstrap]
    nobody = unique("cli-nobody")

    all_code, _, all_err = run(capsys, "access", "approve", "--all", *common)
    who_code, _, who_err = run(capsys, "access", "reject", "--customer", nobody, *common)
    listed_code, listed, _ = run(capsys, "access", "pending", "--bootstrap", kafka_bootstrap)

    assert pending_json(capsys, kafka_bootstrap) == []
    assert (listed_code, listed) == (0, "no parked suspensions pending on access.events.v1\n")
    assert (all_code, who_code) == (2, 2)
    assert all_err == (
        "billstate access approve: --all: no parked suspension is pending on"
        " access.events.v1; nothing sent\n"
    )
    assert who_err == (
        f"billstate access reject: --customer: no parked suspension pending for {nobody};"
        " nothing sent\n"
    )
    assert asyncio.run(end_offsets(kafka_bootstrap, APPROVALS.name)) == start
