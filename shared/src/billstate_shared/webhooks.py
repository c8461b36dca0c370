"""Standard Webhooks for both services: secrets, signed headers, verification, one POST."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from math import floor
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _LibraryError

from billstate_shared.errors import ConfigRefused, ExternalError, Refused

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
# The spec asks for 24 to 64 random bytes for HMAC-SHA256 keys.
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
# The standardwebhooks library's fixed window; kept here so docs and tests can name it.
TOLERANCE = timedelta(minutes=5)
CONTENT_TYPE = "application/json"
USER_AGENT = "billstate-webhooks/1"
MAX_RESPONSE = 4096  # bytes of a 2xx answer kept (Teams reports throttling in the body)
# The signed content is `id.timestamp.body`: the spec forbids "." in the id, and a header
# value must be visible ASCII, so ids are plain tokens.
_MSG_ID = re.compile(r"[A-Za-z0-9_:-]{1,256}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class WebhookSecretError(ConfigRefused):
    """A secret that is not `whsec_<base64 of 24..64 bytes>`; the message never holds it.

    A configured secret is a setting, so this stops the start-up; `field` is `secret`."""

    def __init__(self, reason: str) -> None:
        super().__init__("secret", reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


class WebhookVerificationError(Refused):
    """A delivery that failed verification; `reason` is short, stable and safe to log:
    missing headers, malformed timestamp, malformed signature, stale timestamp,
    future timestamp, bad signature or body not UTF-8. `field` is `$`: the delivery."""

    def __init__(self, reason: str) -> None:
        super().__init__("$", reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


def secret_key(secret: str) -> bytes:
    """The HMAC key behind a `whsec_` secret, or WebhookSecretError saying what is wrong."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(f"a webhook secret must look like {SECRET_PREFIX}<base64>")
    encoded = secret[len(SECRET_PREFIX) :]
    if not _BASE64.fullmatch(encoded):
        raise WebhookSecretError(f"the part after {SECRET_PREFIX} is not base64")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSecretError(f"the part after {SECRET_PREFIX} is not base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise WebhookSecretError(
            f"a webhook secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes,"
            f" this one holds {len(key)}"
        )
    return key


def validate_secret(secret: str) -> str:
    """`secret` unchanged if usable (for pydantic validators), else WebhookSecretError."""
    secret_key(secret)
    return secret


