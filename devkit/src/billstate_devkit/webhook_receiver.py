"""A local Standard Webhooks receiver for tests: verifies, dedupes, records, injects faults.

What it answers, in this order:

1. an injected fault, if one is queued (`fail`, `slow`, `lose_response`; first in, first out),
   because an overloaded gateway answers before anyone looks at the body;
2. 401 when verification fails (missing headers, malformed, bad signature, or a timestamp
   outside the library's ±5 minutes): stale and future deliveries are refused here;
3. 400 when the verified body is not JSON;
4. for a `webhook-id` it accepted before: the same body is a *duplicate*, answered with
   `duplicate_status` (200 by default) and not processed again; a different body under the
   same id is refused with 409.
5. otherwise 200 and the delivery is *accepted*.

Why a repeated id gets a 2xx by default: a sender that lost our 2xx (a timeout, a reset)
must retry with the same id and a fresh timestamp, and a receiver cannot tell that retry
from a replay captured inside the tolerance window. The spec's answer is idempotency: the
id is processed once, and the sender is told "done" so it stops retrying. A replay outside
the window fails step 2; a replay with an altered body fails the signature or step 4.
`duplicate_status=409` gives the strict behaviour for tests that want to see it (a sender
would then report a lost-2xx retry as a failure).

`secret=None` makes an unsigned endpoint (what Teams and Slack incoming webhooks are):
nothing is verified, ids still dedupe when present.

Two ways to run: `async with WebhookReceiver(...)` serves in the current loop;
`with WebhookReceiver(...)` serves from a background thread with its own loop, for tests
that drive services in other processes and wait synchronously. Inspection, fault
injection and `wait_for` are thread-safe in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

from billstate_shared.webhooks import WebhookVerificationError, signed_headers, verify

Outcome = Literal["accepted", "duplicate", "rejected"]
# What a replay resends: the signed parts and the body's type, nothing transport-specific.
_REPLAYED = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
_FRAMING = frozenset({"content-length", "host", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Delivery:
    """One request as the receiver saw and answered it; `headers` are lower-cased."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    outcome: Outcome
    reason: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def msg_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_headers(self) -> dict[str, str]:
        """The headers a replay resends: the signed ones and the content type."""
        return {k: v for k, v in self.headers.items() if k in _REPLAYED}


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "slow", "lose"]
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


