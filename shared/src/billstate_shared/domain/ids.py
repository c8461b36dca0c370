"""Deterministic ids: the same inputs always give the same id, so replays and redeliveries agree."""

from __future__ import annotations

from hashlib import blake2b

MAX_READABLE_ID = 128  # the longest event id a readable id may be; longer ones are hashed


def make_id(prefix: str, *parts: object) -> str:
    """`prefix-` and 20 hex digits of a hash of the parts; stable across runs and machines."""
    text = "\x1f".join(map(str, parts))
    return f"{prefix}-{blake2b(text.encode(), digest_size=10).hexdigest()}"


def readable_id(prefix: str, *parts: object) -> str:
    """`prefix:part:part...` when that fits an event id (128 chars), else `make_id`: ids an
    operator can read where they are short, hashed where they would be too long."""
    text = ":".join((prefix, *map(str, parts)))
    return text if len(text) <= MAX_READABLE_ID else make_id(prefix, *parts)
