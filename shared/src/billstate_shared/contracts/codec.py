"""Bytes to events and back: `decode`, `encode` and the one error type, `ContractError`."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from billstate_shared.contracts.events import EVENT_TYPES, Event, EventBase
from billstate_shared.errors import Refused

__all__ = ["ContractError", "decode", "encode"]

# Built once: constructing a TypeAdapter compiles the validator, far costlier than a decode.
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_KNOWN_TYPES = ", ".join(EVENT_TYPES)


class ContractError(Refused):
    """A message that does not satisfy the wire contract.

    `field` is the dotted path of the first offending field (`data.amount`, `event_type`),
    or `$` when the message as a whole is unreadable (not UTF-8, not JSON, not an object).
    Reasons never quote the offending value, so they are safe to log and to put in a DLQ
    record even when the value is an e-mail address.
    """


def decode(raw: bytes | bytearray | str) -> Event:
    """Parse and validate one message value; raise ContractError on the first problem."""
    try:
        # Checked up front so that bad encoding gets its own reason instead of a JSON one.
        if isinstance(raw, str):
            raw.encode("utf-8")
        else:
            bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise ContractError("$", f"not valid UTF-8: {exc.reason} at position {exc.start}") from None
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _translate(exc.errors(include_url=False, include_input=False)[0]) from None


def encode(event: EventBase) -> bytes:
    """Compact UTF-8 JSON, fields in declaration order; `decode(encode(e)) == e`."""
    return event.model_dump_json().encode("utf-8")


_REASONS = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this event type",
}


def _translate(error: ErrorDetails) -> ContractError:
    kind = error["type"]
    loc = error["loc"]
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        return ContractError("$", f"invalid JSON: {ctx.get('error', error['msg'])}")
    if kind == "union_tag_not_found":
        return ContractError("event_type", "is required")
    if kind == "union_tag_invalid":
        # Capped: the tag is producer input and ends up in logs and DLQ records.
        tag = str(ctx.get("tag"))[:128]
        return ContractError(
            "event_type", f"unknown event type {tag!r}; expected one of: {_KNOWN_TYPES}", tag
        )
    # A tagged union prefixes every error inside a member with that member's tag.
    event_type: str | None = None
    if loc and isinstance(loc[0], str) and loc[0] in EVENT_TYPES:
        event_type = loc[0]
        loc = loc[1:]
    if not loc:
        reason = "must be a JSON object" if kind in {"dict_type", "model_type"} else error["msg"]
        return ContractError("$", reason, event_type)
    field = ".".join(str(part) for part in loc)
    return ContractError(field, _REASONS.get(kind, error["msg"]), event_type)
