"""The helpdesk's signed webhook against a real broker: one delivery makes exactly one
support.requested on support.requests.v1 (keyed by the customer), which the console reads
back into its open requests; the helpdesk's retry of the same delivery makes none."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from billstate_console.actions import Cluster
from billstate_console.config import Settings
from billstate_console.entrypoints.service import ConsoleService
from billstate_devkit.kafka import ensure_catalog, wait_for
from billstate_shared.contracts import SupportRequested, decode
from billstate_shared.operator.letters import read_letters
from billstate_shared.topics import SUPPORT
from billstate_shared.webhooks import new_secret, signed_headers

pytestmark = pytest.mark.broker

SECRET = new_secret()


async def on_topic(bootstrap: str, cid: str) -> list[SupportRequested]:
    found = [
        decode(r.value)
        for r in await read_letters(Cluster(bootstrap), SUPPORT.name)
        if r.key == cid.encode() and r.value is not None
    ]
    assert all(isinstance(e, SupportRequested) for e in found)
    return found  # type: ignore[return-value]


async def test_a_signed_delivery_makes_one_request_and_its_replay_none(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_catalog(kafka_bootstrap)
    cid = f"sup-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        http_port=0,
        data_dir=tmp_path,
        helpdesk_secret=SecretStr(SECRET),
    )
    service = ConsoleService(settings)
    await service.start()
    running = asyncio.create_task(service.run())
    store = service.store
    body = json.dumps(
        {
            "zendesk": {
                "ticket_id": "4711", "customer_id": cid, "tags": "payment_claimed",
                "via": "Mail", "title": "paid on Friday", "status": "Open",
            }
        }
    ).encode()  # fmt: skip
    url = f"http://127.0.0.1:{service.port}/hooks/helpdesk"
    try:
        async with aiohttp.ClientSession() as http:
            headers = signed_headers(SECRET, f"msg-{cid}", body, datetime.now(UTC))
            async with http.post(url, data=body, headers=headers) as answer:
                assert answer.status == 202
                sent = await answer.json()
            assert sent["event_id"] == f"helpdesk:{cid}:ZD-4711:requested"
            # The console reads its own event back: the request is open.
            await wait_for(lambda: bool(store.open_tickets(cid)), timeout=60)
            (event,) = await on_topic(kafka_bootstrap, cid)
            assert (event.data.ticket_id, event.data.topic) == ("ZD-4711", "payment_claimed")
            # The helpdesk's retry: same webhook id, signed again a moment later.
            again = signed_headers(SECRET, f"msg-{cid}", body, datetime.now(UTC))
            async with http.post(url, data=body, headers=again) as answer:
                assert answer.status == 200
                assert await answer.json() == {"result": "duplicate"}
        assert len(await on_topic(kafka_bootstrap, cid)) == 1
        audit = [(a.actor, a.action, a.subject) for a in store.actions()]
        assert audit == [("helpdesk", "support.requested", cid)]
    finally:
        await service.stop()
        await running
        await service.close()
