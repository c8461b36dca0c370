"""Standard Webhooks helpers and the test receiver: signing, secrets, verification, one POST,
and the receiver in the current loop and in its own thread."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest
from standardwebhooks import Webhook

from billstate_devkit.webhook_receiver import Delivery, WebhookReceiver
from billstate_shared.webhooks import (
    TOLERANCE,
    DeliveryError,
    WebhookSecretError,
    WebhookVerificationError,
    new_secret,
    origin,
    post,
    retry_after_seconds,
    secret_key,
    signed_headers,
    verify,
)

SECRET = new_secret()
BODY = b'{"type":"access.suspend","subscription_id":"s1"}'


def now() -> datetime:
    return datetime.now(UTC)


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- signing and verification -------------------------------------------------------------


def test_signed_headers_verify_with_the_library_itself() -> None:
    at = datetime(2027, 1, 11, 9, 0, 7, 900_000, tzinfo=UTC)
    headers = signed_headers(SECRET, "whk-1", BODY, at)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "whk-1"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))  # whole seconds, floored
    assert headers["webhook-signature"].startswith("v1,")
    # The spec's content: id.timestamp.body, HMAC-SHA256, base64.
    assert headers["webhook-signature"] == Webhook(SECRET).sign("whk-1", at, BODY.decode())
    fresh = signed_headers(SECRET, "whk-1", BODY, now())
    assert Webhook(SECRET).verify(BODY.decode(), fresh) == json.loads(BODY)


def test_a_local_time_signs_the_same_instant_as_utc() -> None:
    utc = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
    taipei = utc.astimezone(timezone(timedelta(hours=8)))
    assert signed_headers(SECRET, "m", BODY, taipei) == signed_headers(SECRET, "m", BODY, utc)


@pytest.mark.parametrize(
    ("msg_id", "body", "at", "error"),
    [
        ("m", BODY, datetime(2027, 1, 11), "timezone-aware"),  # noqa: DTZ001
        ("a.b", BODY, datetime(2027, 1, 11, tzinfo=UTC), "webhook-id"),
        ("", BODY, datetime(2027, 1, 11, tzinfo=UTC), "webhook-id"),
        ("m", b"\xff", datetime(2027, 1, 11, tzinfo=UTC), "UTF-8"),
    ],
)
def test_signing_refuses_what_would_sign_the_wrong_thing(
    msg_id: str, body: bytes, at: datetime, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        signed_headers(SECRET, msg_id, body, at)


def test_new_secrets_are_random_and_well_formed() -> None:
    first, second = new_secret(), new_secret(24)
    assert first != new_secret()
    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert len(secret_key(second)) == 24
    with pytest.raises(ValueError, match="nbytes"):
        new_secret(8)


def test_unpadded_base64_is_accepted() -> None:
    key = bytes(range(25))
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    assert secret_key(unpadded) == key


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        (base64.b64encode(bytes(32)).decode(), "must look like whsec_"),
        ("whsec_", "not base64"),
        ("whsec_not*base64!!", "not base64"),
        ("whsec_" + base64.b64encode(bytes(16)).decode(), "holds 16"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "holds 65"),
        ("whsec_" + "A" * 33, "not base64"),  # a length no base64 text has
    ],
)
def test_bad_secrets_are_refused_without_echoing_them(secret: str, error: str) -> None:
    with pytest.raises(WebhookSecretError, match=error) as refused:
        secret_key(secret)
    tail = secret.removeprefix("whsec_")
    assert not tail or tail not in str(refused.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-timestamp": None}, "missing headers"),
        ({"webhook-timestamp": "yesterday"}, "malformed timestamp"),
        ({"webhook-signature": "v1"}, "malformed signature"),
        ({"webhook-signature": "v1,a"}, "malformed signature"),
        ({"webhook-signature": "v1," + base64.b64encode(bytes(32)).decode()}, "bad signature"),
        ({"webhook-id": "other-id"}, "bad signature"),
    ],
)
def test_verify_names_what_is_wrong(change: dict[str, str | None], reason: str) -> None:
    headers: dict[str, str] = signed_headers(SECRET, "m-1", BODY, now())
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(WebhookVerificationError) as failed:
        verify(SECRET, BODY, headers)
    assert failed.value.reason == reason


def test_verify_enforces_the_tolerance_both_ways() -> None:
    inside = now() - TOLERANCE + timedelta(seconds=20)
    verify(SECRET, BODY, signed_headers(SECRET, "m", BODY, inside))
    for at, reason in [
        (now() - TOLERANCE - timedelta(seconds=30), "stale timestamp"),
        (now() + TOLERANCE + timedelta(seconds=30), "future timestamp"),
    ]:
        with pytest.raises(WebhookVerificationError) as failed:
            verify(SECRET, BODY, signed_headers(SECRET, "m", BODY, at))
        assert failed.value.reason == reason


def test_verify_rejects_a_changed_body_and_another_secret() -> None:
    headers = signed_headers(SECRET, "m", BODY, now())
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(SECRET, BODY.replace(b"s1", b"s2"), headers)
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(new_secret(), BODY, headers)
    verify(SECRET, BODY, {k.upper(): v for k, v in headers.items()})  # header case is free


def test_retry_after_reads_seconds_and_http_dates() -> None:
    at = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)
    assert retry_after_seconds("120", at) == 120.0
    assert retry_after_seconds("Mon, 11 Jan 2027 09:00:12 GMT", at) == 12.0
    assert retry_after_seconds("Mon, 11 Jan 2027 08:00:00 GMT", at) == 0.0  # past: no wait
    for junk in (None, "", "soon", "-5", "1.5"):
        assert retry_after_seconds(junk, at) is None


def test_origin_keeps_scheme_host_and_port_only() -> None:
    url = "https://bot:pw@hooks.slack.com/services/T0/B0/XXXX?token=abc#frag"
    assert origin(url) == "https://hooks.slack.com"
    assert origin("http://127.0.0.1:8080/hooks?sig=1") == "http://127.0.0.1:8080"
    assert origin("http://[::1]:9/x") == "http://[::1]:9"


# ---- the receiver, in the current loop -----------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as running:
        yield running


async def test_accepts_a_signed_fresh_delivery_and_records_it(receiver: WebhookReceiver) -> None:
    body, headers = receiver.forge({"hello": "world"}, msg_id="m-1")
    assert await receiver.send(body, headers) == 200
    (delivery,) = receiver.accepted
    assert delivery.msg_id == "m-1"
    assert delivery.json() == {"hello": "world"}
    assert delivery.path == "/hooks"
    assert receiver.payloads() == [{"hello": "world"}]
    assert receiver.url.startswith("http://127.0.0.1:")


async def test_a_repeated_id_with_the_same_body_is_a_duplicate_not_a_second_delivery(
    receiver: WebhookReceiver,
) -> None:
    body, headers = receiver.forge({"n": 1}, msg_id="m-1")
    assert await receiver.send(body, headers) == 200
    # A retry after a lost 2xx: same id and body, a new signature moment.
    retry_at = datetime.now(UTC) + timedelta(seconds=2)
    assert await receiver.send(*receiver.forge({"n": 1}, msg_id="m-1", at=retry_at)) == 200
    assert await receiver.replay(receiver.accepted[0]) == 200  # a byte-for-byte replay
    assert len(receiver.accepted) == 1
    assert [d.reason for d in receiver.duplicates] == ["id already accepted"] * 2


async def test_a_repeated_id_with_another_body_is_a_conflict(receiver: WebhookReceiver) -> None:
    assert await receiver.send(*receiver.forge({"n": 1}, msg_id="m-1")) == 200
    assert await receiver.send(*receiver.forge({"n": 2}, msg_id="m-1")) == 409
    assert receiver.rejected[0].reason == "id reused with a different body"


async def test_strict_mode_refuses_duplicates() -> None:
    async with WebhookReceiver(SECRET, duplicate_status=409) as strict:
        body, headers = strict.forge({"n": 1})
        assert await strict.send(body, headers) == 200
        assert await strict.send(body, headers) == 409
        assert [d.outcome for d in strict.deliveries] == ["accepted", "duplicate"]


async def test_forged_stale_future_and_tampered_deliveries_are_refused(
    receiver: WebhookReceiver,
) -> None:
    late = datetime.now(UTC) - TOLERANCE - timedelta(minutes=1)
    early = datetime.now(UTC) + TOLERANCE + timedelta(minutes=1)
    body, headers = receiver.forge({"n": 1}, msg_id="m-1")
    attempts = [
        receiver.forge({"n": 1}, msg_id="m-2", secret=new_secret()),
        receiver.forge({"n": 1}, msg_id="m-3", at=late),
        receiver.forge({"n": 1}, msg_id="m-4", at=early),
        (b'{"n": 2}', headers),
        (body, {"content-type": "application/json"}),
    ]
    assert [await receiver.send(b, h) for b, h in attempts] == [401] * 5
    assert [d.reason for d in receiver.rejected] == [
        "bad signature",
        "stale timestamp",
        "future timestamp",
        "bad signature",
        "missing headers",
    ]
    assert receiver.accepted == ()


async def test_a_verified_body_that_is_not_json_is_a_bad_request(
    receiver: WebhookReceiver,
) -> None:
    assert await receiver.send(*receiver.forge(b"not json")) == 400
    assert receiver.rejected[0].reason == "body not JSON"


async def test_an_unsigned_receiver_accepts_without_verifying() -> None:
    async with WebhookReceiver(None) as open_endpoint:
        assert await open_endpoint.send(b'{"text":"hi"}', {"content-type": "x"}) == 200
        assert await open_endpoint.send(*open_endpoint.forge({"a": 1}, msg_id="x")) == 200
        assert await open_endpoint.send(*open_endpoint.forge({"a": 1}, msg_id="x")) == 200
        assert [d.outcome for d in open_endpoint.deliveries] == [
            "accepted",
            "accepted",
            "duplicate",
        ]


async def test_injected_failures_come_first_in_order_with_retry_after(
    receiver: WebhookReceiver,
) -> None:
    receiver.fail(1, 429, retry_after=7)
    receiver.fail(1, 503, retry_after="Mon, 11 Jan 2027 09:00:12 GMT")
    body, headers = receiver.forge({"n": 1})
    async with aiohttp.ClientSession() as session:
        answers = []
        for _ in range(3):
            async with session.post(receiver.url, data=body, headers=headers) as r:
                answers.append((r.status, r.headers.get("Retry-After")))
    assert answers == [(429, "7"), (503, "Mon, 11 Jan 2027 09:00:12 GMT"), (200, None)]
    assert [d.reason for d in receiver.rejected] == ["injected HTTP 429", "injected HTTP 503"]


async def test_a_lost_response_is_accepted_but_never_answered(receiver: WebhookReceiver) -> None:
    receiver.lose_response(1)
    body, headers = receiver.forge({"n": 1}, msg_id="m-1")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await receiver.send(body, headers)
    assert len(receiver.accepted) == 1
    assert await receiver.send(*receiver.forge({"n": 1}, msg_id="m-1")) == 200  # the retry
    assert [d.outcome for d in receiver.deliveries] == ["accepted", "duplicate"]


async def test_a_slow_answer_trips_a_timeout_and_is_accepted_later(
    receiver: WebhookReceiver,
) -> None:
    receiver.slow(1, 0.5)
    body, headers = receiver.forge({"n": 1}, msg_id="m-1")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as err:
            await post(session, receiver.url, body, headers, timeout=0.1, clock=now)
    assert err.value.retryable is True
    assert "timed out after 0.1s" in err.value.message
    await receiver.wait_for_async(lambda seen: len(seen) == 1, timeout=5)
    assert receiver.accepted[0].msg_id == "m-1"


async def test_wait_for_times_out_and_is_refused_on_the_receivers_own_loop(
    receiver: WebhookReceiver,
) -> None:
    with pytest.raises(TimeoutError, match="condition not met"):
        await receiver.wait_for_async(lambda seen: len(seen) == 1, timeout=0.05)
    with pytest.raises(RuntimeError, match="wait_for_async"):
        receiver.wait_for(lambda _seen: True)


# ---- post: the one HTTP attempt both adapters make -----------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after", "words"),
    [
        (500, True, None, "answered HTTP 500"),
        (503, True, 30.0, "answered HTTP 503"),
        (429, True, 30.0, "answered HTTP 429"),
        (408, True, None, "answered HTTP 408"),
        (400, False, None, "answered HTTP 400"),
        (410, False, None, "gone"),
        (302, False, None, "redirect; not followed"),
    ],
)
async def test_post_sorts_answers_into_retryable_or_not(
    receiver: WebhookReceiver,
    *,
    status: int,
    retryable: bool,
    retry_after: float | None,
    words: str,
) -> None:
    receiver.fail(1, status, retry_after=30 if retry_after else None)
    body, headers = receiver.forge({"n": 1})
    url = receiver.url_for("/hooks/T0/B0/secret-path?sig=secret-query")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as err:
            await post(session, url, body, headers, timeout=5, clock=now)
        assert await post(session, url, body, headers, timeout=5, clock=now) is not None
    assert (err.value.retryable, err.value.retry_after) == (retryable, retry_after)
    assert words in err.value.message
    assert "secret" not in err.value.message
    assert err.value.message.startswith(f"webhook http://127.0.0.1:{receiver.port} ")


async def test_post_returns_the_answer_and_a_refused_connection_is_retryable(
    receiver: WebhookReceiver,
) -> None:
    body, headers = receiver.forge({"n": 1})
    async with aiohttp.ClientSession() as session:
        answer = await post(session, receiver.url, body, headers, timeout=5, clock=now)
        assert json.loads(answer) == {"outcome": "accepted", "reason": ""}
        port = free_port()
        with pytest.raises(DeliveryError) as err:
            await post(
                session, f"http://127.0.0.1:{port}/x?k=v", body, headers, timeout=5, clock=now
            )
    assert err.value.retryable is True
    assert err.value.message.startswith(f"cannot connect to webhook http://127.0.0.1:{port}")
    assert "k=v" not in err.value.message


# ---- the receiver in its own thread (services in other processes, synchronous tests) --------


def test_in_a_thread_it_serves_while_the_test_blocks_and_inspects() -> None:
    with WebhookReceiver(SECRET) as threaded:
        threaded.fail(1, 500)
        body, headers = threaded.forge({"n": 1}, msg_id="m-1")
        assert threaded.send_sync(body, headers) == 500
        assert threaded.send_sync(body, headers) == 200
        assert threaded.replay_sync(threaded.accepted[0]) == 200

        # Deliveries from several threads at once, as separate sender processes would.
        def sender(n: int) -> None:
            threaded.send_sync(*threaded.forge({"n": n}, msg_id=f"p-{n}"))

        workers = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        seen = threaded.wait_for(lambda d: len(d) == 11, timeout=10)
        for worker in workers:
            worker.join(5)
        assert sum(1 for d in seen if d.outcome == "accepted") == 9
        assert [d.outcome for d in seen[:3]] == ["rejected", "accepted", "duplicate"]
        stale = datetime.now(UTC) - timedelta(minutes=6)
        assert threaded.send_sync(*threaded.forge({"n": 1}, msg_id="m-9", at=stale)) == 401
        with pytest.raises(TimeoutError):
            threaded.wait_for(lambda d: len(d) > 99, timeout=0.05)
    with pytest.raises(RuntimeError, match="not running"):
        _ = threaded.url


def test_in_a_thread_a_held_request_does_not_hold_up_stopping() -> None:
    with WebhookReceiver(SECRET) as threaded:
        threaded.slow(1, 60)
        body, headers = threaded.forge({"n": 1})
        answers: list[int | str] = []

        def blocked() -> None:
            try:
                answers.append(threaded.send_sync(body, headers, timeout=30))
            except OSError as err:
                answers.append(type(err).__name__)

        caller = threading.Thread(target=blocked)
        caller.start()
        threaded.wait_for(lambda _: threaded.pending_faults == 0, timeout=5)
        # Stop while the request is held: the receiver must end well before 60 s.
        started = datetime.now(UTC)
    caller.join(10)
    assert datetime.now(UTC) - started < timedelta(seconds=10)
    assert not caller.is_alive()
    assert answers in ([503], ["RemoteDisconnected"], ["ConnectionResetError"], ["URLError"])


def test_a_delivery_names_its_id_and_parses_its_body() -> None:
    delivery = Delivery("/", {"webhook-id": "x"}, b"{}", 200, "accepted")
    assert delivery.msg_id == "x"
    assert delivery.json() == {}
