"""Make a cluster match the topic catalog: create what is missing, report drift, alter nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from billstate_shared.errors import ExternalError
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.topics import BY_NAME, CATALOG, Topic


@dataclass(frozen=True)
class Drift:
    """One way an existing topic differs from the catalog."""

    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, the catalog says {self.expected}"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    replication_factor: int = 1


async def apply_topics(
    bootstrap: str,
    topics: Iterable[Topic] = CATALOG,
    replication_factor: int | None = None,
    *,
    dry_run: bool = False,
    auth: KafkaAuth | None = None,
) -> ApplyReport:
    """Create missing catalog topics and compare the rest; idempotent."""
    topics = list(topics)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="billstate-topics", **client_options(auth)
    )
    await admin.start()
    try:
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = min(3, len(cluster["brokers"]))
        report = ApplyReport(replication_factor=replication_factor)
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        present = [t for t in topics if t.name in existing]
        if missing and not dry_run:
            # Metadata can lag a fresh create; the broker's own "already exists" is the truth.
            raced = await _create(admin, missing, replication_factor)
            missing = [t for t in missing if t.name not in raced]
            present += [t for t in topics if t.name in raced]
        report.created = [t.name for t in missing]
        if present:
            report.drift = await _drift(admin, present)
        drifted = {d.topic for d in report.drift}
        report.unchanged = [t.name for t in present if t.name not in drifted]
        return report
    finally:
        await admin.close()


async def _create(
    admin: AIOKafkaAdminClient, topics: list[Topic], replication_factor: int
) -> set[str]:
    """Create topics; return the names the broker says already exist."""
    new = [
        NewTopic(t.name, t.partitions, replication_factor, topic_configs=t.config) for t in topics
    ]
    response = await admin.create_topics(new)
    existed: set[str] = set()
    for name, code, message in (e[:3] for e in response.topic_errors):
        if code == TopicAlreadyExistsError.errno:
            existed.add(name)
        elif code != 0:
            raise ExternalError(
                f"creating topic {name} failed: error {code}: {message}", retryable=False
            )
    return existed


# How long a topic that exists may stay unknown to the broker describing it: a topic just
# created is listed before every broker's metadata has it.
SETTLE_SECONDS = 15.0


async def _drift(admin: AIOKafkaAdminClient, topics: list[Topic]) -> list[Drift]:
    partitions, configs = await _settled(admin, topics)
    found: list[Drift] = []
    for topic in topics:
        actual = partitions[topic.name]
        if actual != topic.partitions:
            found.append(Drift(topic.name, "partitions", str(topic.partitions), str(actual)))
        for key, expected in topic.config.items():
            if configs[topic.name].get(key) != expected:
                found.append(Drift(topic.name, key, expected, str(configs[topic.name].get(key))))
    return found


async def _settled(
    admin: AIOKafkaAdminClient, topics: list[Topic]
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition counts and configs of existing topics, asked again until the broker knows
    every one: an unknown topic would otherwise read as 0 partitions and no config."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        partitions, configs = await _describe(admin, topics)
        unknown = sorted(
            t.name for t in topics if t.name not in partitions or t.name not in configs
        )
        if not unknown:
            return partitions, configs
        if loop.time() > deadline:
            raise ExternalError(
                f"the broker did not describe {', '.join(unknown[:5])} within"
                f" {SETTLE_SECONDS:.0f}s",
                retryable=True,
            )
        await asyncio.sleep(0.2)


async def _describe(
    admin: AIOKafkaAdminClient, topics: list[Topic]
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    described = await admin.describe_topics([t.name for t in topics])
    partitions = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
    resources = [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error, _message, _type, name, entries = resource[:5]
            if error == 0:
                configs[name] = {entry[0]: entry[1] for entry in entries}
    return partitions, configs


async def start_group_at_end(
    bootstrap: str, group: str, topics: Iterable[str], *, auth: KafkaAuth | None = None
) -> None:
    """Commit a new consumer group's offsets at the current end of `topics` (catalog names),
    so a service started under it sees only what is produced from now on."""
    tps = [TopicPartition(name, p) for name in topics for p in range(BY_NAME[name].partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **client_options(auth),
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()
