"""What the worker writes per event, built the fast way, equals the validated way byte for
byte: the `collections.state` record against the contract model, and the table's book."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from driver import Driver
from scenario import standard

from billstate_collections.domain.assess import assess
from billstate_collections.domain.book import Book
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import stage_name
from billstate_collections.domain.schedule import projected_entries
from billstate_collections.domain.snapshot import state_data, state_record
from billstate_shared.contracts import (
    CollectionsState,
    CollectionsStateData,
    Hold,
    Money,
    NextStage,
    PolicyRef,
    decode,
    encode,
)
from billstate_shared.domain.ids import make_id
from billstate_shared.domain.policy import Policy

# `billstate simulate`'s history of 60 customers over 120 days (seed 11), recorded: customers,
# invoices, payments in parts and late, failures, holds, adjustments, a void and a reversal.
HISTORY = Path(__file__).resolve().parents[1] / "golden" / "history-60x120-seed11.jsonl"


def state_event(book: Book, policy: Policy, occurred_at: datetime) -> CollectionsState:
    """`state_record` as the validated contract model."""
    model = state_record(book, policy, occurred_at).model()
    assert isinstance(model, CollectionsState)
    return model


def reference_state(book: Book, policy: Policy, occurred_at: datetime) -> CollectionsState:
    """The state record as the contract models build it, each value validated."""
    a = assess(book, book.as_of, policy) if book.as_of is not None else None
    upcoming = (
        projected_entries(book, policy, book.as_of, climbs_today=False)
        if book.as_of is not None
        else []
    )
    data = CollectionsStateData(
        stage=stage_name(policy, book.stage),
        delinquent=bool(a and a.delinquent),
        overdue=[Money(amount=amt, currency=c) for c, amt in a.overdue] if a else [],
        anchor_due_on=a.anchor.due_on if a and a.anchor else None,
        days_past_due=a.days_past_due if a else None,
        as_of=book.as_of,
        holds=[
            Hold(
                hold_id=h.hold_id,
                kind=h.kind,  # type: ignore[arg-type]
                invoice_id=h.invoice_id,
                amount=h.amount,
                until=h.until,
                reason=h.reason,
                by=h.by,
                placed_on=h.placed_on,
            )
            for h in sorted(book.holds.values(), key=lambda h: h.hold_id)
        ],
        suspended_subscription_ids=list(book.suspended),
        next=NextStage(stage=policy.stages[upcoming[0][0]].name, earliest_on=upcoming[0][1])
        if upcoming
        else None,
        policy=PolicyRef(name=policy.name, version=policy.version),
    )
    return CollectionsState(
        event_id=make_id(
            "state", book.customer_id, book.ledger.version, book.version, book.transitions,
            book.as_of,
        ),
        event_type="collections.state",
        occurred_at=occurred_at,
        customer_id=book.customer_id,
        data=data,
    )  # fmt: skip


def test_state_records_and_books_equal_the_validated_forms_over_a_history() -> None:
    policy = standard()
    driver = Driver(policy)
    checked, holds, stages = 0, 0, set()
    for line in HISTORY.read_bytes().splitlines():
        event = decode(line)
        out = driver.feed(event)
        touched = {o.customer_id for o in out if o.event_type == "invoice.aged"}
        touched.add(event.customer_id)
        for book in [driver.books[c] for c in sorted(touched) if c in driver.books]:
            record = state_record(book, policy, event.occurred_at)
            expected = encode(reference_state(book, policy, event.occurred_at))
            assert record.encode() == expected
            assert encode(state_event(book, policy, event.occurred_at)) == expected
            assert state_data(book, policy) == reference_state(book, policy, event.occurred_at).data
            raw = dump_book(book, policy)
            again = load_book(json.loads(json.dumps(raw)), policy)
            assert dump_book(again, policy) == raw
            checked += 1
            holds += len(book.holds)
            stages.add(book.stage)
    assert checked > 1000
    # The history reaches holds and the ladder.
    assert holds > 0
    assert len(stages) > 3


def test_a_partition_faust_has_not_committed_on_keeps_its_entries() -> None:
    """faust's committed-offset map is a defaultdict(None): a None offset is "nothing
    committed", not a crash (it dead-lettered an invoice in the 1M-customer bench)."""
    from collections import defaultdict

    from faust.types import TP

    from billstate_collections.handlers import uncommitted

    # faust's map is keyed by TP named tuples; the handler looks plain tuples up in it.
    committed: defaultdict[tuple[str, int], int | None] = defaultdict(lambda: None)
    committed[TP("billing.invoices.v1", 0)] = None
    committed[TP("billing.invoices.v1", 1)] = 10
    sent = [
        ["billing.invoices.v1", 0, 3, []],
        ["billing.invoices.v1", 1, 9, []],
        ["billing.invoices.v1", 1, 10, []],
        ["billing.payments.v1", 2, 0, []],
    ]
    assert uncommitted(sent, committed) == [sent[0], sent[2], sent[3]]
