"""Exposure on a real broker: a delinquent customer whose cost lines go above the policy's
threshold gets one `exposure_high` notice, delivered once; paying brings the exposure to [].

The four services run as processes under fresh consumer groups, with a policy file written
from policies/standard.yaml plus `exposure: {escalate_above: {USD: "5000.00"}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from billstate_cli.drive import Driver
from billstate_cli.local import Fleet

from .conftest import POLICY, ROOT, Pipeline, load_jsonl

pytestmark = pytest.mark.broker

CUSTOMER = "contoso-exposure"
INVOICE_REF = "G012345678"  # Microsoft's invoice number on the partner's reconciliation lines


def cost(sub: str, start: str, end: str, amount: str) -> dict[str, Any]:
    """A cost line with the ids `billstate costs import` and the poller give it."""
    cost_id = f"{INVOICE_REF}:{CUSTOMER}:{sub}:{start}:{end}"
    return {
        "event_id": f"cost:{cost_id}",
        "event_type": "cost.recorded",
        "schema_version": 1,
        "occurred_at": f"{start}T00:00:00+00:00",
        "customer_id": CUSTOMER,
        "data": {
            "cost_id": cost_id,
            "subscription_id": sub,
            "charge_start": start,
            "charge_end": end,
            "amount": amount,
            "currency": "USD",
            "invoice_ref": INVOICE_REF,
        },
    }


# INV-2026-0001 (issued 2026-11-01, no period) bills October: its two subscriptions' October
# lines count (6,500.00 > 5,000.00); November's line bills no unpaid period and does not.
COSTS = [
    cost("sub-7c1e9a", "2026-10-01", "2026-10-31", "4000.00"),
    cost("sub-55d0f2", "2026-10-01", "2026-10-31", "2500.00"),
    cost("sub-7c1e9a", "2026-11-01", "2026-11-30", "900.00"),
]
EXPOSED = [{"amount": "6500.00", "currency": "USD"}]


def policy_file(tmp: Path) -> Path:
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    doc["exposure"] = {"escalate_above": {"USD": "5000.00"}}
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def mine(outcome_topic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in outcome_topic if e["customer_id"] == CUSTOMER]


async def test_one_exposure_high_notice_and_exposure_cleared_by_paying(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-exposure")
    issued = next(i for i, e in enumerate(events) if e["event_type"] == "invoice.issued")
    paid = next(i for i, e in enumerate(events) if e["event_type"] == "payment.received")
    mid = next(i for i, e in enumerate(events) if e["event_id"] == "tick-2026-12-10T01:00Z")
    run = Pipeline(kafka_bootstrap, tmp_path)
    # The conftest's Pipeline runs policies/standard.yaml: the same run, on this policy.
    run.fleet = Fleet(tmp_path, kafka_bootstrap, policy_file(tmp_path), run.fleet.extra_env)
    try:
        await run.start()
        # The lines arrive after their invoice, each twice (a redelivery).
        await run.drive([*events[: issued + 1], *COSTS, *events[issued + 1 : mid]], twice=True)
        # Later ticks, and the lines redelivered once more, while still delinquent.
        await run.drive([*COSTS, *events[mid:paid]])
        await run.drive(events[paid:])
        # access-control is left out: it reads collections.events.v1 only when it watches
        # commitments, so its group never commits there in this run.
        groups = {s: g for s, g in run.groups.items() if s != "access-control"}
        async with Driver(kafka_bootstrap, groups) as driver:
            await driver.settle()
        outcome = await run.outcome()
    finally:
        run.fleet.stop()

    notices = mine(outcome.topics["notifications.requests.v1"])
    high = [n for n in notices if n["data"]["kind"] == "exposure_high"]
    assert len(high) == 1, [n["data"]["kind"] for n in notices]
    (notice,) = high
    assert notice["data"]["audience"] == "partner"
    facts = notice["data"]["facts"]
    assert facts["exposure"] == EXPOSED
    assert facts["above"] == [
        {
            "currency": "USD",
            "amount": "6500.00",
            "threshold": "5000.00",
            "subscription_ids": ["sub-55d0f2", "sub-7c1e9a"],
        }
    ]
    assert facts["days_past_due"] is not None  # sent while delinquent
    delivered = [
        d
        for d in outcome.topics["notifications.deliveries.v1"]
        if d["event_type"] == "notice.delivered"
        and d["data"]["notice_id"] == notice["data"]["notice_id"]
    ]
    assert len(delivered) == 1
    # Every partner notice after the lines carries the exposure too.
    for n in notices:
        if n["data"]["audience"] == "partner" and n["data"]["facts"].get("exposure"):
            assert n["data"]["facts"]["exposure"] == EXPOSED

    states = [s["data"] for s in mine(outcome.topics["collections.state.v1"])]
    exposures = [s["exposure"] for s in states]
    # [] before the lines, the first line's, both October lines' until the payment, then [].
    # Changes handled in one batch give one state record, the last (docs/contracts.md,
    # collections.state.v1): the first line's may be folded into both lines'.
    runs = [e for i, e in enumerate(exposures) if i == 0 or e != exposures[i - 1]]
    first_line = [{"amount": "4000.00", "currency": "USD"}]
    assert runs in ([[], first_line, EXPOSED, []], [[], EXPOSED, []])
    assert states[-1]["stage"] == "current"
    assert not states[-1]["delinquent"]
