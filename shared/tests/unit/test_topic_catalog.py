"""The topic catalog's invariants: one home per event type, co-partitioning, compaction, DLQs."""

from __future__ import annotations

from billstate_shared.topics import (
    ACCESS_COMMANDS,
    ACCESS_EVENTS,
    APPROVALS,
    CASES,
    CATALOG,
    CONTROL,
    COSTS,
    CUSTOMER_PARTITIONS,
    CUSTOMERS,
    DLQ_TOPICS,
    EVENT_TOPICS,
    EVENTS,
    INVOICES,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
    PAYMENTS,
    STATE,
    SUPPORT,
    group_inputs,
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


def test_a_dlq_is_written_by_the_readers_of_its_topic_and_observed_by_the_console() -> None:
    of = {t.dlq: t for t in EVENT_TOPICS}
    for dlq in DLQ_TOPICS:
        assert dlq.is_dlq
        assert dlq.writers == of[dlq.name].readers, dlq.name
        assert dlq.readers == ()  # nobody refuses a dead letter: no DLQ of a DLQ
        assert dlq.observers == ("console",), dlq.name


def test_observers_get_no_dead_letter_topic() -> None:
    observed_only = [t for t in EVENT_TOPICS if t.observers and not t.readers]
    assert CASES in observed_only
    dlqs = {t.name for t in DLQ_TOPICS}
    for t in observed_only:
        assert t.dlq not in dlqs, t.name
    assert not [t for t in CATALOG if set(t.readers) & set(t.observers)]


def test_the_console_observes_the_read_model_topics_and_every_dlq() -> None:
    observed = {
        CUSTOMERS, INVOICES, PAYMENTS, COSTS, CONTROL, SUPPORT, STATE, EVENTS, ACCESS_COMMANDS,
        ACCESS_EVENTS, APPROVALS,
        CASES, NOTICE_REQUESTS, NOTICE_DELIVERIES, *DLQ_TOPICS,
    }  # fmt: skip
    assert {t for t in CATALOG if "console" in t.observers} == observed
    assert set(group_inputs("console")) == observed
    assert len(group_inputs("console")) == len(observed)  # each once


def test_the_console_writes_operator_actions_and_cases_on_their_topics() -> None:
    assert CASES.name == "operations.cases.v1"
    assert topic_for("case.acknowledged") is CASES
    assert topic_for("case.resolved") is CASES
    assert CASES.writers == ("console",)
    assert CASES.retention_days is None  # the audit trail of escalations outlives retention
    assert "console" in CONTROL.writers
    assert "console" in APPROVALS.writers
    assert [t.name for t in CATALOG if "operator API" in t.writers] == []


def test_group_inputs_are_what_a_service_reads_in_its_group() -> None:
    # A service's own reads, never the DLQs, minus what it reads outside its group.
    assert [t.name for t in group_inputs("notifications")] == [
        CUSTOMERS.name,
        ACCESS_EVENTS.name,
        NOTICE_REQUESTS.name,
    ]
    assert PAYMENTS not in group_inputs("access-control")
    for service in ("invoicing", "collections", "access-control", "notifications"):
        assert not [t for t in group_inputs(service) if t.is_dlq], service


def test_cost_lines_come_in_from_three_writers_and_only_collections_reads_them() -> None:
    assert topic_for("cost.recorded") is COSTS
    assert COSTS.name == "billing.costs.v1"
    assert (COSTS.key, COSTS.partitions) == ("customer_id", CUSTOMER_PARTITIONS)
    assert COSTS.readers == ("collections",)
    assert set(COSTS.writers) == {"billing bus", "billstate CLI", "access-control"}
    assert COSTS.observers == ("console",)
    assert COSTS in group_inputs("collections")
    assert COSTS not in group_inputs("access-control")  # it writes cost lines, never reads them
