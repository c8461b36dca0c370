"""The console in-process against a real Kafka broker: the lifecycle's inputs, what
`billstate replay` made of them and the actuators' answers go to their topics; the console's
new store reads every topic from the start and its customer page shows the stage and the
timeline. Customer and event ids are unique per run, so earlier runs' records change nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from billstate_console.config import Settings
from billstate_console.entrypoints.service import ConsoleService
from billstate_console.handlers import TOPICS
from billstate_console.store import Store
from billstate_devkit.kafka import ensure_catalog, wait_for
from billstate_shared.contracts import Event, encode
from billstate_shared.topics import BY_NAME

pytestmark = pytest.mark.broker

TOKEN = "console-broker-test-token"


def topic_of(event_type: str) -> str:
    return next(name for name in TOPICS if event_type in BY_NAME[name].event_types)


async def test_the_customer_page_shows_the_history_from_the_topics(
    kafka_bootstrap: str, history: list[Event], tmp_path: Path
) -> None:
    await ensure_catalog(kafka_bootstrap)
    cid = f"it-{uuid.uuid4().hex[:10]}"
    events = [
        e.model_copy(update={"customer_id": cid, "event_id": f"{cid}-{e.event_id}"})
        for e in history
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topic_of(event.event_type), value=encode(event), key=cid.encode()
            )
        # One redelivered record: the read model must not change for it.
        await producer.send_and_wait(
            topic_of(events[-1].event_type), value=encode(events[-1]), key=cid.encode()
        )
    finally:
        await producer.stop()

    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=0,
        data_dir=tmp_path,
        viewer_token=SecretStr(TOKEN),
    )
    service = ConsoleService(settings)
    await service.start()
    running = asyncio.create_task(service.run())
    try:
        expected = Store(":memory:")
        for event in events:
            expected.apply(event)
        want = expected.timeline(cid)

        def caught_up() -> bool:
            return len(service.store.timeline(cid)) == len(want) and (
                service.store.customer(cid) == expected.customer(cid)
            )

        await wait_for(caught_up, timeout=60)
        assert service.store.timeline(cid) == want  # same rows as built in-process

        url = f"http://127.0.0.1:{service.port}/customers/{cid}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as answer:
                assert answer.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(url, headers=headers) as answer:
                assert answer.status == 200
                html = await answer.text()
            async with http.get(f"{url}?lang=zh-TW", headers=headers) as answer:
                zh = await answer.text()
        assert '<dd class="stage" id="stage">current</dd>' in html
        assert "entered suspended (from final notice)" in html
        assert "left no overdue balance" in html
        assert html.count('<tr class="entry') == len(want)
        assert '<dd class="stage" id="stage">正常</dd>' in zh
    finally:
        await service.stop()
        await running
        await service.close()