class WebhookReceiver:
    """A Standard Webhooks endpoint on 127.0.0.1 (port 0 by default); see the module doc."""

    def __init__(
        self,
        secret: str | None,
        *,
        duplicate_status: int = 200,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/hooks",
    ) -> None:
        self.secret, self.duplicate_status = secret, duplicate_status
        self.host, self.port, self.path = host, port, path
        self._cond = threading.Condition(threading.RLock())
        self._deliveries: list[Delivery] = []
        self._faults: deque[_Fault] = deque()
        self._seen: dict[str, str] = {}  # accepted webhook-id -> sha256 of its body
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None

    # ---- where it listens -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint's URL (`path` on the bound port); any path is served the same way."""
        return self.url_for(self.path)

    def url_for(self, path_and_query: str) -> str:
        if self._runner is None:
            raise RuntimeError("the receiver is not running")
        return f"http://{self.host}:{self.port}{path_and_query}"

    # ---- fault injection ------------------------------------------------------------------

    def fail(self, times: int, status: int, retry_after: float | str | None = None) -> None:
        """Answer the next `times` requests with `status` (and Retry-After), unprocessed.
        A number becomes delta-seconds; a string is sent as is (an HTTP-date)."""
        header = None if retry_after is None else _retry_after_header(retry_after)
        self._queue(times, _Fault("fail", status=status, retry_after=header))

    def slow(self, times: int, seconds: float) -> None:
        """Hold the next `times` requests `seconds` before handling them normally, so a
        sender's timeout fires while the delivery may still be accepted: a lost 2xx."""
        self._queue(times, _Fault("slow", seconds=seconds))

    def lose_response(self, times: int) -> None:
        """Handle the next `times` requests normally, then drop the connection instead of
        answering: the sender sees a disconnect for a delivery that was accepted."""
        self._queue(times, _Fault("lose"))

    def _queue(self, times: int, fault: _Fault) -> None:
        with self._cond:
            self._faults.extend([fault] * times)

    # ---- inspection (thread-safe) ---------------------------------------------------------

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        with self._cond:
            return tuple(self._deliveries)

    @property
    def accepted(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if d.outcome == "accepted")

    @property
    def duplicates(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if d.outcome == "duplicate")

    @property
    def rejected(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if d.outcome == "rejected")

    @property
    def pending_faults(self) -> int:
        """Injected faults not yet used (one is used when a request arrives)."""
        with self._cond:
            return len(self._faults)

    def payloads(self) -> list[Any]:
        """The parsed JSON of every accepted delivery, in arrival order."""
        return [d.json() for d in self.accepted]

    def wait_for(
        self, predicate: Callable[[tuple[Delivery, ...]], bool], timeout: float = 10.0
    ) -> tuple[Delivery, ...]:
        """Block until `predicate(deliveries)` holds, then return them; TimeoutError after
        `timeout` seconds. The predicate is checked whenever a request arrives or is
        answered, so it may also read `pending_faults`. Not from the receiver's own loop:
        it would stall the server."""
        if self._thread is None and self._loop is not None and _in_loop(self._loop):
            raise RuntimeError("in the receiver's loop, await wait_for_async instead")
        return self._wait(predicate, timeout)

    async def wait_for_async(
        self,
        predicate: Callable[[tuple[Delivery, ...]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109  (bounds the worker thread's wait; a cancel cannot)
    ) -> tuple[Delivery, ...]:
        """`wait_for` for coroutines: a worker thread blocks, the caller's loop keeps going."""
        return await asyncio.to_thread(self._wait, predicate, timeout)

    def _wait(
        self, predicate: Callable[[tuple[Delivery, ...]], bool], timeout: float
    ) -> tuple[Delivery, ...]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(tuple(self._deliveries)), timeout):
                seen = [(d.status, d.outcome, d.reason) for d in self._deliveries]
                raise TimeoutError(f"webhook receiver: condition not met in {timeout}s; saw {seen}")
            return tuple(self._deliveries)

    # ---- sending deliberate deliveries ----------------------------------------------------

    def forge(
        self,
        payload: Any,
        *,
        msg_id: str = "msg-test",
        at: datetime | None = None,
        secret: str | None = None,
        signature: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of a delivery signed with `secret` (default: the receiver's) at
        `at` (default: now). Pass an old `at` for a stale one, another secret or a
        `signature` for a forged one. `payload` bytes are sent as they are, else as JSON."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        key = secret if secret is not None else self.secret
        if key is None:
            headers = {"content-type": "application/json", "webhook-id": msg_id}
        else:
            headers = signed_headers(key, msg_id, body, at or datetime.now(UTC))
        if signature is not None:
            headers["webhook-signature"] = signature
        return body, headers

    async def send(
        self, body: bytes, headers: Mapping[str, str], *, path: str | None = None
    ) -> int:
        """POST `body` with `headers` to the receiver; the status it answered. Framing
        headers (length, host) are the client's to set, whatever `headers` holds."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url_for(path or self.path), data=body, headers=_own(headers)) as r,
        ):
            await r.read()
            return r.status

    def send_sync(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        path: str | None = None,
        timeout: float = 10.0,
    ) -> int:
        """`send` from a thread without a loop (the background-thread mode's tests)."""
        request = urllib.request.Request(  # noqa: S310  (http on loopback, never file:)
            self.url_for(path or self.path), data=body, headers=_own(headers), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    async def replay(self, delivery: Delivery) -> int:
        """Send a recorded delivery again, byte for byte (body and signed headers)."""
        return await self.send(delivery.body, delivery.signed_headers(), path=delivery.path)

    def replay_sync(self, delivery: Delivery) -> int:
        return self.send_sync(delivery.body, delivery.signed_headers(), path=delivery.path)

    # ---- serving in the current loop ------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown: held (slow) requests are released by _stopping first.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner, self._loop = runner, asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- serving from a background thread -------------------------------------------------

    def __enter__(self) -> Self:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve_in_thread(ready)),
            name="webhook-receiver",
            daemon=True,  # a failed test must not hang the interpreter at exit
        )
        self._thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("webhook receiver did not start within 10s")
        if self._thread_error is not None:
            raise RuntimeError("webhook receiver failed to start") from self._thread_error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just ended
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(10.0)
        self._thread = None

    async def _serve_in_thread(self, ready: threading.Event) -> None:
        try:
            await self.start()
        except BaseException as err:  # noqa: BLE001  (handed to __enter__, which raises it)
            self._thread_error = err
            ready.set()
            return
        ready.set()
        assert self._stopping is not None
        await self._stopping.wait()
        await self.stop()

    # ---- the endpoint ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = MappingProxyType({k.lower(): v for k, v in request.headers.items()})
        path = request.path

        def record(status: int, outcome: Outcome, reason: str = "") -> web.Response:
            with self._cond:
                self._deliveries.append(Delivery(path, headers, body, status, outcome, reason))
                self._cond.notify_all()
            return web.json_response({"outcome": outcome, "reason": reason}, status=status)

        with self._cond:
            fault = self._faults.popleft() if self._faults else None
            self._cond.notify_all()  # waiters may be watching `pending_faults`
        if fault is not None and fault.kind == "fail":
            response = record(fault.status, "rejected", f"injected HTTP {fault.status}")
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        if fault is not None and fault.kind == "slow":
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
            if self._stopping.is_set():
                return record(503, "rejected", "receiver stopping")

        response = self._decide(body, headers, record)
        if fault is not None and fault.kind == "lose" and request.transport is not None:
            # The delivery is recorded as handled; the sender never hears about it.
            request.transport.close()
        return response

    def _decide(
        self,
        body: bytes,
        headers: Mapping[str, str],
        record: Callable[[int, Outcome, str], web.Response],
    ) -> web.Response:
        if self.secret is not None:
            try:
                verify(self.secret, body, headers)
            except WebhookVerificationError as err:
                return record(401, "rejected", err.reason)
        try:
            json.loads(body)
        except ValueError:
            return record(400, "rejected", "body not JSON")
        msg_id = headers.get("webhook-id")
        digest = hashlib.sha256(body).hexdigest()
        with self._cond:
            if msg_id is not None and msg_id in self._seen:
                if self._seen[msg_id] == digest:
                    return record(self.duplicate_status, "duplicate", "id already accepted")
                return record(409, "rejected", "id reused with a different body")
            if msg_id is not None:
                self._seen[msg_id] = digest
            return record(200, "accepted", "")


def _own(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _FRAMING}


def _retry_after_header(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(max(0, round(value)))


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["Delivery", "Outcome", "WebhookReceiver"]
