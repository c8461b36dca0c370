"""The notifications service in-process against a real Kafka broker.

Each run uses a fresh consumer group, committed at the current end of its topics before
the service joins, so earlier runs' records are not replayed; customer ids are unique per
test. Every wait has a deadline (read_after, wait_for); nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from billstate_devkit.events import notice_request
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_notifications.config import Settings
from billstate_notifications.domain import staff_notice
from billstate_notifications.entrypoints.service import NotificationsService
from billstate_notifications.handlers import TOPICS
from billstate_shared.contracts import (
    AccessFailed,
    AccessFailedData,
    CustomerUpserted,
    CustomerUpsertedData,
    decode,
    encode,
)
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topic_admin import start_group_at_end

pytestmark = pytest.mark.broker

REQUESTS = "notifications.requests.v1"
DELIVERIES = "notifications.deliveries.v1"
ACCESS = "access.events.v1"
CUSTOMERS = "billing.customers.v1"
TOKEN = SecretStr("notifications-test-token")
AUTH = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}


def unique(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Env:
    def __init__(
        self, bootstrap: str, service: NotificationsService, producer: AIOKafkaProducer
    ) -> None:
        self.bootstrap, self.service, self.producer = bootstrap, service, producer

    @property
    def outbox(self) -> Path:
        return self.service.settings.outbox

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def send(self, topic: str, key: str, value: bytes | None) -> None:
        await self.producer.send_and_wait(topic, value=value, key=key.encode())

    async def mark(self, topic: str) -> dict[TopicPartition, int]:
        return await end_offsets(self.bootstrap, topic)

    async def read(
        self,
        start: dict[TopicPartition, int],
        until: Callable[[list[ConsumerRecord]], bool],
    ) -> list[ConsumerRecord]:
        return await read_after(self.bootstrap, start, until, timeout=45.0)


def outcomes(records: list[ConsumerRecord], notice_id: str) -> list[Any]:
    events = [decode(r.value) for r in records]
    return [e for e in events if getattr(e.data, "notice_id", None) == notice_id]


@pytest.fixture(scope="module")
async def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    await ensure_catalog(kafka_bootstrap)
    group = unique("notifications-it")
    await start_group_at_end(kafka_bootstrap, group, TOPICS)
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=group,
        data_dir=tmp_path_factory.mktemp("notifications"),
        http_port=0,
        retry_base_delay=0.01,
        http_token=TOKEN,
    )
    service = NotificationsService(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or runner.done(), timeout=60)
        assert not runner.done(), "the service loop ended during start-up"
        yield Env(kafka_bootstrap, service, producer)
    finally:
        await service.stop()
        try:
            await runner
        finally:
            await service.close()
            await producer.stop()


async def test_a_notice_is_rendered_to_the_outbox_and_reported(env: Env) -> None:
    customer_id, notice_id = unique(), unique("ntc")
    upsert = CustomerUpserted(
        event_id=unique("cust"),
        event_type="customer.upserted",
        occurred_at="2026-11-01T00:00:00+00:00",  # type: ignore[arg-type]
        customer_id=customer_id,
        data=CustomerUpsertedData(
            name="Contoso <script>alert(1)</script>",
            locale="zh-TW",
            billing_email="ap@contoso.example",
            partner_contact_email="csp@partner.example",
            tags=[],
            subscription_ids=["sub-1"],
        ),
    )
    await env.send(CUSTOMERS, customer_id, encode(upsert))
    assert env.service.store is not None
    store = env.service.store
    # Topics are not ordered against each other: wait until the directory has the customer.
    await wait_for(lambda: store.customer(customer_id) is not None, timeout=45)

    start = await env.mark(DELIVERIES)
    await env.send(REQUESTS, customer_id, notice_request(customer_id, notice_id, locale="zh-TW"))
    records = await env.read(start, lambda rs: bool(outcomes(rs, notice_id)))

    (event,) = outcomes(records, notice_id)
    assert event.event_type == "notice.delivered"
    assert (event.customer_id, event.data.channel, event.data.attempts) == (
        customer_id,
        "outbox",
        1,
    )
    assert [r.key for r in records if decode(r.value) == event] == [customer_id.encode()]

    document = json.loads((env.outbox / f"{notice_id}.json").read_text("utf-8"))
    assert document["locale"] == "zh-TW"
    assert document["customer_id"] == customer_id
    assert document["subject"].startswith("最後通知：逾期金額 US$1,234.50")
    assert "自2026年11月21日起可能會被暫停使用" in document["text"]
    assert "<script>" not in document["html"]
    assert "&lt;script&gt;" in document["html"]
    assert "@" not in json.dumps(document)

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{env.base_url}/notices/{notice_id}", headers=AUTH) as response,
    ):
        assert response.status == 200
        row = await response.json()
    assert (row["status"], row["channel"], row["attempts"]) == ("delivered", "outbox", 1)
    assert row["customer_id"] == customer_id
    assert row["locale"] == "zh-TW"


async def test_the_same_notice_twice_is_delivered_once(env: Env) -> None:
    customer_id, notice_id, marker = unique(), unique("ntc"), unique("ntc")
    start = await env.mark(DELIVERIES)
    raw = notice_request(customer_id, notice_id)
    await env.send(REQUESTS, customer_id, raw)
    await env.send(REQUESTS, customer_id, raw)
    # Same key, same partition: once the marker is reported, both copies were handled.
    await env.send(REQUESTS, customer_id, notice_request(customer_id, marker))
    records = await env.read(start, lambda rs: bool(outcomes(rs, marker)))

    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]
    assert sorted(p.name for p in env.outbox.glob("ntc-*.json") if notice_id in p.name) == [
        f"{notice_id}.json"
    ]


async def test_an_unknown_kind_fails_and_is_dead_lettered(env: Env) -> None:
    customer_id, notice_id = unique(), unique("ntc")
    deliveries, dlq = await env.mark(DELIVERIES), await env.mark(f"{REQUESTS}.dlq")
    raw = notice_request(customer_id, notice_id, kind="carrier_pigeon")
    await env.send(REQUESTS, customer_id, raw)

    records = await env.read(deliveries, lambda rs: bool(outcomes(rs, notice_id)))
    (failed,) = outcomes(records, notice_id)
    assert failed.event_type == "notice.failed"
    assert "carrier_pigeon" in failed.data.error

    def mine(rs: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [r for r in rs if r.key == customer_id.encode()]

    (letter,) = mine(await env.read(dlq, lambda rs: bool(mine(rs))))
    assert letter.value == raw
    headers = read_headers(letter.headers)
    assert headers["topic"] == REQUESTS
    assert headers["service"] == "notifications"
    assert headers["field"] == "data.kind"
    assert headers["event_type"] == "notice.requested"
    assert "no template for kind 'carrier_pigeon'" in headers["reason"]
    assert int(headers["offset"]) >= 0
    assert int(headers["partition"]) >= 0
    assert not (env.outbox / f"{notice_id}.json").exists()


async def test_malformed_bytes_go_to_the_dlq_and_later_notices_still_deliver(env: Env) -> None:
    customer_id, notice_id = unique(), unique("ntc")
    deliveries, dlq = await env.mark(DELIVERIES), await env.mark(f"{REQUESTS}.dlq")
    garbage = b'{"event_type": "notice.requested", oops'
    await env.send(REQUESTS, customer_id, garbage)
    await env.send(REQUESTS, customer_id, notice_request(customer_id, notice_id))

    records = await env.read(deliveries, lambda rs: bool(outcomes(rs, notice_id)))
    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]
    letters = await env.read(dlq, lambda rs: any(r.value == garbage for r in rs))
    (letter,) = [r for r in letters if r.value == garbage]
    headers = read_headers(letter.headers)
    assert letter.key == customer_id.encode()
    assert headers["field"] == "$"
    assert "invalid JSON" in headers["reason"]
    assert (env.outbox / f"{notice_id}.json").exists()


async def test_access_failed_becomes_a_staff_notice(env: Env) -> None:
    customer_id = unique()
    event = AccessFailed(
        event_id=unique("acc"),
        event_type="access.failed",
        occurred_at="2026-11-21T01:00:00+00:00",  # type: ignore[arg-type]
        customer_id=customer_id,
        data=AccessFailedData(
            command_id=unique("cmd"),
            subscription_id="sub-1",
            provider="partner_center",
            attempts=5,
            error="HTTP 412 Precondition Failed",
        ),
    )
    notice_id = staff_notice(event, "en").notice_id
    start = await env.mark(DELIVERIES)
    await env.send(ACCESS, customer_id, encode(event))
    records = await env.read(start, lambda rs: bool(outcomes(rs, notice_id)))
    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]

    document = json.loads((env.outbox / f"{notice_id}.json").read_text("utf-8"))
    assert (document["kind"], document["audience"], document["locale"]) == (
        "access_failed",
        "partner",
        "en",
    )
    assert "sub-1" in document["subject"]
    assert customer_id in document["subject"]
    assert "HTTP 412 Precondition Failed" in document["text"]


async def test_health_readiness_metrics_and_unknown_notices(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(env.base_url + path) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["ok"] is True
        async with http.get(env.base_url + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        async with http.get(
            env.base_url + "/notices/ntc-never-requested", headers=AUTH
        ) as response:
            assert response.status == 404
        # The notice route needs the bearer token; the probes and the metrics do not.
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            async with http.get(env.base_url + "/notices/ntc-x", headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert 'billstate_messages_processed_total{service="notifications"' in text
    assert "billstate_notices_total" in text
    assert "billstate_consumer_lag" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_process_stops_cleanly_on_a_signal(
    kafka_bootstrap: str, tmp_path: Path, sig: signal.Signals
) -> None:
    await ensure_catalog(kafka_bootstrap)
    group = unique("notifications-it-proc")
    await start_group_at_end(kafka_bootstrap, group, TOPICS)
    port = _free_port()
    environ = {
        **os.environ,
        "BILLSTATE_NOTIFICATIONS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BILLSTATE_NOTIFICATIONS_CONSUMER_GROUP": group,
        "BILLSTATE_NOTIFICATIONS_DATA_DIR": str(tmp_path),
        "BILLSTATE_NOTIFICATIONS_HTTP_PORT": str(port),
        "BILLSTATE_NOTIFICATIONS_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "billstate_notifications",
        env=environ,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = False

        async def probe() -> None:
            nonlocal ready
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/readyz") as response,
                ):
                    ready = response.status == 200
            except aiohttp.ClientError:
                ready = False

        async def poll() -> None:
            while not ready and process.returncode is None:
                await probe()
                if not ready:
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(poll(), timeout=60)
        assert ready, "the process exited before it was ready"
        process.send_signal(sig)
        assert process.stderr is not None
        stderr = await asyncio.wait_for(process.stderr.read(), timeout=30)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert code == 0, stderr.decode()[-2000:]
    assert "started" in events
    assert events[-1] == "stopped"
