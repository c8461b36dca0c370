"""Who is asking, and may they: a static bearer token, or a trusted proxy's identity header.

Pure: the HTTP layer passes the peer address and the headers, and gets an `Identity` or a
`Denial` (401: no identity; 403: an identity without the right). A proxy's identity header
is believed only from a configured proxy address; from anywhere else it is refused outright
(401), even if a token comes with it, so a forged header is never half-believed.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identity:
    user: str
    role: Role
    via: Literal["token", "proxy"]

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


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
    config: AuthConfig, peer: str | None, user: str | None, groups: str | None
) -> Identity | Denial:
    if not _trusted(peer, config.proxies):
        return Denial(401, "an identity header is accepted only from the configured proxy")
    name = (user or "").strip()
    if not name:
        return Denial(401, "the proxy sent no user")
    given = _groups(groups)
    if given & config.operator_groups:
        return Identity(name, "operator", "proxy")
    if given & config.viewer_groups:
        return Identity(name, "viewer", "proxy")
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
) -> Identity | Denial:
    """The identity of a request, or why it has none (401) or no role (403)."""
    if user is not None or groups is not None:
        return _from_proxy(config, peer, user, groups)
    return _from_token(config, authorization)
