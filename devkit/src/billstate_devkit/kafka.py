"""Real-broker test helpers: mark where topics end, read what arrives after, with timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from billstate_devkit.localkafka import ADMIN_USER, Layout, add_scram_user
from billstate_shared.acls import Acl, apply_acls
from billstate_shared.kafka_auth import KafkaAuth
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CATALOG

_applied: set[str] = set()


async def ensure_catalog(bootstrap: str) -> None:
    """Apply the topic catalog once per broker and test session."""
    if bootstrap not in _applied:
        report = await apply_topics(bootstrap, CATALOG)
        if report.drift:
            raise AssertionError(f"topic drift on the test broker: {report.drift}")
        _applied.add(bootstrap)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Where each partition of `topic` ends now: read after this to see only new records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            # aiokafka has no public way to refresh the consumer's metadata.
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return offsets
    finally:
        await consumer.stop()


async def read_after(
    bootstrap: str,
    start: dict[TopicPartition, int],
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,  # noqa: ASYNC109  (the error says how many records came by then)
) -> list[ConsumerRecord]:
    """Read records after `start` until `until(records)` holds; fail after `timeout` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while not until(records):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"condition not met within {timeout}s; read {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


async def wait_for(
    predicate: Callable[[], bool],
    timeout: float = 30.0,  # noqa: ASYNC109  (the callers' API: each passes its own deadline)
    every: float = 0.05,
) -> None:
    """Poll a condition with a deadline; the only sanctioned way for a test to wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


def _local_listener(bootstrap: str, what: str, port: int) -> Layout:
    """The project's local broker, with its `what` listener on `port`; skips for an external
    cluster (whose listeners the tests cannot know)."""
    layout = Layout.from_env()
    if bootstrap != layout.bootstrap:
        pytest.skip(f"{what} runs against the project's local broker, not an external cluster")
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            pytest.fail(
                f"the local broker has no {what} listener (it was started before it had one):"
                " make kafka-down kafka-up"
            )
    return layout


def everything(user: str) -> tuple[Acl, ...]:
    """ACLs that let `user` do what a client needs on every topic and group: the local broker
    enforces ACLs, and a test of authentication alone should not meet them."""
    principal = f"User:{user}"
    return (
        *(Acl(principal, "topic", "*", "literal", op)
          for op in ("Read", "Write", "Create", "Describe", "DescribeConfigs")),
        *(Acl(principal, "group", "*", "literal", op) for op in ("Read", "Describe")),
    )  # fmt: skip


async def local_scram(bootstrap: str, user: str, password: str) -> str:
    """The SCRAM-SHA-512 listener of the project's local broker, with `user` on it, allowed
    everything on topics and groups; skips for an external cluster."""
    layout = _local_listener(bootstrap, "SCRAM", Layout.from_env().sasl_port)
    await ensure_catalog(bootstrap)
    await asyncio.to_thread(add_scram_user, layout, user, password)
    # As User:ANONYMOUS, a super user; a broker started before it enforced ACLs needs none.
    await apply_acls(bootstrap, everything(user), unless_disabled=True)
    return layout.sasl_bootstrap


# The local broker's admin (a super user); the password guards a loopback dev broker only.
ADMIN_PASSWORD = "local-admin-password-0c9e"  # noqa: S105


def scram_over_tls(ca_file: Path, user: str, password: str) -> KafkaAuth:
    """SCRAM-SHA-512 over TLS as `user`, trusting the CA in `ca_file`."""
    return KafkaAuth(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=SecretStr(password),
        ssl_ca_file=ca_file,
    )


@dataclass(frozen=True)
class LocalTls:
    """The local broker's SASL_SSL listener: where it is, the CA to trust, its admin."""

    layout: Layout
    bootstrap: str
    ca_file: Path
    admin: KafkaAuth

    def auth(self, user: str, password: str) -> KafkaAuth:
        return scram_over_tls(self.ca_file, user, password)

    async def add_user(self, user: str, password: str) -> None:
        """A SCRAM user, with no ACLs: it may do nothing until some are applied."""
        await asyncio.to_thread(add_scram_user, self.layout, user, password)


async def local_sasl_ssl(bootstrap: str) -> LocalTls:
    """The SASL_SSL listener of the project's local broker, the catalog applied and its admin
    user on it; skips for an external cluster."""
    layout = _local_listener(bootstrap, "SASL_SSL", Layout.from_env().ssl_port)
    await ensure_catalog(bootstrap)
    await asyncio.to_thread(add_scram_user, layout, ADMIN_USER, ADMIN_PASSWORD)
    admin = scram_over_tls(layout.ca_file, ADMIN_USER, ADMIN_PASSWORD)
    return LocalTls(layout, layout.ssl_bootstrap, layout.ca_file, admin)
