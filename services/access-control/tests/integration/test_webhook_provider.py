"""The webhook provider behind the real AccessHandler and Store, against a real receiver that
verifies Standard Webhooks signatures: payloads, retries that keep their id, Retry-After,
duplicates that send nothing, and a wrong secret ending in access.failed plus the DLQ."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers import Change, Provider, ProviderError
from billstate_access_control.providers.webhook import (
    WebhookProvider,
    WebhookProviderConfig,
    message_id,
)
from billstate_access_control.store import Store
from billstate_devkit.events import access_command
from billstate_devkit.webhook_receiver import WebhookReceiver
from billstate_shared.contracts import (
    AccessFailed,
    decode,
)
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy
from billstate_shared.webhooks import new_secret

AT = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
SECRET = new_secret()


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    key: bytes | None = b"contoso"
    topic: str = "access.commands.v1"
    partition: int = 2
    offset: int = 41


def command(kind: str, command_id: str, *subs: str) -> bytes:
    reason = "invoice inv-1 60 days overdue"
    return access_command(kind, "contoso", command_id, subs, reason=reason, at=AT)


def types(outputs: Sequence[Produce]) -> list[str]:
    return ["dlq" if o.topic.endswith(".dlq") else decode(o.value).event_type for o in outputs]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as running:
        yield running


def config(
    receiver: WebhookReceiver, secret: str = SECRET, timeout: float = 5.0
) -> WebhookProviderConfig:
    return WebhookProviderConfig(url=receiver.url, secret=SecretStr(secret), timeout=timeout)


@pytest.fixture
async def provider(receiver: WebhookReceiver) -> AsyncIterator[WebhookProvider]:
    webhook = WebhookProvider(config(receiver))
    yield webhook
    await webhook.close()


def make(
    store: Store, provider: Provider, attempts: int = 5, max_delay: float = 30.0
) -> tuple[AccessHandler, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    handler = AccessHandler(
        store=store,
        provider=provider,
        retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=max_delay),
        sleep=sleep,
    )
    return handler, slept


async def test_a_suspend_posts_one_signed_delivery_per_subscription(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    handler, _ = make(store, provider)
    out = list(await handler(Rec(command("suspend", "c1", "s1", "s2"))))
    assert types(out) == ["access.suspended", "access.suspended"]
    assert json.loads(out[0].value)["data"]["provider"] == "webhook"
    assert [d.outcome for d in receiver.deliveries] == ["accepted", "accepted"]
    first = receiver.accepted[0]
    assert first.json() == {
        "type": "access.suspend",
        "command_id": "c1",
        "customer_id": "contoso",
        "subscription_id": "s1",
        "desired": "suspended",
        "reason": "invoice inv-1 60 days overdue",
        "stage": "suspended",
    }
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-signature"].startswith("v1,")
    expected = Change("contoso", "s1", "suspended", "c1")
    assert first.msg_id == message_id(expected)
    assert receiver.accepted[1].msg_id != first.msg_id  # one id per subscription
    assert [s["applied"] for s in store.view("contoso")] == ["suspended", "suspended"]


async def test_a_restore_is_its_own_delivery_type_and_id(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    handler, _ = make(store, provider)
    await handler(Rec(command("suspend", "c1", "s1")))
    out = list(await handler(Rec(command("restore", "r1", "s1"), offset=42)))
    assert types(out) == ["access.restored"]
    suspend, restore = receiver.payloads()
    assert (restore["type"], restore["desired"], restore["command_id"]) == (
        "access.restore",
        "active",
        "r1",
    )
    assert suspend["type"] == "access.suspend"
    assert len({d.msg_id for d in receiver.accepted}) == 2


async def test_retries_after_500_and_429_converge_on_one_id(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    receiver.fail(2, 500)
    receiver.fail(1, 429)
    handler, slept = make(store, provider)
    out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    assert types(out) == ["access.suspended"]
    assert [d.status for d in receiver.deliveries] == [500, 500, 429, 200]
    assert {d.msg_id for d in receiver.deliveries} == {
        message_id(Change("contoso", "s1", "suspended", "c1"))
    }
    assert len({d.body for d in receiver.deliveries}) == 1  # same bytes every time
    assert slept == [0.2, 0.4, 0.8]


async def test_a_429_retry_after_is_honoured_through_the_handlers_sleep(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    receiver.fail(1, 429, retry_after=7)
    handler, slept = make(store, provider)
    assert types(await handler(Rec(command("suspend", "c1", "s1")))) == ["access.suspended"]
    assert slept == [7.0]


async def test_a_retry_after_date_is_read_with_the_injected_clock(
    store: Store, receiver: WebhookReceiver
) -> None:
    frozen = datetime.now(UTC).replace(microsecond=0)
    receiver.fail(1, 503, retry_after=format_datetime(frozen + timedelta(seconds=12), usegmt=True))
    webhook = WebhookProvider(config(receiver), clock=lambda: frozen)
    try:
        handler, slept = make(store, webhook)
        assert types(await handler(Rec(command("suspend", "c1", "s1")))) == ["access.suspended"]
    finally:
        await webhook.close()
    assert slept == [12.0]


async def test_a_lost_2xx_is_retried_with_the_same_id_and_applied_once(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    receiver.lose_response(1)
    handler, slept = make(store, provider)
    assert types(await handler(Rec(command("suspend", "c1", "s1")))) == ["access.suspended"]
    assert [d.outcome for d in receiver.deliveries] == ["accepted", "duplicate"]
    assert len(slept) == 1


async def test_a_timeout_is_retryable(store: Store, receiver: WebhookReceiver) -> None:
    receiver.slow(1, 1.0)
    webhook = WebhookProvider(config(receiver, timeout=0.2))
    try:
        handler, _ = make(store, webhook)
        assert types(await handler(Rec(command("suspend", "c1", "s1")))) == ["access.suspended"]
    finally:
        await webhook.close()
    # The held first attempt lands after the retry did: one delivery, one duplicate.
    seen = await receiver.wait_for_async(lambda d: len(d) == 2, timeout=5)
    assert sorted(d.outcome for d in seen) == ["accepted", "duplicate"]


async def test_a_duplicate_command_sends_nothing_new(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    handler, _ = make(store, provider)
    first = list(await handler(Rec(command("suspend", "c1", "s1"))))
    again = list(await handler(Rec(command("suspend", "c1", "s1"), offset=42)))
    assert [o.value for o in again] == [o.value for o in first]
    assert len(receiver.deliveries) == 1
    # A new command for the state already applied is silent too.
    assert list(await handler(Rec(command("suspend", "c2", "s1"), offset=43))) == []
    assert len(receiver.deliveries) == 1


async def test_a_wrong_secret_is_refused_and_ends_in_failed_and_the_dlq(
    store: Store, receiver: WebhookReceiver
) -> None:
    wrong = WebhookProvider(config(receiver, secret=new_secret()))
    try:
        handler, slept = make(store, wrong)
        raw = command("suspend", "c1", "s1")
        out = list(await handler(Rec(raw)))
    finally:
        await wrong.close()
    assert types(out) == ["access.failed", "dlq"]
    failed = json.loads(out[0].value)["data"]
    assert failed["attempts"] == 1  # a 401 will not get better by retrying
    assert failed["provider"] == "webhook"
    assert failed["error"] == f"webhook http://127.0.0.1:{receiver.port} answered HTTP 401"
    assert [d.reason for d in receiver.rejected] == ["bad signature"]
    assert receiver.accepted == ()
    assert slept == []
    headers = read_headers(out[1].headers)
    assert out[1].value == raw
    assert "HTTP 401" in headers["reason"]
    assert "whsec_" not in headers["reason"]
    assert [s["applied"] for s in store.view("contoso")] == ["active"]


async def test_an_unreachable_receiver_fails_after_all_attempts(store: Store) -> None:
    async with WebhookReceiver(SECRET) as gone:
        url = gone.url + "?token=hush"
    webhook = WebhookProvider(WebhookProviderConfig(url=url, secret=SecretStr(SECRET)))
    try:
        handler, slept = make(store, webhook, attempts=3)
        out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    finally:
        await webhook.close()
    assert types(out) == ["access.failed", "dlq"]
    error = json.loads(out[0].value)["data"]["error"]
    assert error.startswith("cannot connect to webhook http://127.0.0.1:")
    assert "hush" not in error
    assert slept == [0.2, 0.4]


async def test_other_4xx_are_not_retried(
    store: Store, receiver: WebhookReceiver, provider: WebhookProvider
) -> None:
    receiver.fail(1, 404)
    handler, slept = make(store, provider)
    assert types(await handler(Rec(command("suspend", "c1", "s1")))) == ["access.failed", "dlq"]
    assert len(receiver.deliveries) == 1
    assert slept == []


async def test_the_provider_cannot_observe_and_closes_cleanly(
    receiver: WebhookReceiver,
) -> None:
    webhook = WebhookProvider(config(receiver))
    assert webhook.name == "webhook"
    assert await webhook.observe("contoso", "s1") is None
    await webhook.close()  # never opened: nothing to do
    await webhook.apply(Change("contoso", "s1", "suspended", "c1"))
    await webhook.close()
    await webhook.close()
    receiver.fail(1, 502)
    with pytest.raises(ProviderError) as err:
        await webhook.apply(Change("contoso", "s1", "suspended", "c1"))  # a fresh session
    assert err.value.retryable is True
    await webhook.close()


def test_config_bounds_and_secrecy() -> None:
    secret = new_secret()
    good = WebhookProviderConfig(url="https://hooks.example/access?k=1", secret=SecretStr(secret))
    assert good.timeout == 15.0
    assert secret not in repr(good)
    assert "hooks.example" not in repr(good)
    for timeout in (0, -1, 121):
        with pytest.raises(ValidationError):
            WebhookProviderConfig(
                url="https://h.example", secret=SecretStr(secret), timeout=timeout
            )
    short = "whsec_" + "QUJD" * 4  # 12 bytes
    with pytest.raises(ValidationError) as refused:
        WebhookProviderConfig(url="https://h.example", secret=short)
    assert "QUJD" not in str(refused.value)
    assert "24 to 64 bytes" in str(refused.value)
    with pytest.raises(ValidationError):
        WebhookProviderConfig(url="ftp://h.example", secret=SecretStr(secret))
    with pytest.raises(ValidationError):
        good.timeout = 3  # type: ignore[misc]


async def test_a_failed_delivery_carries_its_exchanges_without_the_url_path(
    store: Store, receiver: WebhookReceiver
) -> None:
    # A path that is a credential, as Slack's and Teams' incoming webhooks are.
    url = receiver.url_for("/hooks/T0001/B0002/s3cr3t-path-token")
    webhook = WebhookProvider(WebhookProviderConfig(url=url, secret=SecretStr(SECRET)))
    handler, _ = make(store, webhook, attempts=2)
    receiver.fail(2, 503)
    try:
        out = list(await handler(Rec(command("suspend", "c1", "s1"))))
    finally:
        await webhook.close()
    assert types(out) == ["access.failed", "dlq"]
    value = out[0].value
    assert value is not None
    failed = decode(value)
    assert isinstance(failed, AccessFailed)
    exchanges = failed.data.exchanges
    ids = [d.msg_id for d in receiver.deliveries]
    assert [(x.method, x.status, x.request_id) for x in exchanges] == [
        ("POST", 503, ids[0]),
        ("POST", 503, ids[1]),
    ]
    assert {x.path for x in exchanges} == {f"http://{receiver.host}:{receiver.port}"}
    assert b"s3cr3t" not in value
