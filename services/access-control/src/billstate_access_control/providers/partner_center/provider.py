"""Partner Center provider: suspends and restores CSP subscriptions through the REST API."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from billstate_access_control.domain import Access
from billstate_access_control.providers.base import Change, ProviderError, note
from billstate_access_control.providers.partner_center.entra import EntraToken
from billstate_access_control.providers.partner_center.mapping import check_ids
from billstate_access_control.providers.partner_center.transport import Answer, Transport
from billstate_access_control.store import Store
from billstate_shared.contracts import ProviderExchange
from billstate_shared.runtime.wallclock import WallClock, utc_now

API = "https://api.partnercenter.microsoft.com"
SCOPE = "https://api.partnercenter.microsoft.com/.default"
NAME = "partner_center"

# What Partner Center drops when a subscription is suspended (a mid-term change deletes the
# scheduled changes, and a suspended subscription does not renew): restored on reactivation.
DROPPED_BY_SUSPENSION = ("autoRenewEnabled", "scheduledNextTermInstructions")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_STALE_ETAG = "2055"  # Partner Center's 400 "Etag is no longer valid": same remedy as a 412


class PartnerCenterConfig(BaseModel):
    """Where Partner Center is, how to get a token for it, and which ids it knows ours by."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = API
    # The partner tenant's Microsoft Entra v2 endpoint:
    # https://login.microsoftonline.com/<partner-tenant-id>/oauth2/v2.0/token
    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str = SCOPE
    request_timeout: float = Field(default=10.0, gt=0, le=120)
    # 412s in a row (someone else keeps changing the subscription) before giving up this try.
    max_conflict_retries: int = Field(default=3, ge=0, le=10)
    # Refresh this long before the token's expiry, so no request carries a dying token.
    token_margin: float = Field(default=60.0, ge=0, le=600)
    customers: dict[str, str] = Field(default_factory=dict)
    subscriptions: dict[str, str] = Field(default_factory=dict)

    @field_validator("customers")
    @classmethod
    def _tenants(cls, value: dict[str, str]) -> dict[str, str]:
        return check_ids(value, "customers")

    @field_validator("subscriptions")
    @classmethod
    def _subscriptions(cls, value: dict[str, str]) -> dict[str, str]:
        return check_ids(value, "subscriptions")


