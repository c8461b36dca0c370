"""Partner Center provider: suspends and restores CSP subscriptions through the REST API."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from billstate_access_control.providers.base import Change, Desired, ProviderError
from billstate_access_control.store import Store

API = "https://api.partnercenter.microsoft.com"
SCOPE = "https://api.partnercenter.microsoft.com/.default"
NAME = "partner_center"

# What Partner Center drops when a subscription is suspended (a mid-term change deletes the
# scheduled changes, and a suspended subscription does not renew): restored on reactivation.
DROPPED_BY_SUSPENSION = ("autoRenewEnabled", "scheduledNextTermInstructions")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_STALE_ETAG = "2055"  # Partner Center's 400 "Etag is no longer valid": same remedy as a 412


def _check_ids(mapping: dict[str, str], what: str) -> dict[str, str]:
    for key, value in mapping.items():
        if not key:
            raise ValueError(f"{what}: an empty billstate id")
        if not _GUID.match(value):
            raise ValueError(f"{what}: {key} maps to {value!r}, not a GUID")
    return mapping


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
        return _check_ids(value, "customers")

    @field_validator("subscriptions")
    @classmethod
    def _subscriptions(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_ids(value, "subscriptions")


# -- the mapping file ---------------------------------------------------------------------


def load_mapping(path: Path | str) -> tuple[dict[str, str], dict[str, str]]:
    """Read `{customers: {billstate id: tenant id}, subscriptions: {billstate id: PC id}}`.

    Bad content raises a ValueError naming the file, the line and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8"
        raise ValueError(f"{path}: cannot read the mapping ({reason})") from None

    def fail(node: yaml.Node | None, problem: str) -> ValueError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ValueError(f"{path}{line}: {problem}")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not valid YAML ({err.problem})") from None
    if root is None:
        return {}, {}
    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "the mapping must be a YAML mapping with customers and subscriptions")

    sections: dict[str, dict[str, str]] = {"customers": {}, "subscriptions": {}}
    seen: set[str] = set()
    for key_node, value_node in root.value:
        section = _text(key_node)
        if section not in sections:
            raise fail(
                key_node, f"unknown key {key_node.value!r}; expected customers, subscriptions"
            )
        if section in seen:
            raise fail(key_node, f"{section} appears twice")
        seen.add(section)
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":null"):
            continue  # `customers:` with nothing under it
        if not isinstance(value_node, yaml.MappingNode):
            raise fail(value_node, f"{section} must be a mapping of billstate id to GUID")
        target = sections[section]
        for id_node, guid_node in value_node.value:
            ours = _text(id_node)
            if ours is None or not ours:
                raise fail(id_node, f"{section}: a billstate id must be a non-empty string")
            if ours in target:
                raise fail(id_node, f"{section}: {ours} appears twice")
            theirs = _text(guid_node)
            if theirs is None or not _GUID.match(theirs):
                raise fail(guid_node, f"{section}: {ours} must map to a GUID")
            target[ours] = theirs
    return sections["customers"], sections["subscriptions"]