def new_secret(nbytes: int = 32) -> str:
    """A fresh random secret in the spec's format, for tests, docs and operators."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise Refused("nbytes", f"must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def is_message_id(msg_id: str) -> bool:
    """Whether `msg_id` can travel as a webhook-id as it is (else hash it to one)."""
    return bool(_MSG_ID.fullmatch(msg_id))


def signed_headers(secret: str, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers (id, timestamp, signature) plus content-type for `body`.

    `now` must be timezone-aware: the library stamps a datetime by *replacing* its zone with
    UTC, so a local time would be signed hours off; we convert instead.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise Refused("now", "must be timezone-aware")
    if not is_message_id(msg_id):
        raise Refused("webhook-id", "must be 1..256 of A-Z a-z 0-9 _ : -")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("body", "a webhook body must be UTF-8") from None
    secret_key(secret)  # a clear error before the library's vaguer ones
    stamp = now.astimezone(UTC)
    signature = Webhook(secret).sign(msg_id, stamp, text)
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(stamp.timestamp())),
        "webhook-signature": signature,
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a delivery's signature and freshness (±TOLERANCE of the wall clock).

    Raises WebhookVerificationError with a short reason; the wall clock is the library's,
    which is what a receiver should use anyway.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError("body not UTF-8") from None
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        Webhook(secret).verify(text, lowered, json_parse=False)
    except _LibraryError as err:
        raise WebhookVerificationError(_reason(str(err))) from None
    except (ValueError, binascii.Error):
        # The library unpacks "v1,<sig>" and decodes base64 without guarding either.
        raise WebhookVerificationError("malformed signature") from None


ZENDESK_HEADERS = (
    "x-zendesk-webhook-signature",
    "x-zendesk-webhook-signature-timestamp",
    "x-zendesk-webhook-invocation-id",
)


def verify_zendesk(secret: str, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """Check a Zendesk webhook delivery: its own scheme, not Standard Webhooks. The signature
    is base64(HMAC-SHA256(secret, timestamp + body)) with the ISO 8601 timestamp header, fresh
    within TOLERANCE of `now`. Returns the invocation id (what a retry repeats); raises
    WebhookVerificationError with the same short reasons as `verify`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if any(not lowered.get(h) for h in ZENDESK_HEADERS):
        raise WebhookVerificationError("missing headers")
    stamp = lowered["x-zendesk-webhook-signature-timestamp"]
    try:
        at = datetime.fromisoformat(stamp)  # 3.11 reads the trailing Z
    except ValueError:
        raise WebhookVerificationError("malformed timestamp") from None
    if at.tzinfo is None:
        raise WebhookVerificationError("malformed timestamp")
    if at < now - TOLERANCE:
        raise WebhookVerificationError("stale timestamp")
    if at > now + TOLERANCE:
        raise WebhookVerificationError("future timestamp")
    expected = base64.b64encode(
        hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    ).decode()
    if not hmac.compare_digest(expected, lowered["x-zendesk-webhook-signature"].strip()):
        raise WebhookVerificationError("bad signature")
    return lowered["x-zendesk-webhook-invocation-id"]


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP-date) as seconds from `now`, never
    negative; None when absent or unreadable (the caller's backoff applies)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def origin(url: str) -> str:
    """`scheme://host[:port]` of `url`, for errors and logs: webhook paths and query strings
    are often credentials (Slack's and Teams' incoming-webhook URLs are bearer tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


class DeliveryError(ExternalError):
    """A POST that did not end in a 2xx. `retryable`: a timeout, a connection error, 408,
    429 or 5xx; not a redirect or another 4xx. `message` names only the URL's origin."""


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,  # noqa: ASYNC109  (the HTTP timeout handed to aiohttp, not a cancellation)
    clock: Callable[[], datetime],
) -> str:
    """POST `body` once; the start of the answer's text on a 2xx, else DeliveryError.

    Redirects are not followed: the spec counts a 3xx as a failure, and following one
    would hand a signed payload to an address nobody configured.
    """
    where = origin(url)
    try:
        async with session.post(
            url,
            data=body,
            headers={"user-agent": USER_AGENT, **headers},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            status = response.status
            if 200 <= status < 300:
                text = await response.content.read(MAX_RESPONSE)
                return text.decode("utf-8", errors="replace")
            wait = retry_after_seconds(response.headers.get("Retry-After"), clock())
    except TimeoutError:
        raise DeliveryError(f"webhook {where} timed out after {timeout:g}s") from None
    except aiohttp.ClientConnectorError as err:
        detail = err.os_error.strerror or type(err.os_error).__name__
        raise DeliveryError(f"cannot connect to webhook {where}: {detail}") from None
    except aiohttp.ClientError as err:
        # Other client errors' texts may quote the whole URL: keep only the type.
        raise DeliveryError(f"webhook {where}: {type(err).__name__}") from None
    message = f"webhook {where} answered HTTP {status}"
    if status in (408, 429) or status >= 500:
        raise DeliveryError(message, retry_after=wait)
    if 300 <= status < 400:
        raise DeliveryError(f"{message} (a redirect; not followed)", retryable=False)
    if status == 410:
        raise DeliveryError(
            f"{message} (gone: the endpoint wants no more deliveries)", retryable=False
        )
    raise DeliveryError(message, retryable=False)


class Poster:
    """One webhook endpoint and the HTTP session that reaches it; `send` is `post` to it.

    The session is created on first use, inside the running loop that will use it, and
    released by `close()` (the services call it on the way out)."""

    def __init__(self, url: str, *, timeout: float, clock: Callable[[], datetime]) -> None:
        self.url, self.timeout, self.clock = url, timeout, clock
        self._session: aiohttp.ClientSession | None = None

    async def send(self, body: bytes, headers: Mapping[str, str]) -> str:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return await post(
            self._session, self.url, body, headers, timeout=self.timeout, clock=self.clock
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_REASONS = {
    "Missing required headers": "missing headers",
    "Invalid Signature Headers": "malformed timestamp",
    "Message timestamp too old": "stale timestamp",
    "Message timestamp too new": "future timestamp",
    "No matching signature found": "bad signature",
}


def _reason(message: str) -> str:
    return _REASONS.get(message, "verification failed")


__all__ = [
    "CONTENT_TYPE",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "TOLERANCE",
    "USER_AGENT",
    "DeliveryError",
    "Poster",
    "WebhookSecretError",
    "WebhookVerificationError",
    "is_message_id",
    "new_secret",
    "origin",
    "post",
    "retry_after_seconds",
    "secret_key",
    "signed_headers",
    "validate_secret",
    "verify",
]
