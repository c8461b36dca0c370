"""A payment claimed through the helpdesk, on a real broker: the four services and the console
as processes, the customer due for suspension tomorrow files `payment_claimed` today."""

from __future__ import annotations

import json
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.drive import tick_event
from billstate_cli.local import CONSOLE
from billstate_cli.summary import ends_now
from billstate_shared.topics import group_inputs

from .conftest import ROOT, Pipeline
from .test_guards_broker import TAIPEI, customer_with_invoice, envelope

pytestmark = pytest.mark.broker

POLICY = ROOT / "policies" / "support.yaml"  # the standard ladder, a 3-business-day claim hold
DUE = date(2026, 3, 2)  # a Monday; the suspend stage is due 21 days later, with no calendar
SUSPEND_DUE = DUE + timedelta(days=21)
FILED = SUSPEND_DUE - timedelta(days=1)  # the day before
HELD_TO = FILED + timedelta(days=3)  # three business days after it (every day is one here)


def tick(day: date) -> dict[str, Any]:
    return tick_event(datetime.fromisoformat(f"{day.isoformat()}T09:00:00{TAIPEI}"))


def claim(customer: str) -> dict[str, Any]:
    return envelope("support.requested", customer, f"{customer}-claim", FILED, {
        "ticket_id": f"ZD-{customer}", "topic": "payment_claimed", "channel": "email",
        "summary": "We paid by bank transfer yesterday",
    })  # fmt: skip


def suspensions(found: Any, customer: str) -> list[dict[str, Any]]:
    return [
        c
        for c in found.topics["access.commands.v1"]
        if c["event_type"] == "access.suspend" and c["customer_id"] == customer
    ]


def timeline(pipeline: Pipeline, customer: str) -> list[dict[str, Any]]:
    console = pipeline.fleet.get(CONSOLE)
    request = urllib.request.Request(
        console.url(f"/api/customers/{customer}/timeline"),
        headers={"Authorization": f"Bearer {pipeline.fleet.console_tokens['viewer']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
    entries: list[dict[str, Any]] = body["items"]
    return entries


async def test_a_claimed_payment_holds_the_suspension_and_the_timeline_tells_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    customer = "claims-" + tmp_path.name[-8:].replace("_", "-")
    pipeline = Pipeline(kafka_bootstrap, tmp_path, policy=POLICY)
    try:
        await pipeline.start()
        await pipeline.restart((CONSOLE,))
        before = [*customer_with_invoice(customer, DUE)]
        before += [tick(DUE + timedelta(days=n)) for n in range((FILED - DUE).days)]
        await pipeline.drive([*before, claim(customer), tick(FILED)])
        # Within the hold: the days it was due and the three after, nothing is suspended.
        await pipeline.drive([tick(FILED + timedelta(days=n)) for n in range(1, 4)])
        held = await pipeline.outcome()
        assert suspensions(held, customer) == [], "suspended within the claim hold"
        state = [
            s["data"] for s in held.topics["collections.state.v1"] if s["customer_id"] == customer
        ][-1]
        assert f"ZD-{customer}" in (state["waiting"] or "")
        assert [t["ticket_id"] for t in state["tickets"]] == [f"ZD-{customer}"]
        # Nothing was paid: the suspension comes the day after the hold.
        await pipeline.drive([tick(HELD_TO + timedelta(days=1))])
        await pipeline.settle()
        after = await pipeline.outcome()
        (suspend,) = suspensions(after, customer)
        entered = [
            e
            for e in after.topics["collections.events.v1"]
            if e["customer_id"] == customer and e["data"]["stage"] == "suspended"
        ]
        assert entered[0]["data"]["as_of"] == (HELD_TO + timedelta(days=1)).isoformat()
        assert f"ZD-{customer}" in entered[0]["data"]["why"]["text"]
        assert suspend["data"]["subscription_ids"]
        # The console's timeline shows the ticket, the wait it caused and the suspension.
        inputs = tuple(t.name for t in group_inputs(CONSOLE))
        ends = {
            (tp.topic, tp.partition): n
            for tp, n in (await ends_now(pipeline.bootstrap, inputs)).items()
        }
        pipeline.fleet.wait_caught_up(CONSOLE, ends, 120.0)
        # Newest first: the newest entry of each kind is kept.
        entries = {e["event_type"]: e for e in reversed(timeline(pipeline, customer))}
        ticket = f"ZD-{customer}"
        asked = entries["support.requested"]
        assert asked["summary"] == f"support ticket {ticket}: payment claimed (by email)"
        assert asked["why"] == "We paid by bank transfer yesterday"  # staff see the words
        suspended = entries["collections.stage_entered"]
        assert suspended["summary"].startswith("entered suspended")
        assert suspended["why"].endswith(
            f"Postponed until today: payment claimed in support ticket {ticket}"
            f" (filed {FILED.isoformat()}), held 3 business days to {HELD_TO.isoformat()}."
        )
    finally:
        pipeline.fleet.stop()
