"""The topic catalog's invariants: one home per event type, co-partitioning, compaction, DLQs."""

from __future__ import annotations

from billstate_shared.topics import (
    CATALOG,
    CUSTOMER_PARTITIONS,
    DLQ_TOPICS,
    EVENT_TOPICS,
    topic_for,
)


def test_every_event_type_has_exactly_one_topic() -> None:
    from billstate_shared.contracts import EVENT_TYPES

    carried = [et for t in EVENT_TOPICS for et in t.event_types]
    assert sorted(carried) == sorted(EVENT_TYPES)
    assert len(carried) == len(set(carried))
    for event_type in EVENT_TYPES:
        assert event_type in topic_for(event_type).event_types


def test_customer_keyed_topics_are_co_partitioned() -> None:
    keyed = [t for t in CATALOG if t.key in ("customer_id", "*")]
    assert {t.partitions for t in keyed} == {CUSTOMER_PARTITIONS}
    # The one topic keyed otherwise: one record per consumer group, read whole at start-up.
    assert [(t.name, t.partitions) for t in CATALOG if t not in keyed] == [
        ("collections.policies.v1", 1),
        ("collections.policies.v1.dlq", 1),
    ]


def test_compacted_topics_are_the_latest_wins_ones() -> None:
    compacted = {t.name for t in CATALOG if t.cleanup == "compact"}
    assert compacted == {"billing.customers.v1", "collections.state.v1", "collections.policies.v1"}
    for t in CATALOG:
        assert t.config["retention.ms"] == (
            "-1" if t.cleanup == "compact" else t.config["retention.ms"]
        )


def test_every_read_topic_has_a_dead_letter_topic() -> None:
    dlqs = {t.name for t in DLQ_TOPICS}
    for t in EVENT_TOPICS:
        assert (t.dlq in dlqs) == bool(t.readers), t.name
    names = [t.name for t in CATALOG]
    assert len(names) == len(set(names))


def test_topic_names_are_versioned() -> None:
    for t in EVENT_TOPICS:
        assert t.name.endswith(".v1")