def _text(node: yaml.Node) -> str | None:
    """A scalar's text when it is a string or an integer (an all-digit customer id)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag.endswith((":str", ":int")):
        return str(node.value)
    return None


# -- the provider -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any
    retry_after: float | None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from Partner Center; our backoff applies instead
    return max(seconds, 0.0)


class PartnerCenterProvider:
    """Sets a CSP subscription's `status` with GET, then PATCH of the whole resource under
    `If-Match`. Remembers (in the store's memo) what a suspension drops and puts it back on
    reactivation."""

    name = NAME

    def __init__(
        self,
        config: PartnerCenterConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.store, self.clock = config, store, clock
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    # -- the Provider protocol --------------------------------------------------------

    async def apply(self, change: Change) -> None:
        tenant = self._tenant(change.customer_id)
        if tenant is None:
            raise ProviderError(
                False, f"customer {change.customer_id} has no Partner Center tenant in the mapping"
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
                    False,
                    f"Partner Center subscription is {status!r}, neither active nor suspended",
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
            True,
            f"Partner Center subscription changed under us {self.config.max_conflict_retries + 1}"
            " times in a row (HTTP 412)",
        )

    async def observe(self, customer_id: str, subscription_id: str) -> Desired | None:
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
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- what to send -----------------------------------------------------------------

    def _target(self, change: Change, resource: dict[str, Any]) -> dict[str, Any]:
        """The whole resource as read, with the new status; suspension writes down first what
        it will drop, reactivation puts back what was written down."""
        body = dict(resource)
        body["status"] = change.desired
        cid, sid = change.customer_id, change.subscription_id
        if change.desired == "suspended":
            memo: dict[str, Any] = {"command_id": change.command_id}
            for field in DROPPED_BY_SUSPENSION:
                if resource.get(field) is not None:
                    memo[field] = resource[field]
            # Remembered before the PATCH: if we crash after it lands, the values are safe;
            # only an active subscription gets here, so a memo is never overwritten with
            # what a suspension already dropped.
            self.store.remember(NAME, cid, sid, memo)
            body["autoRenewEnabled"] = False
            if "scheduledNextTermInstructions" in body:
                body["scheduledNextTermInstructions"] = None
        else:
            for field, value in (self.store.memo(NAME, cid, sid) or {}).items():
                if field in DROPPED_BY_SUSPENSION:
                    body[field] = value
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
        key = "\n".join((change.command_id, change.subscription_id, change.desired, etag))
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    # -- HTTP -------------------------------------------------------------------------

    async def _read(self, path: str) -> tuple[dict[str, Any], str]:
        answer = await self._call("GET", path)
        if answer.status != 200:
            raise self._failure("GET", answer)
        resource = answer.body
        if not isinstance(resource, dict):
            raise ProviderError(True, "Partner Center GET: HTTP 200 without a JSON object")
        attributes = resource.get("attributes")
        etag = attributes.get("etag") if isinstance(attributes, dict) else None
        if not isinstance(etag, str) or not etag:
            raise ProviderError(
                False, "Partner Center GET: the subscription has no attributes.etag"
            )
        return resource, etag

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.request_timeout)
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        etag: str | None = None,
        request_id: str | None = None,
    ) -> _Answer:
        """One API call; a 401 drops the token and tries once more with a fresh one."""
        url = self.config.base_url.rstrip("/") + path
        answer = _Answer(0, None, None)
        for _ in range(2):
            token = await self._access_token()
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "MS-Contract-Version": "v1",
                "MS-CorrelationId": str(uuid.uuid4()),
                "MS-RequestId": request_id or str(uuid.uuid4()),
            }
            if etag is not None:
                headers["If-Match"] = f'"{etag.strip(chr(34))}"'
            answer = await self._send(method, url, headers, body, f"Partner Center {method}")
            if answer.status != 401:
                return answer
            self._drop_token(token)
        return answer

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Mapping[str, Any] | None,
        what: str,
        form: dict[str, str] | None = None,
    ) -> _Answer:
        session = self._session_now()
        try:
            async with session.request(
                method, url, headers=headers, json=body, data=form
            ) as response:
                raw = await response.read()
                retry_after = _retry_after(response.headers.get("Retry-After"))
                status = response.status
        except TimeoutError:
            raise ProviderError(
                True, f"{what} timed out after {self.config.request_timeout:g}s"
            ) from None
        except aiohttp.ClientError as err:
            # The class only: aiohttp's text can carry the URL and request details.
            raise ProviderError(True, f"{what} failed: {type(err).__name__}") from None
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return _Answer(status, parsed, retry_after)

    async def _access_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and self.clock() < self._token_until:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret.get_secret_value(),
                "scope": self.config.scope,
            }
            headers = {"Accept": "application/json"}
            answer = await self._send(
                "POST", self.config.token_url, headers, None, "token request", form=form
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            if answer.status != 200:
                error = body.get("error")
                kind = f" {error}" if isinstance(error, str) and error.isidentifier() else ""
                retryable = answer.status == 429 or answer.status >= 500
                raise ProviderError(
                    retryable, f"token request: HTTP {answer.status}{kind}", answer.retry_after
                )
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise ProviderError(True, "token request: HTTP 200 without an access_token")
            try:
                lifetime = float(body.get("expires_in", 0))
            except (TypeError, ValueError):
                lifetime = 0.0
            self._token = token
            self._token_until = self.clock() + max(lifetime - self.config.token_margin, 0.0)
            return token

    def _drop_token(self, token: str) -> None:
        if self._token == token:  # another call may have refreshed it already
            self._token, self._token_until = None, 0.0

    def _failure(self, method: str, answer: _Answer) -> ProviderError:
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
        return ProviderError(retryable, text, retry_after)

    def _scrub(self, text: str) -> str:
        """Partner Center's own words, without addresses or anything of our credentials."""
        for secret in (self._token, self.config.client_secret.get_secret_value()):
            if secret:
                text = text.replace(secret, "<redacted>")
        text = _EMAIL.sub("<email>", text)
        text = re.sub(r"Bearer\s+\S+", "Bearer <redacted>", text)
        text = " ".join(text.split())
        return text if len(text) <= 160 else text[:157] + "..."


def _code(body: Any) -> str:
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, str | int) and not isinstance(code, bool):
            return str(code)
    return ""
