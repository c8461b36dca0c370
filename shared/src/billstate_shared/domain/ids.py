"""Deterministic ids: the same inputs always give the same id, so replays and redeliveries agree."""

from __future__ import annotations

from hashlib import blake2b


def make_id(prefix: str, *parts: object) -> str:
    """`prefix-` and 20 hex digits of a hash of the parts; stable across runs and machines."""
    text = "\x1f".join(str(p) for p in parts)
    return f"{prefix}-{blake2b(text.encode(), digest_size=10).hexdigest()}"


def readable_id(prefix: str, *parts: object) -> str:
    """`prefix:part:part...` when that fits an event id (128 chars), else `make_id`: ids an
    operator can read where they are short, hashed where they would be too long."""
    text = ":".join((prefix, *map(str, parts)))
    return text if len(text) <= 128 else make_id(prefix, *parts)
