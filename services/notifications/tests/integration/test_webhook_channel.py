"""The webhook channel against a real receiver that verifies Standard Webhooks signatures:
generic, Teams and Slack bodies, no addresses, stale, replayed and forged deliveries refused,
retryable versus final failures, and the real handler retrying with the same webhook-id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from billstate_devkit.webhook_receiver import WebhookReceiver
from billstate_notifications.channels import Channel, ChannelError
from billstate_notifications.channels.webhook import (
    WebhookChannel,
    WebhookChannelConfig,
    message_id,
)
from billstate_notifications.domain import Rendered
from billstate_notifications.handlers import NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.contracts import decode
from billstate_shared.webhooks import TOLERANCE, new_secret

SECRET = new_secret()
ADDRESS = "ap@contoso.example"


def rendered() -> Rendered:
    return Rendered(
        subject="Final notice: pay by 2026-11-21 <urgent> & more",
        text="Dear Contoso,\n\nUSD 120.00 is overdue.\nPay by 2026-11-21.\n\nRegards\n",
        html="<p>Dear Contoso,</p>\n",
        kind="final_notice",
        audience="customer",
        locale="en",
        template="final_notice",
        customer_id="contoso",
    )


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
async def unsigned() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(None) as running:
        yield running


Channels = Callable[..., WebhookChannel]


@pytest.fixture
async def channel() -> AsyncIterator[Channels]:
    """Builds channels and closes every one after the test."""
    made: list[WebhookChannel] = []

    def build(
        url: str, *, clock: Callable[[], datetime] | None = None, **fields: Any
    ) -> WebhookChannel:
        fields.setdefault("secret", SecretStr(SECRET))
        made.append(WebhookChannel(WebhookChannelConfig(url=url, **fields), clock=clock))
        return made[-1]

    yield build
    for built in made:
        await built.close()


def ago(delta: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) - delta


# ---- payloads ----------------------------------------------------------------------------


async def test_is_a_channel(receiver: WebhookReceiver, channel: Channels) -> None:
    webhook = channel(receiver.url)
    assert isinstance(webhook, Channel)
    assert webhook.name == "webhook"


async def test_generic_is_signed_json_keyed_by_notice_id(
    receiver: WebhookReceiver, channel: Channels
) -> None:
    await channel(receiver.url).deliver("ntc-1", "customer", ADDRESS, rendered())
    (delivery,) = receiver.accepted
    assert delivery.json() == {
        "notice_id": "ntc-1",
        "kind": "final_notice",
        "audience": "customer",
        "locale": "en",
        "customer_id": "contoso",
        "subject": "Final notice: pay by 2026-11-21 <urgent> & more",
        "text": "Dear Contoso,\n\nUSD 120.00 is overdue.\nPay by 2026-11-21.\n\nRegards\n",
        "html": "<p>Dear Contoso,</p>\n",
    }
    assert delivery.msg_id == "ntc-1"
    assert delivery.headers["webhook-signature"].startswith("v1,")
    assert delivery.headers["content-type"] == "application/json"
    assert b"@" not in delivery.body  # the address is the channel's to ignore
    assert all("@" not in v for v in delivery.headers.values())


async def test_slack_gets_escaped_text_only(receiver: WebhookReceiver, channel: Channels) -> None:
    await channel(receiver.url, format="slack").deliver("ntc-1", "partner", ADDRESS, rendered())
    assert receiver.payloads() == [
        {
            "text": "Final notice: pay by 2026-11-21 &lt;urgent&gt; &amp; more\n\n"
            "Dear Contoso,\n\nUSD 120.00 is overdue.\nPay by 2026-11-21.\n\nRegards"
        }
    ]


async def test_teams_gets_an_unsigned_adaptive_card(
    unsigned: WebhookReceiver, channel: Channels
) -> None:
    webhook = channel(unsigned.url, format="teams", secret=None)
    await webhook.deliver("ntc-1", "partner", ADDRESS, rendered())
    (delivery,) = unsigned.accepted
    assert "webhook-signature" not in delivery.headers
    assert delivery.msg_id == "ntc-1"  # still there, for whoever dedupes
    document = delivery.json()
    assert document["type"] == "message"
    (attachment,) = document["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.2")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert [block["text"] for block in card["body"]] == [
        "Final notice: pay by 2026-11-21 <urgent> & more",
        "Dear Contoso,",
        "USD 120.00 is overdue.\nPay by 2026-11-21.",
        "Regards",
    ]
    assert card["body"][0]["weight"] == "Bolder"
    assert all(block == {**block, "type": "TextBlock", "wrap": True} for block in card["body"])
    assert b"@" not in delivery.body


async def test_a_notice_id_that_is_no_plain_token_gets_a_stable_hashed_id(
    receiver: WebhookReceiver, channel: Channels
) -> None:
    webhook = channel(receiver.url)
    await webhook.deliver("ntc.2026/11", "customer", None, rendered())
    await webhook.deliver("ntc.2026/11", "customer", None, rendered())
    assert receiver.accepted[0].msg_id == message_id("ntc.2026/11")
    assert message_id("ntc.2026/11").startswith("ntc-")
    assert receiver.accepted[0].json()["notice_id"] == "ntc.2026/11"
    assert [d.outcome for d in receiver.deliveries] == ["accepted", "duplicate"]


# ---- what the receiver refuses -----------------------------------------------------------


async def test_a_redelivered_notice_is_a_duplicate_not_a_second_notice(
    receiver: WebhookReceiver, channel: Channels
) -> None:
    webhook = channel(receiver.url)
    await webhook.deliver("ntc-1", "customer", None, rendered())
    await webhook.deliver("ntc-1", "customer", None, rendered())  # e.g. after a crash
    assert [d.outcome for d in receiver.deliveries] == ["accepted", "duplicate"]


@pytest.mark.parametrize(
    ("clock", "reason"),
    [
        (ago(TOLERANCE + timedelta(minutes=1)), "stale timestamp"),
        (ago(-TOLERANCE - timedelta(minutes=1)), "future timestamp"),
    ],
)
async def test_a_sender_clock_outside_the_tolerance_is_refused_for_good(
    receiver: WebhookReceiver,
    channel: Channels,
    clock: Callable[[], datetime],
    reason: str,
) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(receiver.url, clock=clock).deliver("ntc-1", "customer", None, rendered())
    assert err.value.retryable is False
    assert "HTTP 401" in err.value.message
    assert [d.reason for d in receiver.rejected] == [reason]


async def test_replayed_deliveries_are_refused_or_deduplicated(
    receiver: WebhookReceiver, channel: Channels
) -> None:
    await channel(receiver.url).deliver("ntc-1", "customer", None, rendered())
    captured = receiver.accepted[0]
    # Byte for byte, inside the window: indistinguishable from a retry, processed once.
    assert await receiver.replay(captured) == 200
    # The same capture resent later: its signature moment is past the window.
    late = datetime.now(UTC) - TOLERANCE - timedelta(seconds=30)
    stale = receiver.forge(captured.body, msg_id="ntc-1", at=late)
    assert await receiver.send(*stale) == 401
    # The captured signature on another body.
    other = captured.body.replace(b"120.00", b"0.01")
    assert await receiver.send(other, captured.signed_headers()) == 401
    assert [(d.outcome, d.reason) for d in receiver.deliveries] == [
        ("accepted", ""),
        ("duplicate", "id already accepted"),
        ("rejected", "stale timestamp"),
        ("rejected", "bad signature"),
    ]
    assert len(receiver.accepted) == 1


async def test_forged_deliveries_are_refused(receiver: WebhookReceiver, channel: Channels) -> None:
    impostor = channel(receiver.url, secret=SecretStr(new_secret()))
    with pytest.raises(ChannelError) as err:
        await impostor.deliver("ntc-1", "customer", None, rendered())
    assert err.value.retryable is False
    body = channel(receiver.url).body("ntc-2", "customer", rendered())
    forged = receiver.forge(body, msg_id="ntc-2", signature="v1,bm90IGEgc2lnbmF0dXJl")
    assert await receiver.send(*forged) == 401
    assert [d.reason for d in receiver.rejected] == ["bad signature", "bad signature"]
    assert receiver.accepted == ()


# ---- retryable or not --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (429, True), (404, False), (400, False), (301, False)],
)
async def test_answers_are_retryable_or_final(
    receiver: WebhookReceiver, channel: Channels, *, status: int, retryable: bool
) -> None:
    receiver.fail(1, status, retry_after=3)
    url = receiver.url_for("/hooks/T0/B0/path-token?sig=query-token")
    webhook = channel(url)
    with pytest.raises(ChannelError) as err:
        await webhook.deliver("ntc-1", "customer", ADDRESS, rendered())
    assert err.value.retryable is retryable
    assert err.value.message.startswith(f"webhook http://127.0.0.1:{receiver.port} answered")
    for private in ("token", "whsec_", SECRET, ADDRESS, "/hooks"):
        assert private not in err.value.message
    await webhook.deliver("ntc-1", "customer", ADDRESS, rendered())  # the next try lands
    assert len(receiver.accepted) == 1


async def test_timeouts_and_refused_connections_are_retryable(
    receiver: WebhookReceiver, channel: Channels
) -> None:
    receiver.slow(1, 1.0)
    with pytest.raises(ChannelError) as slow:
        await channel(receiver.url, timeout=0.2).deliver("ntc-1", "customer", None, rendered())
    assert slow.value.retryable is True
    assert "timed out" in slow.value.message
    async with WebhookReceiver(SECRET) as gone:
        url = gone.url + "?sig=query-token"
    with pytest.raises(ChannelError) as refused:
        await channel(url).deliver("ntc-1", "customer", None, rendered())
    assert refused.value.retryable is True
    assert "query-token" not in refused.value.message


async def test_teams_throttling_reported_in_a_2xx_is_retryable(channel: Channels) -> None:
    """Teams connectors have said 429 in the text of a 200; a local server says it so."""

    async def throttled(request: web.Request) -> web.Response:
        return web.Response(text="Microsoft Teams endpoint returned HTTP error 429")

    app = web.Application()
    app.router.add_post("/teams", throttled)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        webhook = channel(f"http://127.0.0.1:{port}/teams", format="teams", secret=None)
        with pytest.raises(ChannelError) as err:
            await webhook.deliver("ntc-1", "partner", None, rendered())
    finally:
        await runner.cleanup()
    assert err.value.retryable is True


# ---- through the real handler --------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def envelope(event_type: str, data: dict[str, Any], event_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-11-14T08:00:00+00:00",
            "customer_id": "contoso",
            "data": data,
        }
    ).encode()


async def test_the_handler_retries_with_the_same_id_and_dedupes_redeliveries(
    tmp_path: Path, receiver: WebhookReceiver, channel: Channels
) -> None:
    store = Store(tmp_path / "n.sqlite3")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    handle: Callable[[Rec], Awaitable[list[Any]]] = NotificationsHandler(
        store=store, channel=channel(receiver.url), retry_base_delay=0.5, sleep=sleep
    )
    try:
        customer = {
            "name": "Contoso",
            "locale": "en",
            "billing_email": ADDRESS,
            "partner_contact_email": "csp@partner.example",
            "tags": [],
            "subscription_ids": ["s1"],
        }
        await handle(
            Rec(
                "billing.customers.v1",
                0,
                0,
                b"contoso",
                envelope("customer.upserted", customer, "cu-1"),
            )
        )
        notice = {
            "notice_id": "ntc-1",
            "kind": "final_notice",
            "audience": "customer",
            "locale": "en",
            "facts": {
                "stage": "final_notice",
                "overdue": [{"amount": "120.00", "currency": "USD"}],
                "suspension_on": "2026-11-21",
            },
        }
        raw = envelope("notice.requested", notice, "evt-ntc-1")
        receiver.fail(1, 503)
        out = await handle(Rec("notifications.requests.v1", 0, 5, b"contoso", raw))
        assert [decode(o.value).event_type for o in out] == ["notice.delivered"]
        assert json.loads(out[0].value)["data"]["attempts"] == 2
        assert [d.status for d in receiver.deliveries] == [503, 200]
        assert {d.msg_id for d in receiver.deliveries} == {"ntc-1"}
        assert "Contoso" in receiver.payloads()[0]["text"]
        assert b"@" not in receiver.accepted[0].body
        # The same request again from another offset: the handler knows, nothing is sent.
        assert await handle(Rec("notifications.requests.v1", 0, 9, b"contoso", raw)) == []
        assert len(receiver.deliveries) == 2
        assert len(slept) == 1
    finally:
        store.close()


# ---- configuration -----------------------------------------------------------------------


def test_config_defaults_requirements_and_secrecy() -> None:
    secret = new_secret()
    generic = WebhookChannelConfig(url="https://hooks.example/n?k=1", secret=SecretStr(secret))
    assert (generic.format, generic.timeout) == ("generic", 15.0)
    assert secret not in repr(generic)
    assert "hooks.example" not in repr(generic)
    teams = WebhookChannelConfig(url="https://x.webhook.office.com/a", format="teams")
    assert teams.secret is None
    with pytest.raises(ValidationError, match="generic webhook needs a secret"):
        WebhookChannelConfig(url="https://hooks.example/n")
    with pytest.raises(ValidationError) as refused:
        WebhookChannelConfig(url="https://h.example", secret="whsec_QUJDRA==")
    assert "QUJDRA" not in str(refused.value)
    for bad in ({"timeout": 0}, {"timeout": 121}, {"format": "email"}):
        with pytest.raises(ValidationError):
            WebhookChannelConfig(url="https://h.example", secret=SecretStr(secret), **bad)
