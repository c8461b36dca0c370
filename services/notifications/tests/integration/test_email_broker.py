"""The notifications service in-process with the e-mail channel, a real broker and a real SMTP
server: the right message to the right address in the right language, once per notice.

The broker may be shared: the service's fresh consumer group starts at the end of its
topics, but notices other tests send meanwhile reach this SMTP server too, so every check
picks messages by this test's notice ids (the Message-ID) and never counts the whole box.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from billstate_devkit.events import notice_request
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_devkit.smtp import Received, SmtpTestServer
from billstate_notifications.channels.email import EmailChannel, EmailConfig, message_id
from billstate_notifications.config import Settings
from billstate_notifications.domain import staff_notice
from billstate_notifications.entrypoints.service import NotificationsService
from billstate_notifications.handlers import TOPICS
from billstate_shared.contracts import (
    AccessApprovalNeeded,
    AccessApprovalNeededData,
    AccessFailed,
    CustomerUpserted,
    CustomerUpsertedData,
    decode,
    encode,
)
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.topic_admin import start_group_at_end

pytestmark = pytest.mark.broker

REQUESTS = "notifications.requests.v1"
DELIVERIES = "notifications.deliveries.v1"
CUSTOMERS = "billing.customers.v1"
ACCESS = "access.events.v1"
FROM_DOMAIN = "billstate.test"


def unique(prefix: str = "it-mail") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Env:
    def __init__(
        self,
        bootstrap: str,
        service: NotificationsService,
        producer: AIOKafkaProducer,
        smtp: SmtpTestServer,
    ) -> None:
        self.bootstrap, self.service, self.producer, self.smtp = bootstrap, service, producer, smtp

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value=value, key=key.encode())

    async def customer(self, customer_id: str, locale: str) -> tuple[str, str]:
        """Upsert a customer; (billing address, partner address) once the directory has it."""
        billing, partner = f"ap.{customer_id}@contoso.example", f"csp.{customer_id}@partner.example"
        upsert = CustomerUpserted(
            event_id=unique("cust"),
            event_type="customer.upserted",
            occurred_at="2026-11-01T00:00:00+00:00",  # type: ignore[arg-type]
            customer_id=customer_id,
            data=CustomerUpsertedData(
                name="Contoso Ltd",
                locale=locale,
                billing_email=billing,
                partner_contact_email=partner,
                tags=[],
                subscription_ids=["sub-1"],
            ),
        )
        await self.send(CUSTOMERS, customer_id, encode(upsert))
        store = self.service.store
        assert store is not None
        # Topics are not ordered against each other: wait until the directory has it.
        await wait_for(lambda: store.customer(customer_id) is not None, timeout=45)
        return billing, partner

    async def mark(self, topic: str) -> dict[TopicPartition, int]:
        return await end_offsets(self.bootstrap, topic)

    async def read(
        self, start: dict[TopicPartition, int], until: Callable[[list[ConsumerRecord]], bool]
    ) -> list[ConsumerRecord]:
        return await read_after(self.bootstrap, start, until, timeout=45.0)

    async def mail(self, *notice_ids: str) -> dict[str, list[Received]]:
        """The messages received for each notice id, once each has at least one."""
        ids = {message_id(n, FROM_DOMAIN): n for n in notice_ids}

        def mine(received: list[Received]) -> dict[str, list[Received]]:
            found: dict[str, list[Received]] = {n: [] for n in notice_ids}
            for r in received:
                if r.message["Message-ID"] in ids:
                    found[ids[r.message["Message-ID"]]].append(r)
            return found

        received = await self.smtp.wait_async(lambda rs: all(mine(rs).values()), timeout=45)
        return mine(received)


def outcomes(records: list[ConsumerRecord], notice_id: str) -> list[Any]:
    """The outcome events of a notice, one per event id (a re-emitted outcome is the same
    event again, which consumers dedupe by id)."""
    events = {e.event_id: e for e in map(decode, (r.value for r in records))}
    return [e for e in events.values() if getattr(e.data, "notice_id", None) == notice_id]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
async def env(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpTestServer
) -> AsyncIterator[Env]:
    await ensure_catalog(kafka_bootstrap)
    group = unique("notifications-it-mail")
    await start_group_at_end(kafka_bootstrap, group, TOPICS)
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=group,
        data_dir=tmp_path_factory.mktemp("notifications-mail"),
        http_port=0,
        retry_base_delay=0.01,
        # Not en, so that a notice read in the default locale is told apart from one that
        # merely asked for en.
        default_locale="zh-TW",
    )
    channel = EmailChannel(
        EmailConfig(
            host=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            from_address=f"billing@{FROM_DOMAIN}",
            from_name="Fabrikam Billing",
            ca_file=smtp.ca_file,
            timeout=10.0,
        )
    )
    service = NotificationsService(settings, channel)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or runner.done(), timeout=60)
        assert not runner.done(), "the service loop ended during start-up"
        yield Env(kafka_bootstrap, service, producer, smtp)
    finally:
        await service.stop()
        try:
            await runner
        finally:
            await service.close()
            await producer.stop()


async def test_customer_and_partner_notices_reach_their_addresses_in_their_locales(
    env: Env,
) -> None:
    customer_id = unique()
    billing, partner = await env.customer(customer_id, "en")
    to_customer, to_partner = unique("ntc"), unique("ntc")
    start = await env.mark(DELIVERIES)
    await env.send(REQUESTS, customer_id, notice_request(customer_id, to_customer, locale="en"))
    # The partner reads the service's default locale (zh-TW here), whatever was asked.
    partner_notice = notice_request(customer_id, to_partner, locale="en", audience="partner")
    await env.send(REQUESTS, customer_id, partner_notice)

    records = await env.read(
        start, lambda rs: bool(outcomes(rs, to_customer) and outcomes(rs, to_partner))
    )
    for notice_id in (to_customer, to_partner):
        (event,) = outcomes(records, notice_id)
        assert event.event_type == "notice.delivered"
        assert (event.data.channel, event.data.attempts) == ("email", 1)
    assert all(b"@" not in r.value for r in records)

    mail = await env.mail(to_customer, to_partner)
    (en,) = mail[to_customer]
    assert en.rcpt_tos == (billing,)
    assert en.message["To"] == billing
    assert en.message["Content-Language"] == "en"
    assert en.message["Subject"].startswith("Final notice")
    assert "$1,234.50" in en.message["Subject"]
    assert en.text().startswith("Dear Contoso Ltd,")
    assert "November 21, 2026" in en.text()
    assert "$1,234.50" in en.html()
    assert (en.tls, en.login) == (True, env.smtp.username)

    (zh,) = mail[to_partner]
    assert zh.rcpt_tos == (partner,)
    assert zh.message["To"] == partner
    assert zh.message["Content-Language"] == "zh-TW"
    # The partner's copy says which customer was told what.
    assert zh.message["Subject"] == (
        f"已寄送最後通知給 Contoso Ltd（{customer_id}）：逾期金額 US$1,234.50"
    )
    assert "2026年11月21日" in zh.text()
    assert "US$1,234.50" in zh.html()


async def test_a_zh_tw_customer_reads_zh_tw(env: Env) -> None:
    customer_id = unique()
    billing, _ = await env.customer(customer_id, "zh-TW")
    notice_id = unique("ntc")
    start = await env.mark(DELIVERIES)
    await env.send(REQUESTS, customer_id, notice_request(customer_id, notice_id, locale="zh-TW"))
    records = await env.read(start, lambda rs: bool(outcomes(rs, notice_id)))
    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]

    (got,) = (await env.mail(notice_id))[notice_id]
    assert got.rcpt_tos == (billing,)
    assert got.message["Content-Language"] == "zh-TW"
    assert got.message["Subject"].startswith("最後通知：逾期金額 US$1,234.50")
    assert got.text().startswith("Contoso Ltd 您好：")
    assert "自2026年11月21日起可能會被暫停使用" in got.text()


async def test_a_duplicate_request_sends_nothing_new(env: Env) -> None:
    customer_id = unique()
    await env.customer(customer_id, "en")
    notice_id, marker = unique("ntc"), unique("ntc")
    start = await env.mark(DELIVERIES)
    raw = notice_request(customer_id, notice_id)
    await env.send(REQUESTS, customer_id, raw)
    await env.send(REQUESTS, customer_id, raw)
    # Same key, same partition: once the marker is reported, both copies were handled.
    await env.send(REQUESTS, customer_id, notice_request(customer_id, marker))
    records = await env.read(start, lambda rs: bool(outcomes(rs, marker)))

    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]
    mail = await env.mail(notice_id, marker)
    assert len(mail[notice_id]) == 1
    assert len(mail[marker]) == 1


async def test_a_locale_without_templates_fails_and_sends_nothing(env: Env) -> None:
    # No silent fallback to another language: the request is dead-lettered for a re-drive.
    customer_id = unique()
    await env.customer(customer_id, "fr")
    notice_id, marker = unique("ntc"), unique("ntc")
    start = await env.mark(DELIVERIES)
    await env.send(REQUESTS, customer_id, notice_request(customer_id, notice_id, locale="fr"))
    await env.send(REQUESTS, customer_id, notice_request(customer_id, marker, locale="en"))
    records = await env.read(start, lambda rs: bool(outcomes(rs, marker)))
    (failed,) = outcomes(records, notice_id)
    assert failed.event_type == "notice.failed"
    assert "no templates for locale 'fr'" in failed.data.error

    await env.mail(marker)  # sent after the failed one, on the same partition
    ids = {r.message["Message-ID"] for r in env.smtp.received}
    assert message_id(notice_id, FROM_DOMAIN) not in ids


async def test_no_address_on_file_fails_to_the_dlq_and_the_service_keeps_going(
    env: Env,
) -> None:
    # The contract requires billing_email on customer.upserted, so a customer the
    # directory does not know is the one without an address on file.
    unknown, known = unique(), unique()
    billing, _ = await env.customer(known, "en")
    failing, later = unique("ntc"), unique("ntc")
    deliveries, dlq = await env.mark(DELIVERIES), await env.mark(f"{REQUESTS}.dlq")
    raw = notice_request(unknown, failing)
    await env.send(REQUESTS, unknown, raw)
    await env.send(REQUESTS, known, notice_request(known, later))

    records = await env.read(
        deliveries, lambda rs: bool(outcomes(rs, failing) and outcomes(rs, later))
    )
    (failed,) = outcomes(records, failing)
    assert failed.event_type == "notice.failed"
    assert (failed.data.channel, failed.data.attempts) == ("email", 1)  # not retried
    assert failed.data.error == "no customer e-mail address on file for this customer"
    assert [e.event_type for e in outcomes(records, later)] == ["notice.delivered"]

    def mine(rs: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [r for r in rs if r.key == unknown.encode()]

    (letter,) = mine(await env.read(dlq, lambda rs: bool(mine(rs))))
    assert letter.value == raw
    headers = read_headers(letter.headers)
    assert headers["event_type"] == "notice.requested"
    assert "no customer e-mail address on file" in headers["reason"]
    assert "@" not in headers["reason"]

    (got,) = (await env.mail(later))[later]
    assert got.rcpt_tos == (billing,)
    ids = {r.message["Message-ID"] for r in env.smtp.received}
    assert message_id(failing, FROM_DOMAIN) not in ids


def approval_needed(first: str, batch_id: str, *others: str) -> AccessApprovalNeeded:
    return AccessApprovalNeeded(
        event_id=f"approval-{batch_id}",
        event_type="access.approval_needed",
        occurred_at=datetime(2027, 1, 11, 9, 1, tzinfo=UTC),
        customer_id=first,
        data=AccessApprovalNeededData(
            batch_id=batch_id,
            guard="brake",
            count=3,
            customer_ids=[first, *others],
            reason="4 suspensions in the last 24 hours on partner_center, the cap is 3",
        ),
    )


async def committed_past(env: Env, tp: TopicPartition, offset: int) -> None:
    """Wait until the service's group committed past `offset` on `tp`: what the records up to
    there caused, dead letters included, was acknowledged before that commit."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env.bootstrap,
        group_id=env.service.settings.consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 45
        while (await consumer.committed(tp) or 0) <= offset:
            assert time.monotonic() < deadline, f"{tp} not committed past {offset} in 45s"
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def test_a_batch_of_parked_suspensions_gives_staff_one_mail_and_its_redelivery_none(
    env: Env,
) -> None:
    first, other = unique(), unique()
    _, partner = await env.customer(first, "en")
    batch_id, marker_batch = unique("brake-partner_center"), unique("brake-partner_center")
    batch, marker = approval_needed(first, batch_id, other), approval_needed(first, marker_batch)
    notice_id = staff_notice(batch, "zh-TW").notice_id
    marker_id = staff_notice(marker, "zh-TW").notice_id
    parked = EXAMPLES["access.parked"].model_copy(update={"customer_id": first})
    unparked = EXAMPLES["access.unparked"].model_copy(update={"customer_id": first})
    deliveries, dlq = await env.mark(DELIVERIES), await env.mark(f"{ACCESS}.dlq")

    # One key, one partition, in this order: the marker is handled after everything else.
    for event in (parked, batch, unparked, batch, marker):
        meta = await env.producer.send_and_wait(ACCESS, encode(event), key=first.encode())

    records = await env.read(deliveries, lambda rs: bool(outcomes(rs, marker_id)))
    assert [e.event_type for e in outcomes(records, notice_id)] == ["notice.delivered"]
    mail = await env.mail(notice_id, marker_id)
    (got,) = mail[notice_id]  # the redelivered batch sent nothing
    assert got.rcpt_tos == (partner,)
    assert got.message["Content-Language"] == "zh-TW"  # the partner's language
    assert got.message["Subject"] == "需要核准：3 筆暫停作業已擱置，原因是暫停數量超過每日上限"
    assert f"前幾位客戶：{first}和{other}\n" in got.text()  # 2 of the 3 parked
    assert "billstate access approve --all --by NAME --reason TEXT --send" in got.text()
    # access.parked and access.unparked were accepted: nothing dead-lettered.
    await committed_past(env, TopicPartition(ACCESS, meta.partition), meta.offset)
    assert await env.mark(f"{ACCESS}.dlq") == dlq


async def test_an_access_failure_reaches_the_partner_in_the_partners_language(env: Env) -> None:
    """access.failed on the broker: one mail to the partner's address, in zh-TW (the
    service's default locale), though the customer reads English."""
    customer_id = unique()
    _, partner = await env.customer(customer_id, "en")
    failed = EXAMPLES["access.failed"]
    assert isinstance(failed, AccessFailed)
    failed = failed.model_copy(update={"customer_id": customer_id, "event_id": unique("failed")})
    notice_id = staff_notice(failed, "zh-TW").notice_id
    await env.send(ACCESS, customer_id, encode(failed))

    (got,) = (await env.mail(notice_id))[notice_id]
    assert got.rcpt_tos == (partner,)
    assert got.message["Content-Language"] == "zh-TW"
    assert got.message["Subject"] == (
        f"需要處理：客戶 Contoso Ltd（{customer_id}）的訂閱 sub-55d0f2 存取權變更失敗"
    )
    assert "嘗試次數：5\n" in got.text()
