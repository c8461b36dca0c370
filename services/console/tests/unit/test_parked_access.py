"""A subscription shows "parked" exactly while a parked suspension that names it waits; what
the provider reported is kept apart, so approve, reject and cancel end right in any order."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig
from billstate_console.store import Store
from billstate_console.web import build_app, subscriptions
from billstate_shared.contracts import Event, decode
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)
CID = "northwind"
# access-control stamps access.parked and the access.suspended that follows an approval with
# the command's time: the same occurred_at.
COMMAND_AT = "2026-03-02T01:00:00Z"


def ev(event_type: str, event_id: str, at: str, data: dict[str, Any]) -> Event:
    body = {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": at,
        "customer_id": CID,
        "data": data,
    }
    return decode(json.dumps(body))


def before() -> list[Event]:
    """sub-1 was active; the profile names sub-1 and sub-2; cmd-9 (both) is parked."""
    return [
        ev("customer.upserted", "profile", "2026-01-01T00:00:00Z", {
            "name": "Northwind", "locale": "en", "billing_email": "ap@northwind.example",
            "partner_contact_email": "am@partner.example", "tags": [],
            "subscription_ids": ["sub-1", "sub-2"],
        }),
        ev("access.restored", "restored-sub-1", "2026-02-01T00:00:00Z",
           {"command_id": "cmd-1", "subscription_id": "sub-1", "provider": "partner_center"}),
        ev("access.parked", "parked-cmd-9", COMMAND_AT, {
            "command_id": "cmd-9", "subscription_ids": ["sub-1", "sub-2"],
            "provider": "partner_center", "guard": "brake", "reason": "11 suspensions today",
        }),
    ]  # fmt: skip


def unparked(outcome: str) -> Event:
    data = {"command_id": "cmd-9", "outcome": outcome, "by": "ops-anna", "reason": "checked"}
    return ev("access.unparked", f"unparked-cmd-9-{outcome}", "2026-03-02T05:00:00Z", data)


def suspended(sub: str) -> Event:
    data = {"command_id": "cmd-9", "subscription_id": sub, "provider": "partner_center"}
    return ev("access.suspended", f"suspended-cmd-9-{sub}", COMMAND_AT, data)


ENDINGS = {
    # approved, then applied: the provider's reports come with the command's time
    "approved": ([unparked("approved"), suspended("sub-1"), suspended("sub-2")],
                 {"sub-1": "suspended", "sub-2": "suspended"}),
    # rejected: nothing was sent, sub-1 stays as last reported, sub-2 was never reported
    "rejected": ([unparked("rejected")], {"sub-1": "active", "sub-2": "unknown"}),
    # cancelled by a restore (the customer paid while it waited)
    "cancelled": ([unparked("cancelled")], {"sub-1": "active", "sub-2": "unknown"}),
}  # fmt: skip


def shown(store: Store) -> dict[str, str]:
    customer = store.customer(CID)
    assert customer is not None
    rows = subscriptions(customer, store.access(CID), store.parked(CID))
    return {r["subscription_id"]: r["access"] for r in rows}


def test_parked_while_it_waits(make_store: MakeStore) -> None:
    store = make_store()
    for event in before():
        store.apply(event)
    assert shown(store) == {"sub-1": "parked", "sub-2": "parked"}
    customer = store.customer(CID)
    assert customer is not None
    rows = subscriptions(customer, store.access(CID), store.parked(CID))
    # The provider's own report stays beside the overlay.
    assert [(r["reported"], r["parked_command"]) for r in rows] == [
        ("active", "cmd-9"),
        ("unknown", "cmd-9"),
    ]
    assert rows[0]["detail"] == "brake guard: 11 suspensions today"


@pytest.mark.parametrize("outcome", sorted(ENDINGS))
def test_every_ending_in_every_order_on_sqlite(outcome: str) -> None:
    ending, expected = ENDINGS[outcome]
    events = [*before(), *ending]
    for order in itertools.permutations(events):
        store = Store(":memory:")
        for event in order:
            store.apply(event)
        assert shown(store) == expected, [e.event_id for e in order]
        assert store.parked() == []


@pytest.mark.parametrize("outcome", sorted(ENDINGS))
def test_every_ending_forward_and_backward(make_store: MakeStore, outcome: str) -> None:
    ending, expected = ENDINGS[outcome]
    events = [*before(), *ending]
    forward, backward = make_store(), make_store()
    for event in events:
        forward.apply(event)
    for event in [*reversed(events), *events[::2]]:  # with redeliveries
        backward.apply(event)
    assert shown(forward) == shown(backward) == expected
    assert forward.rows() == backward.rows()


async def test_the_page_and_the_api_say_it(make_store: MakeStore) -> None:
    store = make_store()
    for event in before():
        store.apply(event)
    auth = AuthConfig(tokens=(("parked-viewer", "viewer"),))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
    headers = {"Authorization": "Bearer parked-viewer"}
    async with TestClient(TestServer(app)) as client:
        async with client.get(f"/api/customers/{CID}", headers=headers) as answer:
            subs = (await answer.json())["subscriptions"]
        assert [s["access"] for s in subs] == ["parked", "parked"]
        for event in ENDINGS["approved"][0]:
            store.apply(event)
        async with client.get(f"/customers/{CID}?lang=zh-TW", headers=headers) as answer:
            html = await answer.text()
    assert '<tr class="access suspended"><td>sub-1</td><td>已暫停</td>' in html
    assert "待核准" not in html.split('id="subscriptions"', 1)[1].split("</table>", 1)[0]
