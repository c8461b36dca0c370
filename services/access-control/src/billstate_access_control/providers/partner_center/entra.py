"""The Microsoft Entra token client: app-only tokens (OAuth 2.0 client credentials) from the
partner tenant's v2 endpoint, each kept until shortly before it expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pydantic import SecretStr

from billstate_access_control.providers.base import ProviderError
from billstate_access_control.providers.partner_center.transport import Transport


class EntraToken:
    """One token at a time, shared by concurrent calls; refreshed `margin` seconds before its
    expiry (by `clock`, monotonic seconds), or at once after `drop` (the API said 401)."""

    def __init__(
        self,
        transport: Transport,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport, self.clock, self.margin = transport, clock, margin
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self._secret = client_secret
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> str | None:
        """The token in hand, if any (for scrubbing it out of error texts)."""
        return self._token

    async def get(self) -> str:
        async with self._lock:
            if self._token is not None and self.clock() < self._until:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret.get_secret_value(),
                "scope": self.scope,
            }
            answer = await self.transport.send(
                "POST",
                self.token_url,
                headers={"Accept": "application/json"},
                what="token request",
                form=form,
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            if answer.status != 200:
                error = body.get("error")
                kind = f" {error}" if isinstance(error, str) and error.isidentifier() else ""
                raise ProviderError(
                    f"token request: HTTP {answer.status}{kind}",
                    retryable=answer.status == 429 or answer.status >= 500,
                    retry_after=answer.retry_after,
                )
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise ProviderError("token request: HTTP 200 without an access_token")
            try:
                lifetime = float(body.get("expires_in", 0))
            except (TypeError, ValueError):
                lifetime = 0.0
            self._token = token
            self._until = self.clock() + max(lifetime - self.margin, 0.0)
            return token

    def drop(self, token: str) -> None:
        """Forget `token` (the API refused it); another call may have refreshed it already."""
        if self._token == token:
            self._token, self._until = None, 0.0
