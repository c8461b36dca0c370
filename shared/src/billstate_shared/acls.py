"""The Kafka ACLs each service needs, derived from the topic catalog, and how to apply them.

What a service may do follows from the catalog (`topics.py`) and nothing else:

- Read and Describe on every topic whose `readers` or `observers` name it (an observer keeps
  a read model and refuses nothing, so it has no dead letters to write), Read on its consumer
  group (for the console, which names its groups `console-<generation>`, the groups prefixed
  `console-`);
- Write and Describe on every topic whose `writers` name it, the dead-letter topics of what
  it reads among them (a DLQ's writers are the readers of the topic it belongs to);
- for the console, which re-drives dead letters, Write and Describe on every topic that has
  a dead-letter topic: a re-driven record goes back where it came from;
- for the faust workers, Create, Describe, DescribeConfigs, Read and Write on the topics
  prefixed `<app id>-`: the table changelogs (`<app id>-<table>-changelog`), which the worker
  creates itself at start, and the assignor topic faust would make if its leader topic were
  on (it is off: `topic_disable_leader`). The app id is the consumer group; no catalog topic
  starts with a service name and a dash, so the prefix grants nothing of the catalog's.

No cluster or transactional-id ACL: the producers are idempotent but not transactional, and
since Kafka 3.0 an idempotent producer needs only Write on some topic, not IdempotentWrite.

The grants are plain data (`service_grants`); `acl_bindings` spells them out per operation
for a principal, and `apply_acls` creates them on a cluster as an admin would
(`billstate topics acls --apply`, the TLS and ACL tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaClient
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from billstate_shared.errors import ExternalError
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.topics import CATALOG, Topic

ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Create", "Describe", "DescribeConfigs"]

# The services that log into Kafka, each as the user and consumer group of its own name.
SERVICES = ("invoicing", "collections", "access-control", "notifications", "console")
# The services whose consumer group is `<name>-<generation>` (a read model that rebuilds
# itself under a new group): Read on the groups prefixed `<name>-`.
GENERATIONAL_GROUPS = frozenset({"console"})
# The services that re-drive dead letters (an operator's action): Write on every topic that
# has a dead-letter topic, which is where a re-driven record goes back to.
REDRIVERS = frozenset({"console"})
# The faust workers and their tables: each table has a changelog topic the worker creates.
FAUST_TABLES: dict[str, tuple[str, ...]] = {"invoicing": ("registers",), "collections": ("books",)}

READ: tuple[Operation, ...] = ("Read", "Describe")
WRITE: tuple[Operation, ...] = ("Write", "Describe")
OWN: tuple[Operation, ...] = ("Create", "Describe", "DescribeConfigs", "Read", "Write")


@dataclass(frozen=True)
class Grant:
    """Operations allowed on one resource (a topic or group, by name or by name prefix)."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    operations: tuple[Operation, ...]
    why: str  # reads, writes, dead letters, re-drives, consumer group(s), faust's own topics


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding as Kafka stores it: a principal, a resource pattern, an operation."""

    principal: str
    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation

    def __str__(self) -> str:
        pattern = f" ({self.pattern})" if self.pattern != "literal" else ""
        return f"{self.principal} may {self.operation} {self.resource_type} {self.name}{pattern}"


def _check(service: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"{service!r} is not a service; the services are {', '.join(SERVICES)}")


def _reads(service: str, catalog: Iterable[Topic]) -> list[Topic]:
    return [t for t in catalog if service in t.readers or service in t.observers]


def _writes(service: str, catalog: Iterable[Topic]) -> list[Topic]:
    catalog = tuple(catalog)
    redriven = {t.name.removesuffix(".dlq") for t in catalog if t.is_dlq}
    return [
        t for t in catalog if service in t.writers or (service in REDRIVERS and t.name in redriven)
    ]


def internal_topics(service: str, group: str | None = None) -> tuple[str, ...]:
    """The topics a faust worker makes for itself under app id `group`: its changelogs."""
    _check(service)
    app_id = group or service
    return tuple(f"{app_id}-{table}-changelog" for table in FAUST_TABLES.get(service, ()))


def service_grants(
    service: str, *, group: str | None = None, catalog: Iterable[Topic] = CATALOG
) -> tuple[Grant, ...]:
    """What `service` may do, consuming as `group` (default: its own name, which is also a
    faust worker's app id and the prefix of its changelog topics, and the console's base
    group name, to which it appends its store's generation)."""
    _check(service)
    catalog = tuple(catalog)
    group = group or service
    grants = [Grant("topic", t.name, "literal", READ, "reads") for t in _reads(service, catalog)]
    for topic in _writes(service, catalog):
        if service not in topic.writers:
            why = "re-drives"
        else:
            why = "dead letters" if topic.is_dlq else "writes"
        grants.append(Grant("topic", topic.name, "literal", WRITE, why))
    if service in GENERATIONAL_GROUPS:  # `group` is the base name, the generation is appended
        grants.append(Grant("group", f"{group}-", "prefix", ("Read",), "consumer groups"))
    else:
        grants.append(Grant("group", group, "literal", ("Read",), "consumer group"))
    if service in FAUST_TABLES:
        grants.append(Grant("topic", f"{group}-", "prefix", OWN, "faust's own topics"))
    return tuple(grants)


def acl_bindings(principal: str, grants: Iterable[Grant]) -> tuple[Acl, ...]:
    """The grants as Kafka's bindings, one per operation, for `principal` (`User:<name>`)."""
    return tuple(
        sorted(
            {
                Acl(principal, g.resource_type, g.name, g.pattern, op)
                for g in grants
                for op in g.operations
            }
        )
    )


def service_acls(
    service: str, user: str | None = None, group: str | None = None
) -> tuple[Acl, ...]:
    """The bindings of `service` logged in as SCRAM user `user` (default: the service name)."""
    return acl_bindings(f"User:{user or service}", service_grants(service, group=group))


# Kafka's wire codes (org.apache.kafka.common.{resource,acl}): resource type, pattern type,
# operation; permission 3 is ALLOW.
_RESOURCE = {"topic": 2, "group": 3}
_PATTERN = {"literal": 3, "prefix": 4}
_OPERATION = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8, "DescribeConfigs": 10}
_ANY, _ALLOW = 1, 3
_SECURITY_DISABLED = 54  # the broker has no authorizer


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    """Every binding in one CreateAcls request (aiokafka's own builder sends one)."""

    API_KEY = 30

    def __init__(self, acls: Iterable[Acl]) -> None:
        self.creations = [
            (_RESOURCE[a.resource_type], a.name, _PATTERN[a.pattern], a.principal, "*",
             _OPERATION[a.operation], _ALLOW)
            for a in acls
        ]  # fmt: skip

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self.creations)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    """Every binding of one principal, on any resource."""

    API_KEY = 29

    def __init__(self, principal: str) -> None:
        self.principal = principal

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(_ANY, None, _ANY, self.principal, None, _ANY, _ANY)


