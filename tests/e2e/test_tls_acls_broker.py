"""The four services over TLS, each its own SCRAM user holding only the catalog's ACLs.

The local broker enforces ACLs (StandardAuthorizer). Each service logs in on the SASL_SSL
listener, trusting the broker's throwaway CA, as a user with exactly the bindings
`billstate_shared.acls` computes (applied by the admin user, over TLS too); the harness drives
and reads over the plain listener, whose anonymous principal is a super user.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from billstate_cli.local import SERVICES
from billstate_cli.main import main as billstate
from billstate_devkit.events import access_command
from billstate_devkit.kafka import LocalTls, end_offsets, local_sasl_ssl, wait_for
from billstate_shared.acls import apply_acls, describe_acls, service_acls
from billstate_shared.errors import ExternalError
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, NOTICE_DELIVERIES

from .conftest import ROOT, Pipeline, load_jsonl

pytestmark = pytest.mark.broker


def _user(service: str) -> tuple[str, str]:
    return f"e2e-tls-{service}", f"tls-{service}-password-3b1d"


def _env(tls: LocalTls, folder: Path, users: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Per service (prefixed settings win over the plain KAFKA_* ones): its own user."""
    env: dict[str, str] = {}
    for service, (user, password) in users.items():
        prefix = f"BILLSTATE_{service.replace('-', '_').upper()}_"
        secret = folder / f"{service}.password"
        secret.write_text(password + "\n", encoding="utf-8")
        env |= {
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": tls.bootstrap,
            f"{prefix}KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            f"{prefix}KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            f"{prefix}KAFKA_SASL_USERNAME": user,
            f"{prefix}KAFKA_SASL_PASSWORD_FILE": str(secret),
            f"{prefix}KAFKA_SSL_CA_FILE": str(tls.ca_file),
        }
    return env


async def test_the_lifecycle_runs_with_each_service_held_to_its_catalog_acls(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tls = await local_sasl_ssl(kafka_bootstrap)
    users = {service: _user(service) for service in SERVICES}
    await asyncio.gather(*(tls.add_user(*users[s]) for s in SERVICES))
    pipeline = Pipeline(kafka_bootstrap, tmp_path, _env(tls, tmp_path, users))
    acls = [
        acl
        for service in SERVICES
        for acl in service_acls(service, users[service][0], pipeline.groups[service])
    ]
    assert await apply_acls(tls.bootstrap, acls, auth=tls.admin) == len(acls)
    held = await describe_acls(tls.bootstrap, "User:e2e-tls-notifications", auth=tls.admin)
    assert not [a for a in held if a.name == ACCESS_COMMANDS.name]

    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-tls")
    customer = "contoso-tls"
    try:
        await pipeline.start()
        await pipeline.drive(events)
        await pipeline.settle()
        outcome = await pipeline.outcome()
    finally:
        pipeline.fleet.stop()
    stages = [
        e["data"]["stage"]
        for e in outcome.topics["collections.events.v1"]
        if e["customer_id"] == customer
    ]
    assert stages == ["overdue", "final_notice", "suspended", "current"]
    applied = {
        kind: {
            e["data"]["subscription_id"]
            for e in outcome.topics[ACCESS_EVENTS.name]
            if e["customer_id"] == customer and e["event_type"] == kind
        }
        for kind in ("access.suspended", "access.restored", "access.failed")
    }
    assert applied["access.suspended"]
    assert applied["access.restored"] == applied["access.suspended"]
    assert not applied["access.failed"]
    notices = {
        n["data"]["notice_id"]
        for n in outcome.topics["notifications.requests.v1"]
        if n["customer_id"] == customer
    }
    delivered = {
        d["data"]["notice_id"]
        for d in outcome.topics[NOTICE_DELIVERIES.name]
        if d["event_type"] == "notice.delivered"
    }
    assert notices
    assert notices <= delivered


async def test_a_service_user_cannot_write_a_topic_the_catalog_does_not_give_it(
    kafka_bootstrap: str,
) -> None:
    tls = await local_sasl_ssl(kafka_bootstrap)
    user, password = _user("notifications")
    await tls.add_user(user, password)
    # Applied by the command line, as User:ANONYMOUS on the plain listener (a super user).
    argv = ["topics", "acls", "--service", "notifications", "--user", user, "--apply",
            "--bootstrap", kafka_bootstrap]  # fmt: skip
    assert await asyncio.to_thread(billstate, argv) == 0
    before = await end_offsets(kafka_bootstrap, ACCESS_COMMANDS.name)
    auth = tls.auth(user, password).client_options()
    producer = AIOKafkaProducer(bootstrap_servers=tls.bootstrap, **auth)
    await producer.start()
    try:
        command = access_command("suspend", "tls-probe", "cmd-tls-probe", ["sub-1"])
        with pytest.raises(TopicAuthorizationFailedError, match=ACCESS_COMMANDS.name):
            await producer.send_and_wait(ACCESS_COMMANDS.name, command, key=b"tls-probe")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=tls.bootstrap, **auth)
    await consumer.start()
    try:
        # Its own topics it sees; one it has no ACL on is not even described to it.
        await consumer._client.set_topics([NOTICE_DELIVERIES.name, ACCESS_COMMANDS.name])
        await consumer._client.force_metadata_update()
        cluster = consumer._client.cluster
        assert len(cluster.partitions_for_topic(NOTICE_DELIVERIES.name) or ()) > 0
        assert ACCESS_COMMANDS.name in cluster.unauthorized_topics
    finally:
        await consumer.stop()
    assert await end_offsets(kafka_bootstrap, ACCESS_COMMANDS.name) == before


