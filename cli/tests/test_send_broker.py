"""`billstate send FILE --send` against a real broker: each event on its topic, keyed right."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from billstate_cli.main import main
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import decode
from billstate_shared.topics import CONTROL, INVOICES

pytestmark = pytest.mark.broker


def test_send_produces_each_line_to_its_topic_keyed_by_customer(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = f"cli-send-{uuid.uuid4().hex[:10]}"
    base = {
        "schema_version": 1,
        "occurred_at": "2026-12-18T11:00:00+00:00",
        "customer_id": customer,
    }
    hold = {
        **base,
        "event_id": f"{customer}-h1",
        "event_type": "hold.placed",
        "data": {"hold_id": "H1", "kind": "manual", "reason": "review", "by": "ops.alice"},
    }
    void = {
        **base,
        "event_id": f"{customer}-void",
        "event_type": "invoice.voided",
        "data": {"invoice_id": "INV-1", "reason": "issued twice"},
    }
    path = tmp_path / "fixed.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in (hold, void, hold)) + "\n", encoding="utf-8")
    asyncio.run(ensure_catalog(kafka_bootstrap))
    start = {
        **asyncio.run(end_offsets(kafka_bootstrap, CONTROL.name)),
        **asyncio.run(end_offsets(kafka_bootstrap, INVOICES.name)),
    }

    code = main(["send", str(path), "--send", "--bootstrap", kafka_bootstrap])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == f"sent 2 to {kafka_bootstrap}, 1 duplicate(s) skipped"
    records = asyncio.run(
        read_after(
            kafka_bootstrap, start, lambda rs: sum(r.key == customer.encode() for r in rs) >= 2
        )
    )
    mine = sorted((r for r in records if r.key == customer.encode()), key=lambda r: r.topic)
    assert [(r.topic, decode(r.value).event_id) for r in mine] == [
        (INVOICES.name, f"{customer}-void"),
        (CONTROL.name, f"{customer}-h1"),
    ]
