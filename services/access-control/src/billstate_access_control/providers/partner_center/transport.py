"""HTTP for the Partner Center provider: one aiohttp session for the API and the token
endpoint, and answers read into plain values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from billstate_access_control.providers.base import ProviderError


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: its status, its JSON body (None if it had none), its Retry-After."""

    status: int
    body: Any
    retry_after: float | None


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds; None when absent or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from Partner Center; our backoff applies instead
    return max(seconds, 0.0)


class Transport:
    """Sends requests on one session, opened on first use. A timeout or a connection failure
    is a retryable ProviderError that names only `what`: aiohttp's own text can carry the URL
    and request details."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        what: str,
        body: Mapping[str, Any] | None = None,
        form: dict[str, str] | None = None,
    ) -> Answer:
        """`body` goes as JSON, `form` as a URL-encoded form."""
        session = self._open()
        try:
            async with session.request(
                method, url, headers=headers, json=body, data=form
            ) as response:
                raw = await response.read()
                wait = retry_after(response.headers.get("Retry-After"))
                status = response.status
        except TimeoutError:
            raise ProviderError(f"{what} timed out after {self.timeout:g}s") from None
        except aiohttp.ClientError as err:
            raise ProviderError(f"{what} failed: {type(err).__name__}") from None
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Answer(status, parsed, wait)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session
