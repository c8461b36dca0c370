"""The Partner Center provider against a local Partner Center, driven by the real handler.

The server (billstate_devkit.partner_center) speaks the token endpoint and the
subscription GET/PATCH with etags; faults are injected there, never in our code. The handler's
`sleep` only records, so Retry-After and backoff are asserted without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import Change, ProviderError
from billstate_access_control.providers.partner_center import (
    NAME,
    PartnerCenterConfig,
    PartnerCenterProvider,
)
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_shared.contracts import (
    decode,
)
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SUB2 = "9e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
SCHEDULED = {
    "product": {
        "productId": "CFQ7TTC0LDPB",
        "skuId": "0001",
        "availabilityId": "CFQ7TTC0K5BF",
        "billingCycle": "monthly",
        "termDuration": "P1Y",
    },
    "quantity": 25,
}


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 1
    offset: int = 7


def command(kind: str, command_id: str, *subs: str, customer: str = "contoso") -> Rec:
    value = access_command(kind, customer, command_id, subs, at=AT)
    return Rec(value, key=customer.encode())


def kinds(outputs: Sequence[Produce]) -> list[str]:
    return ["dlq" if o.topic.endswith(".dlq") else decode(o.value).event_type for o in outputs]


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenterServer]:
    async with PartnerCenterServer() as server:
        server.add_subscription(
            CONTOSO, SUB, autoRenewEnabled=True, scheduledNextTermInstructions=SCHEDULED
        )
        server.add_subscription(CONTOSO, SUB2, autoRenewEnabled=True)
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


def config(pc: PartnerCenterServer, **overrides: Any) -> PartnerCenterConfig:
    fields: dict[str, Any] = {
        "base_url": pc.base_url,
        "token_url": pc.token_url,
        "client_id": pc.client_id,
        "client_secret": pc.client_secret,
        "request_timeout": 2.0,
        "customers": {"contoso": CONTOSO},
        # "sub-a" is billstate's name for SUB; SUB2 is known to billstate by its own id.
        "subscriptions": {"sub-a": SUB},
    }
    fields.update(overrides)
    return PartnerCenterConfig(**fields)


@pytest.fixture
async def provider(pc: PartnerCenterServer, store: Store) -> AsyncIterator[PartnerCenterProvider]:
    provider = PartnerCenterProvider(config(pc), store)
    yield provider
    await provider.close()


def make(store: Store, provider: PartnerCenterProvider) -> tuple[AccessHandler, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    handler = AccessHandler(
        store=store,
        provider=provider,
        retry=RetryPolicy(attempts=5, base_delay=0.2, max_delay=30.0),
        sleep=sleep,
    )
    return handler, slept


# -- the happy path -----------------------------------------------------------------------


async def test_suspend_then_restore_puts_auto_renew_and_scheduled_changes_back(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler, slept = make(store, provider)
    out = list(await handler(command("suspend", "c1", "sub-a")))
    assert kinds(out) == ["access.suspended"]
    assert json.loads(out[0].value)["data"]["provider"] == "partner_center"
    now = pc.subscription(CONTOSO, SUB)
    assert (now["status"], now["autoRenewEnabled"]) == ("suspended", False)
    assert "scheduledNextTermInstructions" not in now  # what the real service drops
    assert store.memo(NAME, "contoso", "sub-a") == {
        "command_id": "c1",
        "autoRenewEnabled": True,
        "scheduledNextTermInstructions": SCHEDULED,
    }

    out = list(await handler(command("restore", "r1", "sub-a")))
    assert kinds(out) == ["access.restored"]
    now = pc.subscription(CONTOSO, SUB)
    assert (now["status"], now["autoRenewEnabled"]) == ("active", True)
    assert now["scheduledNextTermInstructions"] == SCHEDULED
    assert store.memo(NAME, "contoso", "sub-a") is None
    assert pc.patches(CONTOSO, SUB) == 2
    assert slept == []


async def test_the_patch_carries_the_whole_resource_and_the_etag(
    pc: PartnerCenterServer, provider: PartnerCenterProvider
) -> None:
    before = pc.subscription(CONTOSO, SUB2)
    await provider.apply(Change("contoso", SUB2, "suspended", "c1"))
    after = pc.subscription(CONTOSO, SUB2)
    # Everything we did not mean to change is as it was; the etag moved on.
    assert {
        k: v for k, v in after.items() if k not in ("status", "autoRenewEnabled", "attributes")
    } == {k: v for k, v in before.items() if k not in ("status", "autoRenewEnabled", "attributes")}
    assert after["attributes"]["etag"] != before["attributes"]["etag"]
    assert pc.patches(CONTOSO, SUB2, status=200) == 1


async def test_a_duplicate_command_makes_no_second_patch(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler, _ = make(store, provider)
    first = list(await handler(command("suspend", "c1", "sub-a", SUB2)))
    again = list(await handler(command("suspend", "c1", "sub-a", SUB2)))
    assert [o.value for o in again] == [o.value for o in first]
    assert pc.patches(CONTOSO, SUB) == 1
    assert pc.patches(CONTOSO, SUB2) == 1


async def test_already_in_the_desired_state_gets_no_patch(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    pc.hand_change(CONTOSO, SUB2, status="suspended", autoRenewEnabled=False)
    handler, _ = make(store, provider)
    assert kinds(await handler(command("suspend", "c1", SUB2))) == ["access.suspended"]
    await provider.apply(Change("contoso", "sub-a", "active", "c2"))
    assert pc.patches(CONTOSO, SUB2) == 0
    assert pc.patches(CONTOSO, SUB) == 0
    # Suspended by someone else: nothing of ours to put back, and nothing written down.
    assert store.memo(NAME, "contoso", SUB2) is None


async def test_a_second_suspend_keeps_what_the_first_wrote_down(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    await provider.apply(Change("contoso", "sub-a", "suspended", "c1"))
    memo = store.memo(NAME, "contoso", "sub-a")
    await provider.apply(Change("contoso", "sub-a", "suspended", "c2"))
    assert store.memo(NAME, "contoso", "sub-a") == memo
    assert memo is not None
    assert memo["autoRenewEnabled"] is True
    assert pc.patches(CONTOSO, SUB) == 1


# -- converging under faults -----------------------------------------------------------


FAULTS = ["expired token", "412", "429", "500", "slow"]


def inject(pc: PartnerCenterServer, fault: str) -> None:
    if fault == "expired token":
        pc.expire_tokens()
    elif fault == "412":
        pc.change_between_get_and_patch(1)
    elif fault == "429":
        pc.throttle(1, retry_after=7)
    elif fault == "500":
        pc.fail(2, status=500)
    elif fault == "slow":
        pc.slow(1, 1.0)


@pytest.mark.parametrize("fault", FAULTS)
async def test_suspend_and_restore_converge_under(
    fault: str, pc: PartnerCenterServer, store: Store
) -> None:
    provider = PartnerCenterProvider(config(pc, request_timeout=0.3), store)
    handler, slept = make(store, provider)
    try:
        for kind, cid, want in (("suspend", "c1", "suspended"), ("restore", "r1", "active")):
            await provider.observe("contoso", "sub-a")  # a token is in hand before the fault
            slept.clear()
            inject(pc, fault)
            out = list(await handler(command(kind, cid, "sub-a")))
            assert kinds(out) == [f"access.{'suspended' if kind == 'suspend' else 'restored'}"]
            assert pc.subscription(CONTOSO, SUB)["status"] == want
            expected = {
                "expired token": [],  # a 401 is answered by a new token, not by a retry
                "412": [],  # re-read inside the provider
                "429": [7.0],  # Retry-After wins over the 0.2s backoff
                "500": [0.2, 0.4],
                "slow": [0.2],
            }[fault]
            assert slept == expected
    finally:
        await provider.close()
    now = pc.subscription(CONTOSO, SUB)
    assert now["autoRenewEnabled"] is True
    assert now["scheduledNextTermInstructions"] == SCHEDULED
    assert store.memo(NAME, "contoso", "sub-a") is None
    assert pc.patches(CONTOSO, SUB, status=200) == 2
    if fault == "412":
        assert pc.patches(CONTOSO, SUB, status=412) == 2
    if fault == "expired token":
        assert pc.tokens_issued() == 3  # the first, and one after each expiry
        assert len([r for r in pc.requests() if r.status == 401]) == 2


async def test_a_failed_patch_keeps_the_memo_until_a_restore_lands(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler, slept = make(store, provider)
    pc.fail(1, status=503, method="PATCH")
    assert kinds(await handler(command("suspend", "c1", "sub-a"))) == ["access.suspended"]
    assert store.memo(NAME, "contoso", "sub-a") is not None
    pc.fail(1, status=503, method="PATCH")
    pc.fail(1, status=503, method="PATCH")
    assert kinds(await handler(command("restore", "r1", "sub-a"))) == ["access.restored"]
    assert slept == [0.2, 0.2, 0.4]
    assert pc.subscription(CONTOSO, SUB)["autoRenewEnabled"] is True
    assert store.memo(NAME, "contoso", "sub-a") is None


async def test_a_restore_whose_answer_was_lost_is_not_patched_again(
    pc: PartnerCenterServer, store: Store
) -> None:
    provider = PartnerCenterProvider(config(pc, request_timeout=0.3), store)
    handler, slept = make(store, provider)
    try:
        await handler(command("suspend", "c1", "sub-a"))
        pc.slow(1, 1.0, method="PATCH")  # the write lands, the answer comes too late
        assert kinds(await handler(command("restore", "r1", "sub-a"))) == ["access.restored"]
    finally:
        await provider.close()
    assert slept == [0.2]
    assert pc.patches(CONTOSO, SUB) == 2  # one suspend, one restore: the retry only read
    now = pc.subscription(CONTOSO, SUB)
    assert (now["status"], now["autoRenewEnabled"]) == ("active", True)
    assert store.memo(NAME, "contoso", "sub-a") is None


async def test_endless_conflicts_give_up_with_a_retryable_error(
    pc: PartnerCenterServer, store: Store
) -> None:
    provider = PartnerCenterProvider(config(pc, max_conflict_retries=2), store)
    pc.change_between_get_and_patch(100)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.apply(Change("contoso", "sub-a", "suspended", "c1"))
    finally:
        await provider.close()
    assert caught.value.retryable
    assert "412" in caught.value.message
    assert pc.patches(CONTOSO, SUB, status=412) == 3


async def test_not_found_is_not_retried(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler, slept = make(store, provider)
    out = list(await handler(command("suspend", "c1", "unknown-sub")))
    assert kinds(out) == ["access.failed", "dlq"]
    failed = json.loads(out[0].value)["data"]
    assert failed["attempts"] == 1
    assert failed["error"].startswith("Partner Center GET: HTTP 404, code 20003")
    assert slept == []


async def test_an_unmapped_customer_fails_and_is_dead_lettered(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    handler, slept = make(store, provider)
    out = list(await handler(command("suspend", "c1", "s1", customer="fabrikam")))
    assert kinds(out) == ["access.failed", "dlq"]
    reason = "customer fabrikam has no Partner Center tenant in the mapping"
    assert json.loads(out[0].value)["data"]["error"] == reason
    assert reason in read_headers(out[1].headers)["reason"]
    assert slept == []
    assert pc.requests() == []  # not even a token was asked for


# -- tokens -----------------------------------------------------------------------------


async def test_one_token_serves_many_calls_and_a_new_one_comes_after_expiry(
    pc: PartnerCenterServer, store: Store
) -> None:
    now = [1000.0]
    provider = PartnerCenterProvider(config(pc), store, clock=lambda: now[0])
    handler, _ = make(store, provider)
    try:
        await handler(command("suspend", "c1", "sub-a", SUB2))
        await handler(command("restore", "r1", "sub-a", SUB2))
        assert pc.tokens_issued() == 1
        assert len(pc.requests(method="PATCH")) == 4
        # The server says 3599s; we refresh a safety margin (60s) before that, unprompted.
        now[0] += 3599 - 60
        assert await provider.observe("contoso", "sub-a") == "active"
        assert pc.tokens_issued() == 2
        assert not [r for r in pc.requests() if r.status == 401]
        pc.expire_tokens()
        assert await provider.observe("contoso", "sub-a") == "active"
        assert pc.tokens_issued() == 3
    finally:
        await provider.close()


async def test_wrong_credentials_are_not_retried_and_not_told(
    pc: PartnerCenterServer, store: Store
) -> None:
    secret = "the-wrong-secret-4711"
    provider = PartnerCenterProvider(config(pc, client_secret=secret), store)
    handler, slept = make(store, provider)
    try:
        with structlog.testing.capture_logs() as logs:
            out = list(await handler(command("suspend", "c1", "sub-a")))
    finally:
        await provider.close()
    assert kinds(out) == ["access.failed", "dlq"]
    error = json.loads(out[0].value)["data"]["error"]
    assert error == "token request: HTTP 401 invalid_client"
    assert secret not in repr(logs)
    assert secret not in repr(config(pc, client_secret=secret))
    assert slept == []


async def test_the_token_secret_and_addresses_never_reach_an_error(
    pc: PartnerCenterServer, store: Store, provider: PartnerCenterProvider
) -> None:
    await provider.observe("contoso", "sub-a")
    [token] = pc.issued_tokens()
    # A far side that echoes what it should not: our credentials and a person's address.
    leaky = f"denied for ops@contoso.example with Bearer {token} and {pc.client_secret}"
    pc.fail(5, status=503, description=leaky)
    handler, _ = make(store, provider)
    with structlog.testing.capture_logs() as logs:
        out = list(await handler(command("suspend", "c1", "sub-a")))
    assert kinds(out) == ["access.failed", "dlq"]
    everything = repr(logs) + "".join(o.value.decode() for o in out)
    everything += repr([h for o in out for h in o.headers])
    for secret in (token, pc.client_secret, "ops@contoso.example"):
        assert secret not in everything
    error = json.loads(out[0].value)["data"]["error"]
    assert error.startswith("Partner Center GET: HTTP 503, code 800003")


# -- observe ----------------------------------------------------------------------------


async def test_a_hand_change_is_visible_through_observe(
    pc: PartnerCenterServer, provider: PartnerCenterProvider
) -> None:
    assert await provider.observe("contoso", "sub-a") == "active"
    pc.hand_change(CONTOSO, SUB, status="suspended", autoRenewEnabled=False)
    assert await provider.observe("contoso", "sub-a") == "suspended"
    pc.hand_change(CONTOSO, SUB, status="deleted")
    assert await provider.observe("contoso", "sub-a") is None
    assert await provider.observe("contoso", "no-such-sub") is None
    assert await provider.observe("fabrikam", "sub-a") is None


# -- the test server itself, in a thread -------------------------------------------------


def _http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_the_server_runs_in_a_thread_for_synchronous_tests() -> None:
    with PartnerCenterServer.in_thread(expires_in=60) as pc:
        pc.add_subscription(CONTOSO, SUB)
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": pc.client_id,
                "client_secret": pc.client_secret,
                "scope": pc.scope,
            }
        ).encode()
        status, token = _http("POST", pc.token_url, form)
        assert (status, token["token_type"], token["expires_in"]) == (200, "Bearer", 60)
        url = f"{pc.base_url}/v1/customers/{CONTOSO}/subscriptions/{SUB}"
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        status, resource = _http("GET", url, None, auth)
        assert (status, resource["status"]) == (200, "active")
        etag = resource["attributes"]["etag"]

        body = json.dumps({**resource, "status": "suspended"}).encode()
        json_type = {"Content-Type": "application/json"}
        assert _http("PATCH", url, body, auth | json_type)[0] == 412  # no If-Match
        pc.hand_change(CONTOSO, SUB, friendlyName="renamed")
        stale = {"If-Match": f'"{etag}"'}
        assert _http("PATCH", url, body, auth | json_type | stale)[0] == 412
        fresh = {"If-Match": f'"{pc.subscription(CONTOSO, SUB)["attributes"]["etag"]}"'}
        status, after = _http("PATCH", url, body, auth | json_type | fresh)
        assert (status, after["status"], after["autoRenewEnabled"]) == (200, "suspended", False)
        assert pc.patches(CONTOSO, SUB) == 3
        assert pc.patches(CONTOSO, SUB, status=200) == 1

        pc.throttle(1, retry_after=3)
        assert _http("GET", url, None, auth)[0] == 429
        pc.expire_tokens()
        assert _http("GET", url, None, auth)[0] == 401
        assert _http("GET", url)[0] == 401
        bad = form.replace(pc.client_secret.encode(), b"nope")
        status, refused = _http("POST", pc.token_url, bad)
        assert (status, refused["error"]) == (401, "invalid_client")


async def test_the_slow_fault_really_waits(pc: PartnerCenterServer, store: Store) -> None:
    provider = PartnerCenterProvider(config(pc, request_timeout=0.2), store)
    try:
        await provider.observe("contoso", "sub-a")
        pc.slow(1, 0.6)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ProviderError) as caught:
            await provider.observe("contoso", "sub-a")
        assert loop.time() - started < 0.55
        assert caught.value.retryable
        assert caught.value.message == "Partner Center GET timed out after 0.2s"
    finally:
        await provider.close()
