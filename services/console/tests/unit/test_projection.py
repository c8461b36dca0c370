"""The projection: events to rows, idempotent by event id, independent of the order in
which the topics interleave (a rebuilt store equals the incrementally built one)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from billstate_console.domain.projection import Customer, project, redact
from billstate_console.store import Store
from billstate_shared.contracts import Event, StageEntered
from billstate_shared.contracts.examples import EXAMPLES

MakeStore = Callable[[], Store]  # the `make_store` fixture (tests/conftest.py)


def fill(store: Store, events: list[Event]) -> Store:
    for event in events:
        store.apply(event)
    return store


def build(events: list[Event]) -> Store:
    """In SQLite in memory: the property test builds hundreds of stores."""
    return fill(Store(":memory:"), events)


def test_the_lifecycle_ends_current_with_its_why_and_timeline(store: Store) -> None:
    contoso = store.customer("contoso")
    assert contoso is not None
    assert (contoso.name, contoso.locale, contoso.stage) == ("Contoso Ltd.", "zh-TW", "current")
    assert contoso.since == "2026-12-26"
    assert contoso.why is not None
    assert "payment.received pay-5521-received left no overdue balance" in contoso.why
    assert contoso.overdue == ()
    assert (contoso.next_stage, contoso.next_on) == ("overdue", "2026-12-26")
    timeline = store.timeline("contoso")
    assert [e.occurred_at for e in timeline] == sorted(
        (e.occurred_at for e in timeline), reverse=True
    )
    types = {e.event_type for e in timeline}
    assert {
        "customer.upserted",
        "invoice.issued",
        "payment.received",
        "collections.stage_entered",
        "access.suspended",
        "access.restored",
        "notice.requested",
        "notice.delivered",
    } <= types
    stages = [e.summary for e in reversed(timeline) if e.event_type.endswith("stage_entered")]
    assert stages == [
        "entered overdue (from current)",
        "entered final notice (from overdue)",
        "entered suspended (from final notice)",
        "entered current (from suspended)",
    ]
    assert all(e.why for e in timeline if e.kind == "decision")


def test_the_suspension_is_shown_mid_history(history: list[Event], make_store: MakeStore) -> None:
    suspended = next(
        i
        for i, e in enumerate(history)
        if isinstance(e, StageEntered) and e.data.stage == "suspended"
    )
    partial = fill(make_store(), history[: suspended + 1])
    contoso = partial.customer("contoso")
    assert contoso is not None
    assert contoso.stage == "suspended"
    assert contoso.overdue == (("USD", "1450.00"),)
    assert contoso.why is not None
    assert "21 days past due" in contoso.why


def test_a_redelivered_record_changes_nothing(history: list[Event], store: Store) -> None:
    before = store.rows()
    assert not any(store.apply(event) for event in history)
    assert store.rows() == before


def test_rebuilt_from_the_topics_equals_built_incrementally(
    history: list[Event], make_store: MakeStore
) -> None:
    incremental = fill(make_store(), history)
    # A rebuild reads topic by topic (partitions interleave however they like), with
    # redeliveries of some records on top.
    by_topic = sorted(history, key=lambda e: e.event_type)
    rebuilt = fill(make_store(), by_topic + by_topic[::3])
    assert rebuilt.rows() == incremental.rows()


@settings(max_examples=30, deadline=None)
@given(rnd=st.randoms(use_true_random=False))
def test_any_order_gives_the_same_rows(history: list[Event], rnd: random.Random) -> None:
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert build(shuffled).rows() == build(history).rows()


def test_clock_ticks_and_policies_touch_no_customer() -> None:
    for event_type in ("clock.tick", "policy.accepted"):
        change = project(None, EXAMPLES[event_type])
        assert (change.customer, change.entry) == (None, None)


def test_collections_state_sets_the_next_step_without_a_timeline_entry() -> None:
    state = EXAMPLES["collections.state"]
    change = project(None, state)
    assert change.entry is None
    assert change.customer == Customer(
        customer_id="contoso",
        stage="reminder",
        overdue=(("USD", "1250.00"),),
        as_of="2026-12-18",
        days_past_due=17,
        standing_at=change.customer.standing_at if change.customer else "",
        next_stage="final_notice",
        next_on="2027-01-11",
        state=change.customer.state if change.customer else None,
        next_at=change.customer.next_at if change.customer else "",
    )
    assert change.customer is not None
    assert change.customer.state is not None
    kept = json.loads(change.customer.state)
    assert kept["policy"] == {"name": "standard", "version": 3}
    assert [(h["kind"], h["until"]) for h in kept["holds"]] == [("promise_to_pay", "2027-01-10")]


def test_an_older_state_does_not_overwrite_a_newer_stage() -> None:
    newer = project(None, EXAMPLES["collections.stage_entered"]).customer  # 2026-12-16
    assert newer is not None
    older_state = EXAMPLES["collections.state"].model_copy(
        update={"occurred_at": EXAMPLES["collections.stage_entered"].occurred_at.replace(year=2025)}
    )
    after = project(newer, older_state).customer
    assert after is not None
    assert after.stage == newer.stage
    assert after.as_of == newer.as_of
    assert after.next_stage == "final_notice"  # the next step had no newer writer


def test_redact_hides_addresses_only() -> None:
    raw = EXAMPLES["customer.upserted"].model_dump_json()
    shown = json.loads(redact(raw))
    assert shown["data"]["billing_email"] == "[redacted]"
    assert shown["data"]["partner_contact_email"] == "[redacted]"
    assert shown["data"]["name"] == json.loads(raw)["data"]["name"]
