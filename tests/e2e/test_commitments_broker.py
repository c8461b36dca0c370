"""A commitment at stake on a real broker: a customer at final notice whose subscription
auto-renews in 10 days gets one `access.commitment` and staff one `commitment_alert` e-mail,
however often access-control checks.

Both services run in-process (fresh consumer groups at the end of their topics, own data
dirs); Partner Center is the test server, the e-mail goes to the SMTP test server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import SecretStr

from billstate_access_control.config import Settings as AccessSettings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_devkit.smtp import SmtpTestServer
from billstate_notifications.channels.email import EmailChannel, EmailConfig, message_id
from billstate_notifications.config import Settings as NoticeSettings
from billstate_notifications.domain import staff_notice
from billstate_notifications.entrypoints.service import NotificationsService
from billstate_notifications.handlers import TOPICS as NOTICE_TOPICS
from billstate_shared.contracts import (
    AccessCommitment,
    CustomerUpserted,
    CustomerUpsertedData,
    StageEntered,
    decode,
    encode,
)
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.topic_admin import start_group_at_end
from billstate_shared.topics import ACCESS_COMMANDS, ACCESS_EVENTS, APPROVALS, CUSTOMERS, EVENTS

pytestmark = pytest.mark.broker

TOKEN = SecretStr("commitments-test-token")
FROM_DOMAIN = "billstate.test"
TENANT = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@asynccontextmanager
async def notifications(bootstrap: str, tmp: Path, smtp: SmtpTestServer) -> AsyncIterator[None]:
    group = unique("notifications-commitments")
    await start_group_at_end(bootstrap, group, NOTICE_TOPICS)
    settings = NoticeSettings(
        kafka_bootstrap_servers=bootstrap,
        consumer_group=group,
        data_dir=tmp / "notifications",
        http_port=0,
        retry_base_delay=0.01,
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
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or runner.done(), timeout=60)
        assert not runner.done(), "notifications ended during start-up"
        yield
    finally:
        await service.stop()
        try:
            await runner
        finally:
            await service.close()


@asynccontextmanager
async def access_control(
    bootstrap: str, tmp: Path, pc: PartnerCenterServer, customer: str
) -> AsyncIterator[AccessControl]:
    group = unique("access-control-commitments")
    await start_group_at_end(bootstrap, group, [ACCESS_COMMANDS.name, APPROVALS.name, EVENTS.name])
    mapping = tmp / "partner-center.yaml"
    mapping.write_text(f"customers:\n  {customer}: {TENANT}\n", encoding="utf-8")
    settings = AccessSettings(
        kafka_bootstrap_servers=bootstrap,
        data_dir=tmp / "access-control",
        http_host="127.0.0.1",
        http_port=0,
        http_token=TOKEN,
        consumer_group=group,
        provider="partner_center",
        partner_center_base_url=pc.base_url,
        partner_center_token_url=pc.token_url,
        partner_center_client_id=pc.client_id,
        partner_center_client_secret=SecretStr(pc.client_secret),
        partner_center_mapping_file=mapping,
        retry_base_delay=0.05,
        retry_max_delay=1.0,
        reconcile_interval=0,
        payment_feed_max_age=0,
        commitment_interval=0.2,  # checks again and again: still one announcement
    )
    service = AccessControl(settings)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: service.progress.assigned or task.done(), timeout=60)
        assert not task.done(), "access-control ended during start-up"
        yield service
    finally:
        await service.stop()
        try:
            await task
        finally:
            await service.close()


async def check_now(service: AccessControl) -> Any:
    url = f"http://127.0.0.1:{service.port}/commitments/check"
    headers = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


def final_notice(customer: str, as_of: date) -> bytes:
    example = EXAMPLES["collections.stage_entered"]
    assert isinstance(example, StageEntered)
    data = example.data.model_copy(
        update={"stage": "final_notice", "previous": "overdue", "as_of": as_of}
    )
    event = example.model_copy(
        update={"customer_id": customer, "event_id": unique("stage"), "data": data}
    )
    return encode(event)


def customer_upserted(customer: str, partner: str) -> bytes:
    return encode(
        CustomerUpserted(
            event_id=unique("cust"),
            event_type="customer.upserted",
            occurred_at=datetime(2027, 1, 1, tzinfo=UTC),
            customer_id=customer,
            data=CustomerUpsertedData(
                name="Contoso Ltd",
                locale="en",
                billing_email=f"ap.{customer}@contoso.example",
                partner_contact_email=partner,
                tags=[],
                subscription_ids=["sub-a"],
            ),
        )
    )


def commitments(records: list[ConsumerRecord], customer: str) -> list[AccessCommitment]:
    found = []
    for record in records:
        if record.key != customer.encode():
            continue
        event = decode(record.value)
        if isinstance(event, AccessCommitment):
            found.append(event)
    return found


async def test_a_renewal_in_ten_days_gives_one_commitment_and_one_mail(
    kafka_bootstrap: str, tmp_path: Path, smtp: SmtpTestServer
) -> None:
    await ensure_catalog(kafka_bootstrap)
    customer = unique("cm")
    partner = f"csp.{customer}@partner.example"
    today = datetime.now(UTC).date()
    renews = today + timedelta(days=10)
    start = await end_offsets(kafka_bootstrap, ACCESS_EVENTS.name)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with (
            PartnerCenterServer() as pc,
            notifications(kafka_bootstrap, tmp_path, smtp),
            access_control(kafka_bootstrap, tmp_path, pc, customer) as service,
        ):
            pc.add_subscription(
                TENANT, SUB, commitmentEndDate=f"{renews - timedelta(days=1)}T00:00:00Z"
            )
            await producer.send_and_wait(
                CUSTOMERS.name, customer_upserted(customer, partner), key=customer.encode()
            )
            await producer.send_and_wait(
                EVENTS.name, final_notice(customer, today), key=customer.encode()
            )

            records = await read_after(
                kafka_bootstrap, start, lambda rs: bool(commitments(rs, customer)), timeout=60
            )
            (event,) = commitments(records, customer)
            assert event.data.renews_on == renews
            assert event.data.subscription_id == SUB
            notice_id = staff_notice(event, "en").notice_id
            mail_id = message_id(notice_id, FROM_DOMAIN)
            await smtp.wait_async(
                lambda rs: any(r.message["Message-ID"] == mail_id for r in rs), timeout=60
            )
            # More checks, scheduled and on demand, find it again and announce nothing.
            again = await check_now(service)
            assert (again["customers"], again["subscriptions"], again["announced"]) == (1, 1, 0)
            await check_now(service)
            # A marker after them on the customer's partition: what came before it is all.
            marker = EXAMPLES["access.parked"].model_copy(
                update={"customer_id": customer, "event_id": unique("marker")}
            )
            await producer.send_and_wait(ACCESS_EVENTS.name, encode(marker), key=customer.encode())
            everything = await read_after(
                kafka_bootstrap,
                start,
                lambda rs: any(r.key == customer.encode() and b"marker-" in r.value for r in rs),
                timeout=60,
            )
    finally:
        await producer.stop()

    assert len(commitments(everything, customer)) == 1
    mails = [r for r in smtp.received if r.message["Message-ID"] == mail_id]
    assert len(mails) == 1
    (mail,) = mails
    assert mail.rcpt_tos == (partner,)
    assert "auto-renews on" in mail.message["Subject"]
    assert SUB in mail.text()
