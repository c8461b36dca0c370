"""`billstate costs import --send` on a real broker: cost lines on billing.costs.v1, keyed right."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest

from billstate_cli.main import main
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after
from billstate_shared.contracts import CostRecorded, decode
from billstate_shared.topics import COSTS

pytestmark = pytest.mark.broker

EXPORT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "reconciliation.csv"
CONTOSO = "196e2273-9651-43a3-ba7e-7cbcd918fc40"
FABRIKAM = "5d2f8e1a-7b3c-4e9d-a6f0-1c2b3a4d5e6f"


def test_send_puts_one_cost_per_subscription_and_period_on_the_costs_topic(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex[:8]
    contoso, fabrikam = f"contoso-{run}", f"fabrikam-{run}"
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(f"tenant_id,customer_id\n{CONTOSO},{contoso}\n{FABRIKAM},{fabrikam}\n")
    args = ["costs", "import", str(EXPORT), "--customers", str(tenants), "--send"]
    asyncio.run(ensure_catalog(kafka_bootstrap))
    start = asyncio.run(end_offsets(kafka_bootstrap, COSTS.name))

    # Twice: a re-import sends the very same events, which collections applies once.
    for _ in range(2):
        assert main([*args, "--bootstrap", kafka_bootstrap]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"sent 3 to {kafka_bootstrap} ({COSTS.name})"
        )

    keys = {contoso.encode(), fabrikam.encode()}
    records = asyncio.run(
        read_after(kafka_bootstrap, start, lambda rs: sum(r.key in keys for r in rs) >= 6)
    )
    mine = [r for r in records if r.key in keys]
    assert {r.topic for r in mine} == {COSTS.name}
    copies = Counter(r.value for r in mine)
    assert sorted(copies.values()) == [2, 2, 2]  # the same bytes both times
    events = [decode(value) for value in copies]
    assert all(isinstance(e, CostRecorded) for e in events)
    got = sorted((e.customer_id, str(e.data.amount)) for e in events)  # type: ignore[union-attr]
    assert got == [(contoso, "120.00"), (contoso, "1390.97"), (fabrikam, "227.33")]
    # Keyed by customer: each customer's costs land on one partition.
    assert len({r.partition for r in mine if r.key == contoso.encode()}) == 1