class PartnerCenterProvider:
    """Sets a CSP subscription's `status` with GET, then PATCH of the whole resource under
    `If-Match`. Remembers (in the store's memo) what a suspension drops and puts it back on
    reactivation. `clock` (monotonic seconds) times the token's life; `now` (the wall clock)
    stamps the exchanges it notes for `access.failed` and `access.drift`."""

    name = NAME

    def __init__(
        self,
        config: PartnerCenterConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: WallClock = utc_now,
    ) -> None:
        self.config, self.store, self.now = config, store, now
        self._http = Transport(config.request_timeout)
        self._token = EntraToken(
            self._http,
            token_url=config.token_url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            scope=config.scope,
            margin=config.token_margin,
            clock=clock,
        )

    # -- the Provider protocol --------------------------------------------------------

    async def apply(self, change: Change) -> None:
        tenant = self._tenant(change.customer_id)
        if tenant is None:
            raise ProviderError(
                f"customer {change.customer_id} has no Partner Center tenant in the mapping",
                retryable=False,
            )
        path = self._path(tenant, change.subscription_id)
        for _ in range(self.config.max_conflict_retries + 1):
            resource, etag = await self._read(path)
            status = resource.get("status")
            if status == change.desired:
                if change.desired == "active":
                    # Active already: our earlier reactivation (or a person's) landed, and
                    # anything still remembered is stale.
                    self.store.forget(NAME, change.customer_id, change.subscription_id)
                return
            if status not in ("active", "suspended"):
                raise ProviderError(
                    f"Partner Center subscription is {status!r}, neither active nor suspended",
                    retryable=False,
                )
            body = self._target(change, resource)
            answer = await self._call(
                "PATCH", path, body=body, etag=etag, request_id=self._request_id(change, etag)
            )
            if answer.status == 200:
                if change.desired == "active":
                    self.store.forget(NAME, change.customer_id, change.subscription_id)
                return
            if answer.status == 412 or (answer.status == 400 and _code(answer.body) == _STALE_ETAG):
                continue  # changed since our GET: read it again
            raise self._failure("PATCH", answer)
        raise ProviderError(
            f"Partner Center subscription changed under us {self.config.max_conflict_retries + 1}"
            " times in a row (HTTP 412)"
        )

    async def observe(self, customer_id: str, subscription_id: str) -> Access | None:
        tenant = self._tenant(customer_id)
        if tenant is None:
            return None
        answer = await self._call("GET", self._path(tenant, subscription_id))
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise self._failure("GET", answer)
        status = answer.body.get("status")
        if status == "active":
            return "active"
        if status == "suspended":
            return "suspended"
        return None

    async def close(self) -> None:
        await self._http.close()

    # -- reads for the cost poller and the commitment checks ---------------------------

    async def read(self, path: str, *, continuation: str | None = None) -> Any:
        """One GET of `path` (below /v1, query included) as JSON; a failure is a
        ProviderError (a 429 or a 5xx retryable, with the Retry-After). `continuation` goes
        as the `MS-ContinuationToken` header a paged answer's `links.next` asks for."""
        extra = {} if continuation is None else {"MS-ContinuationToken": continuation}
        answer = await self._call("GET", path, extra=extra)
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise self._failure("GET", answer)
        return answer.body

    def tenant_of(self, customer_id: str) -> str | None:
        """The customer's tenant id in the mapping."""
        return self._tenant(customer_id)

    def customer_of(self, tenant: str) -> str | None:
        """The billstate customer a tenant id is mapped from (None: not ours)."""
        wanted = tenant.lower()
        for customer, mapped in self.config.customers.items():
            if mapped.lower() == wanted:
                return customer
        return None

    def subscription_of(self, pc_id: str) -> str:
        """billstate's id for a Partner Center subscription id (unmapped: the same id)."""
        wanted = pc_id.lower()
        for ours, theirs in self.config.subscriptions.items():
            if theirs.lower() == wanted:
                return ours
        return pc_id

    # -- what to send -----------------------------------------------------------------

    def _target(self, change: Change, resource: dict[str, Any]) -> dict[str, Any]:
        """The whole resource as read, with the new status; suspension writes down first what
        it will drop, reactivation puts back what was written down."""
        body = dict(resource)
        body["status"] = change.desired
        cid, sid = change.customer_id, change.subscription_id
        if change.desired == "suspended":
            memo: dict[str, Any] = {"command_id": change.command_id}
            memo.update(
                (field, resource[field])
                for field in DROPPED_BY_SUSPENSION
                if resource.get(field) is not None
            )
            # Remembered before the PATCH: if we crash after it lands, the values are safe;
            # only an active subscription gets here, so a memo is never overwritten with
            # what a suspension already dropped.
            self.store.remember(NAME, cid, sid, memo)
            body["autoRenewEnabled"] = False
            if "scheduledNextTermInstructions" in body:
                body["scheduledNextTermInstructions"] = None
        else:
            remembered = self.store.memo(NAME, cid, sid) or {}
            body.update(
                (field, value)
                for field, value in remembered.items()
                if field in DROPPED_BY_SUSPENSION
            )
        return body

    def _tenant(self, customer_id: str) -> str | None:
        return self.config.customers.get(customer_id)

    def _path(self, tenant: str, subscription_id: str) -> str:
        sid = self.config.subscriptions.get(subscription_id, subscription_id)
        return f"/v1/customers/{quote(tenant, safe='')}/subscriptions/{quote(sid, safe='')}"

    @staticmethod
    def _request_id(change: Change, etag: str) -> str:
        # Same change of the same version, same MS-RequestId: a PATCH retried after a timeout
        # is recognised by Partner Center as the same call, as its headers doc asks.
        key = f"{change.command_id}\n{change.subscription_id}\n{change.desired}\n{etag}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    # -- HTTP -------------------------------------------------------------------------

    async def _read(self, path: str) -> tuple[dict[str, Any], str]:
        answer = await self._call("GET", path)
        if answer.status != 200:
            raise self._failure("GET", answer)
        resource = answer.body
        if not isinstance(resource, dict):
            raise ProviderError("Partner Center GET: HTTP 200 without a JSON object")
        attributes = resource.get("attributes")
        etag = attributes.get("etag") if isinstance(attributes, dict) else None
        if not isinstance(etag, str) or not etag:
            raise ProviderError(
                "Partner Center GET: the subscription has no attributes.etag", retryable=False
            )
        return resource, etag

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        etag: str | None = None,
        request_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Answer:
        """One API call; a 401 drops the token and tries once more with a fresh one. Each
        request is noted with the ids it carried: what Microsoft support asks for."""
        url = self.config.base_url.rstrip("/") + path
        answer = Answer(0, None, None)
        for _ in range(2):
            token = await self._token.get()
            sent = Sent(
                at=self.now(),
                method=method,
                path=path.partition("?")[0],
                request_id=request_id or str(uuid.uuid4()),
                correlation_id=str(uuid.uuid4()),
            )
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "MS-Contract-Version": "v1",
                "MS-CorrelationId": sent.correlation_id,
                "MS-RequestId": sent.request_id,
            }
            headers.update(extra or {})
            if etag is not None:
                headers["If-Match"] = f'"{etag.strip(chr(34))}"'
            try:
                answer = await self._http.send(
                    method, url, headers=headers, what=f"Partner Center {method}", body=body
                )
            except (ProviderError, asyncio.CancelledError):
                # No answer (a timeout, a lost connection, the budget cutting the call short);
                # noted all the same: the request may have reached Partner Center.
                note(sent.exchange(None, None))
                raise
            note(sent.exchange(answer.status, self._answer(answer)))
            if answer.status != 401:
                return answer
            self._token.drop(token)
        return answer

    def _answer(self, answer: Answer) -> str | None:
        """Partner Center's error code and description (scrubbed, cut short); None on success."""
        if answer.status < 400 or not isinstance(answer.body, dict):
            return None
        code = _code(answer.body)
        # A 429 from the front door says `message` where the API says `description`.
        said = answer.body.get("description") or answer.body.get("message")
        description = said if isinstance(said, str) else ""
        text = ": ".join(part for part in (code, description) if part)
        return self._scrub(text) if text else None

    def _failure(self, method: str, answer: Answer) -> ProviderError:
        """A short error: status, Partner Center's error code and a scrubbed description."""
        code = _code(answer.body)
        text = f"Partner Center {method}: HTTP {answer.status}"
        if code:
            text += f", code {code}"
        description = answer.body.get("description") if isinstance(answer.body, dict) else None
        if isinstance(description, str) and description:
            text += f": {self._scrub(description)}"
        retryable = answer.status in (408, 429) or answer.status >= 500
        retry_after = answer.retry_after if retryable else None
        return ProviderError(text, retryable=retryable, retry_after=retry_after)

    def _scrub(self, text: str) -> str:
        """Partner Center's own words, without addresses or anything of our credentials."""
        for secret in (self._token.current, self.config.client_secret.get_secret_value()):
            if secret:
                text = text.replace(secret, "<redacted>")
        text = _EMAIL.sub("<email>", text)
        text = re.sub(r"Bearer\s+\S+", "Bearer <redacted>", text)
        text = " ".join(text.split())
        return text if len(text) <= 160 else text[:157] + "..."


@dataclass(frozen=True, slots=True)
class Sent:
    """One request as it went out, to be noted with its answer."""

    at: datetime
    method: str
    path: str  # no query string
    request_id: str
    correlation_id: str

    def exchange(self, status: int | None, answer: str | None) -> ProviderExchange:
        return ProviderExchange(
            at=self.at,
            method=self.method,
            path=self.path,
            status=status,
            request_id=self.request_id,
            correlation_id=self.correlation_id,
            answer=answer,
        )


def _code(body: Any) -> str:
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, str | int) and not isinstance(code, bool):
            return str(code)
    return ""