_NAMES = {
    "resource": {v: k for k, v in _RESOURCE.items()},
    "pattern": {v: k for k, v in _PATTERN.items()},
    "operation": {v: k for k, v in _OPERATION.items()},
}


async def apply_acls(
    bootstrap: str,
    acls: Iterable[Acl],
    *,
    auth: KafkaAuth | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109  (the broker's metadata is waited for, not a call)
    unless_disabled: bool = False,
) -> int:
    """Create the bindings (existing ones are left as they are) as a user allowed to alter
    the cluster's ACLs, then wait until the broker enforces them; the number asked for.

    A cluster with no authorizer refuses ACLs (SECURITY_DISABLED): an error, or with
    `unless_disabled` nothing to do (0), since such a cluster allows everything."""
    wanted = set(acls)
    if not wanted:
        return 0
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="billstate-acls",
                            **client_options(auth))  # fmt: skip
    await client.bootstrap()
    try:
        node = client.get_random_node()
        response = await client.send(node, _CreateAcls(sorted(wanted)))
        codes = {code for code, _message in response.creation_responses}
        if unless_disabled and codes == {_SECURITY_DISABLED}:
            return 0
        for acl, (code, message) in zip(sorted(wanted), response.creation_responses, strict=True):
            if code != 0:
                raise ExternalError(
                    f"creating the ACL '{acl}' failed: error {code}: {message}", retryable=False
                )
        deadline = asyncio.get_running_loop().time() + timeout
        principals = {a.principal for a in wanted}
        while True:
            found: set[Acl] = set()
            for principal in principals:
                found |= await _described(client, node, principal)
            if wanted <= found:
                return len(wanted)
            if asyncio.get_running_loop().time() > deadline:
                missing = sorted(str(a) for a in wanted - found)
                raise ExternalError(
                    f"ACLs not in force after {timeout:.0f}s: {missing[:5]}", retryable=True
                )
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def describe_acls(
    bootstrap: str, principal: str, *, auth: KafkaAuth | None = None
) -> set[Acl]:
    """The ALLOW bindings the broker holds for `principal` on topics and groups."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="billstate-acls",
                            **client_options(auth))  # fmt: skip
    await client.bootstrap()
    try:
        return await _described(client, client.get_random_node(), principal)
    finally:
        await client.close()


async def _described(client: Any, node: int, principal: str) -> set[Acl]:
    response = await client.send(node, _DescribeAcls(principal))
    if response.error_code != 0:
        raise ExternalError(
            f"describing the ACLs of {principal} failed: error {response.error_code}:"
            f" {response.error_message}",
            retryable=False,
        )
    found: set[Acl] = set()
    for resource_type, name, pattern, bindings in response.resources:
        for bound, _host, operation, permission in bindings:
            kind = _NAMES["resource"].get(resource_type)
            shape = _NAMES["pattern"].get(pattern)
            op = _NAMES["operation"].get(operation)
            if permission == _ALLOW and kind and shape and op:
                found.add(Acl(bound, kind, name, shape, op))  # type: ignore[arg-type]
    return found