async def test_a_service_missing_an_acl_stops_and_names_the_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """access-control without Write on access.events.v1: the first command it applies cannot
    be reported, so it stops (nothing committed) and its log says which topic it was refused,
    instead of consuming on without ever answering."""
    tls = await local_sasl_ssl(kafka_bootstrap)
    user, password = "e2e-tls-access-control-partial", "tls-partial-password-9a4e"
    await tls.add_user(user, password)
    pipeline = Pipeline(
        kafka_bootstrap, tmp_path, _env(tls, tmp_path, {"access-control": (user, password)})
    )
    group = pipeline.groups["access-control"]
    acls = [
        a
        for a in service_acls("access-control", user, group)
        if not (a.name == ACCESS_EVENTS.name and a.operation == "Write")
    ]
    await apply_acls(tls.bootstrap, acls, auth=tls.admin)
    customer = f"tls-partial-{uuid.uuid4().hex[:8]}"
    try:
        await pipeline.start(("access-control",))
        service = pipeline.fleet.get("access-control")
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            command = access_command("suspend", customer, f"cmd-{customer}", ["sub-1"])
            await producer.send_and_wait(ACCESS_COMMANDS.name, command, key=customer.encode())
        finally:
            await producer.stop()
        process = service.process
        assert process is not None
        await wait_for(lambda: process.poll() is not None, timeout=90)
        assert process.returncode != 0
        log = await asyncio.to_thread(service.log.read_text, errors="replace")
        assert "TopicAuthorizationFailedError" in log
        assert ACCESS_EVENTS.name in log
    finally:
        pipeline.fleet.stop()


async def test_a_service_that_may_not_read_its_topic_stops_at_start_and_names_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """access-control without Read on access.commands.v1: aiokafka alone would log a warning
    and sit there ready and idle; the service stops at start-up and names the topic."""
    tls = await local_sasl_ssl(kafka_bootstrap)
    user, password = "e2e-tls-access-control-blind", "tls-blind-password-5c2f"
    await tls.add_user(user, password)
    pipeline = Pipeline(
        kafka_bootstrap, tmp_path, _env(tls, tmp_path, {"access-control": (user, password)})
    )
    group = pipeline.groups["access-control"]
    acls = [
        a
        for a in service_acls("access-control", user, group)
        if not (a.name == ACCESS_COMMANDS.name and a.operation in {"Read", "Describe"})
    ]
    await apply_acls(tls.bootstrap, acls, auth=tls.admin)
    try:
        with pytest.raises(ExternalError, match="access-control exited while starting"):
            await pipeline.start(("access-control",))
        service = pipeline.fleet.get("access-control")
        log = await asyncio.to_thread(service.log.read_text, errors="replace")
        assert f"not authorized to read {ACCESS_COMMANDS.name}" in log
    finally:
        pipeline.fleet.stop()
