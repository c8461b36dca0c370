"""What `access.failed` and `access.drift` tell Microsoft support: the exchanges with Partner
Center, checked against the ids the local Partner Center actually received."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers.partner_center import (
    PartnerCenterConfig,
    PartnerCenterProvider,
)
from billstate_access_control.reconcile import Reconciler
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_devkit.partner_center import Logged, PartnerCenterServer
from billstate_shared.contracts import AccessDrift, AccessFailed, decode
from billstate_shared.contracts.events import MAX_EXCHANGES
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
WALL = datetime(2027, 1, 11, 9, 0, 5, tzinfo=UTC)
CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
PATH = f"/v1/customers/{CONTOSO}/subscriptions/{SUB}"


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 1
    offset: int = 7


def command(kind: str, command_id: str) -> Rec:
    return Rec(access_command(kind, "contoso", command_id, ["sub-a"], at=AT))


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenterServer]:
    async with PartnerCenterServer() as server:
        server.add_subscription(CONTOSO, SUB, autoRenewEnabled=True)
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


async def rig(
    pc: PartnerCenterServer, store: Store, *, attempts: int, **overrides: Any
) -> tuple[AccessHandler, PartnerCenterProvider]:
    fields: dict[str, Any] = {
        "base_url": pc.base_url,
        "token_url": pc.token_url,
        "client_id": pc.client_id,
        "client_secret": pc.client_secret,
        "request_timeout": 2.0,
        "customers": {"contoso": CONTOSO},
        "subscriptions": {"sub-a": SUB},
        **overrides,
    }
    provider = PartnerCenterProvider(PartnerCenterConfig(**fields), store, now=lambda: WALL)

    async def sleep(seconds: float) -> None:  # backoff asserted elsewhere; no waiting here
        del seconds

    handler = AccessHandler(
        store=store,
        provider=provider,
        retry=RetryPolicy(attempts=attempts, base_delay=0.1, max_delay=1.0),
        sleep=sleep,
    )
    return handler, provider


def events(outputs: Sequence[Produce]) -> list[Any]:
    return [decode(o.value or b"") for o in outputs if not o.topic.endswith(".dlq")]


def failed(outputs: Sequence[Produce]) -> AccessFailed:
    found = [e for e in events(outputs) if isinstance(e, AccessFailed)]
    assert len(found) == 1
    return found[0]


def api(pc: PartnerCenterServer) -> list[Logged]:
    """What the server received on the subscription API (the token requests left out)."""
    return pc.requests(path=PATH)


def seen(event: AccessFailed | AccessDrift) -> list[tuple[str, str, str | None, str | None]]:
    return [(x.method, x.path, x.request_id, x.correlation_id) for x in event.data.exchanges]


def received(log: Sequence[Logged]) -> list[tuple[str, str, str | None, str | None]]:
    return [(r.method, r.path, r.request_id, r.correlation_id) for r in log]


async def test_a_500_that_never_ends_is_failed_with_every_exchange(
    pc: PartnerCenterServer, store: Store
) -> None:
    handler, provider = await rig(pc, store, attempts=2)
    pc.fail(10, status=500, description="Unexpected service error", method="PATCH")
    try:
        event = failed(await handler(command("suspend", "c1")))
    finally:
        await provider.close()
    log = api(pc)
    assert [(r.method, r.status) for r in log] == [("GET", 200), ("PATCH", 500)] * 2
    assert seen(event) == received(log)
    assert [x.status for x in event.data.exchanges] == [200, 500, 200, 500]
    assert [x.answer for x in event.data.exchanges] == [
        None,
        "800003: Unexpected service error",
        None,
        "800003: Unexpected service error",
    ]
    assert {x.at for x in event.data.exchanges} == {WALL}
    # Both attempts asked for the same change of the same version: one MS-RequestId, so
    # Partner Center can tell a retried PATCH; every request its own correlation id.
    patches = [x for x in event.data.exchanges if x.method == "PATCH"]
    assert patches[0].request_id == patches[1].request_id
    assert len({x.correlation_id for x in event.data.exchanges}) == 4


async def test_only_the_last_exchanges_are_kept(pc: PartnerCenterServer, store: Store) -> None:
    handler, provider = await rig(pc, store, attempts=MAX_EXCHANGES + 2)
    pc.fail(20, status=503, method="GET")
    try:
        event = failed(await handler(command("suspend", "c1")))
    finally:
        await provider.close()
    log = api(pc)
    assert len(log) == MAX_EXCHANGES + 2  # one GET per attempt, each refused
    assert event.data.attempts == MAX_EXCHANGES + 2
    assert seen(event) == received(log)[-MAX_EXCHANGES:]


async def test_a_timeout_is_an_exchange_without_an_answer(
    pc: PartnerCenterServer, store: Store
) -> None:
    handler, provider = await rig(pc, store, attempts=2, request_timeout=0.3)
    pc.slow(2, 1.5, method="GET")
    try:
        event = failed(await handler(command("suspend", "c1")))
    finally:
        await provider.close()
    log = api(pc)  # the server logs a request before it waits: it saw both
    assert [r.method for r in log] == ["GET", "GET"]
    assert seen(event) == received(log)
    assert [(x.status, x.answer) for x in event.data.exchanges] == [(None, None), (None, None)]
    assert "timed out" in event.data.error


async def test_a_stale_etag_shows_each_412_and_the_request_ids_sent(
    pc: PartnerCenterServer, store: Store
) -> None:
    handler, provider = await rig(pc, store, attempts=1, max_conflict_retries=1)
    pc.change_between_get_and_patch(2)
    try:
        event = failed(await handler(command("suspend", "c1")))
    finally:
        await provider.close()
    log = api(pc)
    assert [(r.method, r.status) for r in log] == [("GET", 200), ("PATCH", 412)] * 2
    assert seen(event) == received(log)
    assert [x.answer for x in event.data.exchanges if x.method == "PATCH"] == [
        "2055: Etag is no longer valid"
    ] * 2
    # A new version read, a new MS-RequestId: these are two different PATCHes.
    patches = [x for x in event.data.exchanges if x.method == "PATCH"]
    assert patches[0].request_id != patches[1].request_id


async def test_no_token_or_personal_data_in_the_exchanges(
    pc: PartnerCenterServer, store: Store
) -> None:
    handler, provider = await rig(pc, store, attempts=1)
    pc.fail(1, status=400, description="Refused for jane.doe@contoso.com", method="PATCH")
    try:
        event = failed(await handler(command("suspend", "c1")))
    finally:
        await provider.close()
    text = event.model_dump_json()
    assert event.data.exchanges[-1].answer == "800002: Refused for <email>"
    assert "jane.doe" not in text
    assert pc.client_secret not in text
    assert not any(token in text for token in pc.issued_tokens())


async def test_a_drift_carries_the_read_that_found_it_and_the_repair(
    pc: PartnerCenterServer, store: Store
) -> None:
    handler, provider = await rig(pc, store, attempts=2)
    sent: list[Produce] = []

    async def send(out: Produce) -> None:
        sent.append(out)

    reconciler = Reconciler(
        store=store, provider=provider, handler=handler, send=send, clock=lambda: WALL
    )
    try:
        assert [e.event_type for e in events(await handler(command("suspend", "c1")))] == [
            "access.suspended"
        ]
        pc.hand_change(CONTOSO, SUB, status="active", autoRenewEnabled=True)
        before = len(api(pc))
        pc.fail(1, status=500, method="PATCH")  # the repair's first PATCH fails, then lands
        await reconciler.run_once()
    finally:
        await provider.close()
    out = events(sent)
    assert [e.event_type for e in out] == ["access.drift", "access.suspended"]
    drift = out[0]
    assert isinstance(drift, AccessDrift)
    log = api(pc)[before:]
    assert [(r.method, r.status) for r in log] == [
        ("GET", 200),  # the reconciler's read: active, where suspended was applied
        ("GET", 200),
        ("PATCH", 500),
        ("GET", 200),
        ("PATCH", 200),
    ]
    assert seen(drift) == received(log)
    assert [x.status for x in drift.data.exchanges] == [200, 200, 500, 200, 200]
    assert pc.subscription(CONTOSO, SUB)["status"] == "suspended"
