"""The console's actions against a real Kafka broker: an operator signs in with a browser's
form, acknowledges a case and places a hold; the events land on their topics with the
signed-in identity as `by`, the console's own consumer applies them (the hold once a
collections.state record carries it), and a dead letter goes back to its original topic.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from billstate_console.actions import Cluster
from billstate_console.config import Settings
from billstate_console.entrypoints.service import ConsoleService
from billstate_devkit.kafka import ensure_catalog, wait_for
from billstate_shared.contracts import CaseAcknowledged, HoldPlaced, decode
from billstate_shared.operator.letters import read_letters
from billstate_shared.topics import ACCESS_EVENTS, CASES, CONTROL, CUSTOMERS, STATE

pytestmark = pytest.mark.broker

TOKEN = "console-operator-broker-token"
NOW = datetime.now(UTC).replace(microsecond=0)


def envelope(cid: str, event_id: str, event_type: str, data: dict[str, object]) -> bytes:
    doc = {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": NOW.isoformat(),
        "customer_id": cid,
        "data": data,
    }
    return json.dumps(doc).encode()


async def produce(bootstrap: str, cid: str) -> None:
    """A failed provider call (a case) and a dead letter of billing.customers.v1."""
    failed = envelope(
        cid, f"{cid}-failed", "access.failed",
        {"command_id": f"{cid}-cmd", "subscription_id": "sub-1", "provider": "partner_center",
         "attempts": 3, "error": "409 locked"},
    )  # fmt: skip
    upsert = envelope(
        cid, f"{cid}-upsert", "customer.upserted",
        {"name": "Broker Test", "locale": "en", "billing_email": "ap@contoso.example",
         "partner_contact_email": "am@partner.example", "tags": [], "subscription_ids": ["sub-1"]},
    )  # fmt: skip
    headers = [
        (f"billstate.dlq.{k}", v.encode())
        for k, v in {
            "reason": "a store was down",
            "field": "$",
            "topic": CUSTOMERS.name,
            "partition": "0",
            "offset": "0",
            "service": "notifications",
            "event_type": "customer.upserted",
        }.items()
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(ACCESS_EVENTS.name, value=failed, key=cid.encode())
        await producer.send_and_wait(CUSTOMERS.dlq, value=upsert, key=cid.encode(), headers=headers)
    finally:
        await producer.stop()


async def state_with(bootstrap: str, cid: str, hold: dict[str, object]) -> None:
    """What collections would publish once it applied the hold."""
    state = envelope(
        cid, f"{cid}-state", "collections.state",
        {"stage": "current", "delinquent": False, "overdue": [], "anchor_due_on": None,
         "days_past_due": None, "as_of": NOW.date().isoformat(),
         "holds": [{**hold, "placed_on": NOW.date().isoformat()}],
         "suspended_subscription_ids": [], "next": None,
         "policy": {"name": "standard", "version": 3}},
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(STATE.name, value=state, key=cid.encode())
    finally:
        await producer.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def act(http: aiohttp.ClientSession, base: str, cid: str, at: str) -> None:
    """Sign in with the form, acknowledge the case, place a hold, re-drive the letter."""
    async with http.post(f"{base}/signin", data={"token": TOKEN}) as answer:
        assert answer.status == 200  # redirected to the overview, signed in
    async with http.get(f"{base}/cases/{cid}-failed") as answer:
        csrf = csrf_of(await answer.text())
    form = {"note": "asked Microsoft", "csrf": csrf}
    async with http.post(f"{base}/cases/{cid}-failed/acknowledge?lang=en", data=form) as answer:
        assert answer.status == 200
        assert 'id="message"' in await answer.text()
    hold = {"kind": "manual", "reason": "call first", "csrf": csrf}
    async with http.post(
        f"{base}/customers/{cid}/holds", data=hold, allow_redirects=False
    ) as answer:
        assert answer.status == 303
    redrive = {"topic": CUSTOMERS.dlq, "letter": at, "csrf": csrf}
    async with http.post(
        f"{base}/dead-letters/redrive", data=redrive, allow_redirects=False
    ) as answer:
        assert answer.status == 303


async def landed(bootstrap: str, cid: str) -> HoldPlaced:
    """The hold.placed on its topic (returned), the case step, the re-driven record."""
    cluster = Cluster(bootstrap)
    control = [
        decode(r.value) for r in await read_letters(cluster, CONTROL.name)
        if r.key == cid.encode() and r.value is not None
    ]  # fmt: skip
    (placed,) = control
    assert isinstance(placed, HoldPlaced)
    assert placed.data.by == "token:operator"
    (step,) = [r for r in await read_letters(cluster, CASES.name) if r.key == cid.encode()]
    assert step.value is not None
    note = decode(step.value)
    assert isinstance(note, CaseAcknowledged)
    assert note.data.by == "token:operator"
    (back,) = [r for r in await read_letters(cluster, CUSTOMERS.name) if r.key == cid.encode()]
    assert back.value is not None
    assert decode(back.value).event_id == f"{cid}-upsert"
    return placed


async def test_an_operator_acts_from_the_console(kafka_bootstrap: str, tmp_path: Path) -> None:
    await ensure_catalog(kafka_bootstrap)
    cid = f"ops-{uuid.uuid4().hex[:10]}"
    await produce(kafka_bootstrap, cid)
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=0,
        data_dir=tmp_path,
        operator_token=SecretStr(TOKEN),
    )
    service = ConsoleService(settings)
    await service.start()
    running = asyncio.create_task(service.run())
    store = service.store
    case_id = f"{cid}-failed"
    try:
        await wait_for(
            lambda: (
                store.case(case_id) is not None
                and any(x.customer_id == cid for x in store.letters(CUSTOMERS.dlq))
            ),
            timeout=60,
        )
        letter = next(x for x in store.letters(CUSTOMERS.dlq) if x.customer_id == cid)
        base = f"http://127.0.0.1:{service.port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await act(http, base, cid, f"{letter.partition}:{letter.offset}")
            # The console's own consumer applies its case step.
            await wait_for(lambda: bool(store.case(case_id)[1]), timeout=60)  # type: ignore[index]
            (note,) = store.case(case_id)[1]  # type: ignore[index]
            assert (note.step, note.by) == ("acknowledged", "token:operator")
            placed = await landed(kafka_bootstrap, cid)
            done = {(a.action, a.actor) for a in store.actions()}
            assert {a for a, _ in done} == {"redrive", "hold.placed", "case.acknowledged"}
            assert {who for _, who in done} == {"token:operator"}
            # The audit page and its JSON: newest first, each with its event id and result.
            async with http.get(f"{base}/api/audit") as answer:
                audit = await answer.json()
            assert [(a["action"], a["result"]) for a in audit["items"]] == [
                ("redrive", "sent"), ("hold.placed", "sent"), ("case.acknowledged", "sent"),
            ]  # fmt: skip
            assert all(a["event_id"] for a in audit["items"])
            async with http.get(f"{base}/audit?lang=zh-TW") as answer:
                assert "操作紀錄" in await answer.text()

            # The hold shows once collections publishes a state that carries it.
            data = placed.data.model_dump(mode="json")
            await state_with(kafka_bootstrap, cid, data)
            hold_id = data["hold_id"]

            def applied() -> bool:
                row = store.customer(cid)
                return row is not None and hold_id in (row.state or "")

            await wait_for(applied, timeout=60)
            async with http.get(f"{base}/customers/{cid}") as answer:
                page = await answer.text()
            assert f'data-hold-id="{hold_id}"' in page
            assert 'class="release"' in page
    finally:
        await service.stop()
        await running
        await service.close()
