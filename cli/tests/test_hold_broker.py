"""`billstate hold` on a real broker: the hold arrives on collections.control.v1, keyed right."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from billstate_cli.main import main
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import HoldPlaced, HoldReleased, decode
from billstate_shared.topics import CONTROL

pytestmark = pytest.mark.broker

SENT = re.compile(r" on collections\.control\.v1 partition (\d+) offset (\d+)$")


def test_a_placed_and_released_hold_arrive_decodable_and_keyed_by_customer(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = f"cli-hold-{uuid.uuid4().hex[:10]}"
    asyncio.run(ensure_catalog(kafka_bootstrap))
    start = asyncio.run(end_offsets(kafka_bootstrap, CONTROL.name))
    common = ["--customer", customer, "--by", "ops.alice", "--bootstrap", kafka_bootstrap]

    placed = main(
        [
            "hold",
            "place",
            "--kind",
            "promise_to_pay",
            "--until",
            "2027-01-10",
            "--reason",
            "after year-end close",
            *common,
        ]
    )
    place_out = capsys.readouterr().out.strip()
    hold_id = place_out.split()[2]
    released = main(["hold", "release", "--hold-id", hold_id, "--reason", "paid", *common])
    release_out = capsys.readouterr().out.strip()

    assert (placed, released) == (0, 0)
    place_at, release_at = SENT.search(place_out), SENT.search(release_out)
    assert place_at is not None
    assert release_at is not None
    records = asyncio.run(
        read_after(
            kafka_bootstrap, start, lambda rs: sum(r.key == customer.encode() for r in rs) >= 2
        )
    )
    mine = [r for r in records if r.key == customer.encode()]
    assert [(r.partition, r.offset) for r in mine] == [
        (int(place_at[1]), int(place_at[2])),
        (int(release_at[1]), int(release_at[2])),
    ]
    first, second = (decode(r.value) for r in mine)
    assert isinstance(first, HoldPlaced)
    assert isinstance(second, HoldReleased)
    assert first.customer_id == second.customer_id == customer
    assert (first.data.hold_id, first.data.kind, str(first.data.until)) == (
        hold_id,
        "promise_to_pay",
        "2027-01-10",
    )
    assert second.data.hold_id == hold_id
    assert place_out.startswith(f"placed hold {hold_id} for customer {customer}: event ")
