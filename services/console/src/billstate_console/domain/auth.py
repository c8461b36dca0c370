"""Who is asking, and may they: a static bearer token, or a trusted proxy's identity header.

Pure: the HTTP layer passes the peer address and the headers, and gets an `Identity` or a
`Denial` (401: no identity; 403: an identity without the right). A proxy's identity header
is believed only from a configured proxy address; from anywhere else it is refused outright
(401), even if a token comes with it, so a forged header is never half-believed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SESSION_COOKIE = "billstate_session"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Identity:
    user: str
    role: Role
    via: Literal["token", "proxy", "session"]
    # The proxy's username header (an operator id), when it sent one.
    name: str | None = None
    # A browser session's nonce: what its CSRF tokens are bound to.
    session: str | None = None

    @property
    def may_act(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str | None:
        """Who acted, as events keep it: an operator id, never an e-mail address (topics are
        kept long and read widely); None when the sign-in gives no such id."""
        for candidate in (self.name, self.user):
            if candidate and "@" not in candidate:
                return candidate
        return None

    @property
    def binding(self) -> str:
        """What a CSRF token is bound to: the session, else who it is and how."""
        return self.session or f"{self.via}:{self.user}"


@dataclass(frozen=True)
class Denial:
    status: Literal[401, 403]
    reason: str


@dataclass(frozen=True)
class AuthConfig:
    """`tokens`: (secret, role) pairs; `proxies`: the addresses a proxy header is believed
    from; the header names; the groups that make a viewer or an operator."""

    tokens: tuple[tuple[str, Role], ...] = ()
    proxies: tuple[Network, ...] = ()
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    # oauth2-proxy's preferred username: an operator id where the user header is an e-mail.
    username_header: str = "X-Forwarded-Preferred-Username"
    # Signs browser sessions and CSRF tokens; how long a session lasts.
    secret: bytes = b""
    session_ttl: timedelta = timedelta(hours=8)
    viewer_groups: frozenset[str] = frozenset({"billstate-viewers"})
    operator_groups: frozenset[str] = frozenset({"billstate-operators"})


def _trusted(peer: str | None, proxies: tuple[Network, ...]) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def _groups(value: str | None) -> set[str]:
    return {g for g in (value or "").replace(",", " ").split() if g}


def _from_proxy(
    config: AuthConfig,
    peer: str | None,
    user: str | None,
    groups: str | None,
    username: str | None = None,
) -> Identity | Denial:
    if not _trusted(peer, config.proxies):
        return Denial(401, "an identity header is accepted only from the configured proxy")
    name = (user or "").strip()
    if not name:
        return Denial(401, "the proxy sent no user")
    given = _groups(groups)
    preferred = (username or "").strip() or None
    if given & config.operator_groups:
        return Identity(name, "operator", "proxy", preferred)
    if given & config.viewer_groups:
        return Identity(name, "viewer", "proxy", preferred)
    return Denial(403, "no console role for this user")


def _from_token(config: AuthConfig, authorization: str | None) -> Identity | Denial:
    if authorization is None:
        return Denial(401, "sign-in required")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return Denial(401, "a bearer token is required")
    found: Role | None = None
    for token, role in config.tokens:
        # Every token is compared (constant time each), so timing tells nothing.
        if hmac.compare_digest(secret.encode(), token.encode()) and found is None:
            found = role
    if found is None:
        return Denial(401, "unknown token")
    return Identity(f"token:{found}", found, "token")


def identify(
    config: AuthConfig,
    *,
    peer: str | None,
    authorization: str | None,
    user: str | None,
    groups: str | None,
    username: str | None = None,
) -> Identity | Denial:
    """The identity of a request, or why it has none (401) or no role (403)."""
    if user is not None or groups is not None:
        return _from_proxy(config, peer, user, groups, username)
    return _from_token(config, authorization)


def token_identity(config: AuthConfig, secret: str) -> Identity | None:
    """The identity a static token gives (the sign-in form's), or None."""
    found = _from_token(config, f"Bearer {secret}")
    return found if isinstance(found, Identity) else None


# ---- browser sessions and CSRF --------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, text: str) -> str:
    return _b64(hmac.new(secret, text.encode(), hashlib.sha256).digest())


def issue(config: AuthConfig, identity: Identity, *, nonce: str, now: datetime) -> str:
    """A session cookie's value: who, the role, a nonce, the expiry; signed (HMAC-SHA256)."""
    expires = int((now + config.session_ttl).timestamp())
    body = _b64(
        json.dumps({"u": identity.user, "r": identity.role, "n": nonce, "e": expires}).encode()
    )
    return f"{body}.{_sign(config.secret, body)}"


def from_session(config: AuthConfig, cookie: str | None, *, now: datetime) -> Identity | None:
    """The identity of a session cookie, or None when it is missing, forged, or expired."""
    if not cookie or "." not in cookie or not config.secret:
        return None
    body, _, mac = cookie.partition(".")
    if not hmac.compare_digest(mac, _sign(config.secret, body)):
        return None
    try:
        doc = json.loads(_unb64(body))
        user, role, nonce, expires = str(doc["u"]), doc["r"], str(doc["n"]), int(doc["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if role not in ROLES or now.timestamp() >= expires:
        return None
    return Identity(user, role, "session", session=nonce)


def csrf_token(config: AuthConfig, identity: Identity) -> str:
    """The token every form of this identity's pages carries."""
    return _sign(config.secret, "csrf|" + identity.binding)


def csrf_ok(config: AuthConfig, identity: Identity, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(given), csrf_token(config, identity))


def signed_in(identity: Identity, nonce: str) -> Identity:
    """The session identity a sign-in makes of a token's identity."""
    return replace(identity, via="session", session=nonce)
