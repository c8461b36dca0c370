"""A customer's own time zone (`customer.upserted.timezone`): due dates, days past due, business
days, reminders and holds are counted in it. The property: the same history, lived at the same
local wall-clock times by customers in another zone (ticks included), decides the same things
on the same local dates."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from scenario import TAIPEI, Story, d, run, standard
from test_properties import POLICIES, SETTINGS, histories

from billstate_shared.contracts import ClockTick, Event, decode, encode
from billstate_shared.domain.policy import Policy

ZONES = ("America/New_York", "Pacific/Kiritimati", "America/Bogota", "Europe/London", "UTC")


def _moved(moment: datetime, zone: ZoneInfo) -> str:
    """The same wall-clock time as in Taipei, in `zone`."""
    local = moment.astimezone(TAIPEI).replace(tzinfo=zone)
    return local.isoformat()


def relocated(events: list[Event], zone_name: str | None) -> list[Event]:
    """The history with every customer in `zone_name` (None: the policy's zone, Taipei):
    each customer's first record is an upsert naming the zone, every upsert carries it, and
    every time (ticks too) is the same local time there."""
    zone = ZoneInfo(zone_name) if zone_name else TAIPEI
    out: list[Event] = []
    seen: set[str] = set()
    for event in events:
        doc: dict[str, Any] = json.loads(encode(event))
        doc["occurred_at"] = _moved(event.occurred_at, zone)
        customer = doc["customer_id"]
        if not isinstance(event, ClockTick) and customer not in seen:
            seen.add(customer)
            first = Story(customer=customer).upsert()
            upsert: dict[str, Any] = json.loads(encode(first))
            upsert["occurred_at"] = doc["occurred_at"]
            upsert["data"]["timezone"] = zone_name
            out.append(decode(json.dumps(upsert).encode()))
        if doc["event_type"] == "customer.upserted":
            doc["data"]["timezone"] = zone_name
        out.append(decode(json.dumps(doc).encode()))
    return out


def decisions(events: list[Event], policy: Policy) -> dict[str, list[dict[str, Any]]]:
    """What was decided for each customer, in order, without the moments (which are the
    relocated times). Across customers a tick's order is not a decision: a zone of its own
    activates invoices in another order, as another partition would."""
    found: dict[str, list[dict[str, Any]]] = {}
    for output in run(events, policy=policy).outputs:
        doc = json.loads(encode(output))
        del doc["occurred_at"]
        found.setdefault(doc["customer_id"], []).append(doc)
    return found


@SETTINGS
@given(POLICIES, histories(), st.sampled_from(ZONES))
def test_the_same_local_history_in_another_zone_decides_the_same(
    policy: Policy, events: list[Event], zone: str
) -> None:
    at_home = decisions(relocated(events, None), policy)
    abroad = decisions(relocated(events, zone), policy)
    assert abroad == at_home


def test_a_customer_is_aged_in_its_own_zone() -> None:
    # 2026-11-02 01:00 UTC is 09:00 in Taipei but still 2026-11-01 in New York: INV-1 (due
    # 11-01) is overdue for the Taipei customer and not yet for the New York one.
    tick = Story().tick("2026-11-02T01:00:00+00:00")
    at_home, abroad = Story(customer="tw"), Story(customer="ny")
    r = run(
        at_home.upsert(subs=["s"]),
        abroad.upsert(subs=["s"]),
        abroad.issue("INV-1", "100.00", "2026-11-01"),
        at_home.issue("INV-1", "100.00", "2026-11-01"),
        policy=standard(),
    )
    ny = json.loads(encode(abroad.upsert(subs=["s"])))
    ny["data"]["timezone"] = "America/New_York"
    r.feed(decode(json.dumps(ny).encode()), tick)
    assert [stage for _, stage in r.stages("tw")] == ["overdue"]
    assert r.stages("ny") == []
    r.feed(Story().tick("2026-11-02T14:00:00+00:00"))  # 09:00 in New York
    assert r.stages("ny") == [(d("2026-11-02"), "overdue")]


def test_a_promise_is_capped_from_its_own_date_in_the_customers_zone() -> None:
    # Placed at 23:30 on 11-05 in New York, before that day's tick: capped at 11-05 + 30.
    s = Story(customer="ny")
    upsert = json.loads(encode(s.upsert(subs=["s"])))
    upsert["data"]["timezone"] = "America/New_York"
    r = run(
        decode(json.dumps(upsert).encode()),
        s.issue("INV-1", "100.00", "2026-11-01"),
        s.tick("2026-11-01T14:00:00+00:00"),
        s.promise("H-1", "2027-03-01"),
        policy=standard(),
    )
    r.feed(s.promise("H-2", "2027-03-01"))
    late = json.loads(encode(s.promise("H-3", "2027-03-01")))
    late["occurred_at"] = "2026-11-06T04:30:00+00:00"  # 2026-11-05 23:30 in New York
    r.feed(decode(json.dumps(late).encode()))
    assert r.book("ny").holds["H-3"].until == d("2026-12-05")
    assert r.book("ny").holds["H-3"].placed_on == d("2026-11-05")
