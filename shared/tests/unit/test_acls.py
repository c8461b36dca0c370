"""The per-service ACLs follow from the topic catalog, and agree with the Strimzi KafkaUsers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from billstate_shared.acls import (
    SERVICES,
    Acl,
    acl_bindings,
    internal_topics,
    service_acls,
    service_grants,
)
from billstate_shared.topics import (
    ACCESS_COMMANDS,
    ACCESS_EVENTS,
    APPROVALS,
    BY_NAME,
    CASES,
    CATALOG,
    CLOCK,
    CONTROL,
    COSTS,
    CUSTOMERS,
    DLQ_TOPICS,
    DUE_DATES,
    EVENT_TOPICS,
    EVENTS,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
    PAYMENTS,
    SUPPORT,
    Topic,
)

USERS = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base" / "kafka-users.yaml"


def _topics(service: str, operation: str) -> set[str]:
    return {
        a.name
        for a in service_acls(service)
        if a.resource_type == "topic" and a.pattern == "literal" and a.operation == operation
    }


def test_access_control_reads_commands_and_writes_events_and_its_dead_letters() -> None:
    # Payments only for the newest record's time (the stale-feed guard); approvals are the
    # operators' decisions on parked suspensions; cost lines are what its Partner Center
    # poller reads from the reconciliation API; the stages say whose commitments to watch.
    reads = {ACCESS_COMMANDS.name, APPROVALS.name, PAYMENTS.name, EVENTS.name}
    dead_letters = {ACCESS_COMMANDS.dlq, APPROVALS.dlq, PAYMENTS.dlq, EVENTS.dlq}
    writes = {ACCESS_EVENTS.name, COSTS.name}
    assert _topics("access-control", "Read") == reads
    assert _topics("access-control", "Write") == {*writes, *dead_letters}
    assert _topics("access-control", "Describe") == {*writes, *reads, *dead_letters}


def test_cost_lines_are_read_by_collections_alone_and_dead_lettered_by_it() -> None:
    assert COSTS.name in _topics("collections", "Read")
    assert COSTS.dlq in _topics("collections", "Write")
    assert COSTS.name not in _topics("collections", "Write")
    for service in ("invoicing", "notifications"):
        assert COSTS.name not in {a.name for a in service_acls(service)}, service
    # The console observes the topic and its dead letters, and re-drives them to it.
    assert {COSTS.name, COSTS.dlq} <= _topics("console", "Read")
    assert COSTS.name in _topics("console", "Write")


def test_notifications_may_not_write_commands_nor_read_anything_it_does_not_consume() -> None:
    acls = service_acls("notifications")
    assert not [a for a in acls if a.name == ACCESS_COMMANDS.name]
    assert _topics("notifications", "Read") == {
        NOTICE_REQUESTS.name,
        ACCESS_EVENTS.name,
        CUSTOMERS.name,
    }
    assert _topics("notifications", "Write") == {
        NOTICE_DELIVERIES.name,
        NOTICE_REQUESTS.dlq,
        ACCESS_EVENTS.dlq,
        CUSTOMERS.dlq,
    }


def test_every_reader_may_dead_letter_what_it_reads() -> None:
    for service in SERVICES:
        assert _topics(service, "Read"), service
        reads = {t.name for t in CATALOG if service in t.readers}
        assert {f"{name}.dlq" for name in reads} <= _topics(service, "Write"), service


# The catalog's rule for re-driving: whoever re-drives may write every topic with a DLQ.
REDRIVEN = {t.name.removesuffix(".dlq") for t in DLQ_TOPICS}


def test_each_catalog_topic_is_granted_exactly_to_its_readers_and_writers() -> None:
    for topic in CATALOG:
        readers = {s for s in SERVICES if topic.name in _topics(s, "Read")}
        writers = {s for s in SERVICES if topic.name in _topics(s, "Write")}
        describers = {s for s in SERVICES if topic.name in _topics(s, "Describe")}
        redrivers = {"console"} if topic.name in REDRIVEN else set()
        assert readers == {*topic.readers, *topic.observers} & set(SERVICES), topic.name
        assert writers == {*topic.writers, *redrivers} & set(SERVICES), topic.name
        assert describers == readers | writers, topic.name


def test_each_service_is_granted_only_catalog_topics() -> None:
    for service in SERVICES:
        literal = {
            a.name for a in service_acls(service) if a.resource_type == "topic"
            and a.pattern == "literal"
        }  # fmt: skip
        assert literal <= set(BY_NAME), service


def test_observers_read_everything_they_observe_and_dead_letter_nothing() -> None:
    observed = {t.name for t in CATALOG if "console" in t.observers}
    assert observed == _topics("console", "Read")
    # Every DLQ is observed (the console lists and re-drives them), none is written by it.
    assert {t.name for t in DLQ_TOPICS} <= observed
    assert not {name for name in _topics("console", "Write") if name.endswith(".dlq")}
    # An observer is no reader: it makes no topic get a DLQ, and no DLQ names it a writer.
    assert all("console" not in t.readers for t in CATALOG)
    assert all("console" not in t.writers for t in DLQ_TOPICS)
    assert CASES.dlq not in BY_NAME


def test_the_console_writes_operator_actions_case_notes_and_re_drives() -> None:
    own = {CONTROL.name, APPROVALS.name, CASES.name, SUPPORT.name}  # SUPPORT: the helpdesk webhook
    assert _topics("console", "Write") == own | REDRIVEN
    whys = {g.name: g.why for g in service_grants("console") if "Write" in g.operations}
    assert {n for n, why in whys.items() if why == "writes"} == own
    assert {n for n, why in whys.items() if why == "re-drives"} == REDRIVEN - own
    # What is re-driven goes back to where it came from: every topic somebody reads.
    assert {t.name for t in EVENT_TOPICS if t.readers} == REDRIVEN
    for service in set(SERVICES) - {"console"}:
        assert not [g for g in service_grants(service) if g.why == "re-drives"], service


def test_the_cases_topic_is_the_consoles_alone() -> None:
    assert CASES.event_types == ("case.acknowledged", "case.resolved")
    for service in SERVICES:
        names = {a.name for a in service_acls(service)}
        assert (CASES.name in names) == (service == "console"), service
    assert {CASES.name} <= _topics("console", "Read") & _topics("console", "Write")


def test_the_consoles_groups_are_its_generations() -> None:
    groups = {a for a in service_acls("console") if a.resource_type == "group"}
    assert groups == {Acl("User:console", "group", "console-", "prefix", "Read")}
    # A test's base group gets the same treatment: `<base>-<generation>`.
    named = {
        (a.name, a.pattern, a.operation)
        for a in service_acls("console", "e2e-console", "console-e2e-3")
        if a.resource_type == "group"
    }
    assert named == {("console-e2e-3-", "prefix", "Read")}
    # The prefix reaches no other service's group, and the console owns no topic by prefix.
    assert not [s for s in SERVICES if s != "console" and s.startswith("console-")]
    assert not [a for a in service_acls("console") if a.resource_type == "topic"
                and a.pattern == "prefix"]  # fmt: skip
    assert internal_topics("console") == ()


def test_the_group_is_the_service_name_unless_given() -> None:
    groups = {a for a in service_acls("collections") if a.resource_type == "group"}
    assert groups == {Acl("User:collections", "group", "collections", "literal", "Read")}
    test_group = {
        (a.name, a.operation)
        for a in service_acls("collections", "e2e-collections", "collections-test-1")
        if a.resource_type == "group"
    }
    assert test_group == {("collections-test-1", "Read")}


def test_faust_workers_own_the_topics_prefixed_by_their_app_id_and_nothing_in_the_catalog() -> None:
    for service in ("invoicing", "collections"):
        prefixed = {(a.name, a.operation) for a in service_acls(service) if a.pattern == "prefix"}
        assert prefixed == {
            (f"{service}-", op) for op in ("Create", "Describe", "DescribeConfigs", "Read", "Write")
        }
        assert not [t for t in CATALOG if t.name.startswith(f"{service}-")]
        for name in internal_topics(service, f"{service}-test-7"):
            assert name.startswith(f"{service}-test-7-")
            assert name.endswith("-changelog")
    assert internal_topics("invoicing") == ("invoicing-registers-changelog",)
    assert internal_topics("collections") == ("collections-books-changelog",)
    for service in ("access-control", "notifications", "console"):
        assert internal_topics(service) == ()
        assert not [a for a in service_acls(service) if a.pattern == "prefix"
                    and a.resource_type == "topic"]  # fmt: skip
        assert not [a for a in service_acls(service) if a.operation == "Create"]


def test_no_cluster_or_transactional_acl_is_asked_for() -> None:
    kinds = {a.resource_type for s in SERVICES for a in service_acls(s)}
    assert kinds == {"topic", "group"}


def test_a_topic_added_to_the_catalog_is_granted_from_its_readers_and_writers() -> None:
    extra = Topic("billing.refunds.v1", ("refund.issued",), "refunds", readers=("collections",))
    grants = service_grants("collections", catalog=(*CATALOG, extra))
    assert [(g.name, g.operations) for g in grants if g.name == extra.name] == [
        (extra.name, ("Read", "Describe"))
    ]


def test_a_topic_added_with_a_dlq_is_re_driven_and_observed_by_the_console() -> None:
    extra = Topic("billing.refunds.v1", ("refund.issued",), "refunds", readers=("collections",))
    dlq = Topic(extra.dlq, (), "dead letters", writers=extra.readers, observers=("console",),
                is_dlq=True)  # fmt: skip
    grants = {(g.name, g.operations, g.why) for g in service_grants("console",
              catalog=(*CATALOG, extra, dlq))}  # fmt: skip
    assert (extra.name, ("Write", "Describe"), "re-drives") in grants
    assert (dlq.name, ("Read", "Describe"), "reads") in grants
    assert (extra.name, ("Read", "Describe"), "reads") not in grants


def test_bindings_are_one_per_operation_sorted_and_deduplicated() -> None:
    grants = service_grants("invoicing")
    acls = acl_bindings("User:x", (*grants, *grants))
    assert list(acls) == sorted(set(acls))
    assert len(acls) == sum(len(g.operations) for g in grants)
    assert {a.principal for a in acls} == {"User:x"}
    assert str(Acl("User:x", "topic", "invoicing-", "prefix", "Create")) == (
        "User:x may Create topic invoicing- (prefix)"
    )


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match="not a service"):
        service_grants("billing bus")
    with pytest.raises(ValueError, match="not a service"):
        internal_topics("operator API")


def _strimzi(service: str) -> set[tuple[str, str, str, str]]:
    docs = [d for d in yaml.safe_load_all(USERS.read_text(encoding="utf-8")) if d]
    (user,) = [d for d in docs if d["kind"] == "KafkaUser" and d["metadata"]["name"] == service]
    return {
        (acl["resource"]["type"], acl["resource"]["name"],
         acl["resource"].get("patternType", "literal"), op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
    }  # fmt: skip


@pytest.mark.parametrize("service", SERVICES)
def test_the_strimzi_kafka_users_grant_the_same(service: str) -> None:
    ours = {(a.resource_type, a.name, a.pattern, a.operation) for a in service_acls(service)}
    assert ours == _strimzi(service), (
        f"deploy/k8s/base/kafka-users.yaml and billstate_shared.acls differ for {service}"
    )


def test_clock_and_due_dates_flow_through_invoicing() -> None:
    assert CLOCK.name in _topics("invoicing", "Read")
    assert DUE_DATES.name in _topics("invoicing", "Write")
    assert DUE_DATES.name in _topics("collections", "Read")
    assert DUE_DATES.name not in _topics("collections", "Write")
