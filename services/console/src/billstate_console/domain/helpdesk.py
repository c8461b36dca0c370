"""A helpdesk delivery's body as a support event: billstate's own shape, or a Zendesk trigger's."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, get_args

from billstate_shared.contracts import ContractError, Event, decode
from billstate_shared.contracts.events import SupportTopic
from billstate_shared.errors import Refused

KINDS = ("support.requested", "support.resolved")
TOPICS: tuple[SupportTopic, ...] = get_args(SupportTopic)
# Zendesk's statuses that end a ticket; any other status is a (new or updated) request.
ENDED = frozenset({"solved", "closed"})
ZENDESK_PREFIX = "ZD-"
# What `{{ticket.via}}` renders, in the contract's words (any other: lower-cased as it came).
VIA = {
    "mail": "email",
    "email": "email",
    "web form": "web",
    "web widget": "web",
    "web service": "api",
    "api": "api",
    "phone call (incoming)": "phone",
    "phone call (outgoing)": "phone",
    "voicemail": "phone",
    "voice": "phone",
    "chat": "chat",
    "messaging": "chat",
}
_OWN_KEYS = frozenset({"event_type", "customer_id", "data"})
_ZENDESK_KEYS = frozenset({"ticket_id", "customer_id", "tags", "via", "title", "status"})


class PayloadRefused(Refused):
    """A body that makes no valid support event: `field` names where (answered 422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)


def event_id(customer_id: str, ticket_id: str, event_type: str) -> str:
    """The same delivery (or a helpdesk's retry with a new id) makes the same event id."""
    return f"helpdesk:{customer_id}:{ticket_id}:{event_type.removeprefix('support.')}"


def _text(doc: dict[str, Any], name: str, where: str) -> str:
    value = doc.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadRefused(f"{where}{name}", "is missing or not a non-empty string")
    return value.strip()


def _own(doc: dict[str, Any]) -> dict[str, Any]:
    extra = sorted(set(doc) - _OWN_KEYS)
    if extra:
        raise PayloadRefused(extra[0], "is not a field of a support delivery")
    kind = doc.get("event_type")
    if kind not in KINDS:
        raise PayloadRefused("event_type", f"is none of {', '.join(KINDS)}")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PayloadRefused("data", "is not an object")
    return {"event_type": kind, "customer_id": doc.get("customer_id"), "data": data}


def _topic(tags: str) -> SupportTopic:
    # `{{ticket.tags}}` renders the tags space-separated; exactly one must say the topic.
    found = [t for t in TOPICS if t in tags.split()]
    if len(found) != 1:
        raise PayloadRefused(
            "zendesk.tags", f"must hold exactly one of {', '.join(TOPICS)} (found {len(found)})"
        )
    return found[0]


def _zendesk(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise PayloadRefused("zendesk", "is not an object")
    extra = sorted(set(doc) - _ZENDESK_KEYS)
    if extra:
        raise PayloadRefused(f"zendesk.{extra[0]}", "is not a field of the Zendesk body")
    ticket = ZENDESK_PREFIX + _text(doc, "ticket_id", "zendesk.")
    customer = _text(doc, "customer_id", "zendesk.")
    status = _text(doc, "status", "zendesk.").lower()
    if status in ENDED:
        data: dict[str, Any] = {"ticket_id": ticket, "resolution": f"{status} in Zendesk"}
        return {"event_type": "support.resolved", "customer_id": customer, "data": data}
    via = str(doc.get("via") or "").strip()
    data = {
        "ticket_id": ticket,
        "topic": _topic(str(doc.get("tags") or "")),
        "channel": VIA.get(via.lower(), via.lower()),
        "summary": str(doc.get("title") or "").strip() or None,
    }
    return {"event_type": "support.requested", "customer_id": customer, "data": data}


def parse(body: bytes, at: datetime) -> Event:
    """The support event a delivery's body says, stamped `at` (the delivery's signed time),
    validated by the contracts; PayloadRefused with the field when it makes none."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadRefused("$", "is not JSON") from None
    if not isinstance(doc, dict):
        raise PayloadRefused("$", "is not a JSON object")
    envelope = _zendesk(doc["zendesk"]) if set(doc) == {"zendesk"} else _own(doc)
    data = envelope["data"]
    customer = envelope["customer_id"]
    if not isinstance(customer, str) or not isinstance(data.get("ticket_id"), str):
        field = "customer_id" if not isinstance(customer, str) else "data.ticket_id"
        raise PayloadRefused(field, "is missing or not a string")
    body_doc = {
        **envelope,
        "event_id": event_id(customer, data["ticket_id"], envelope["event_type"]),
        "occurred_at": at.isoformat(),
    }
    try:
        return decode(json.dumps(body_doc))
    except ContractError as err:
        raise PayloadRefused(err.field, err.reason) from None


__all__ = ["ENDED", "KINDS", "TOPICS", "VIA", "PayloadRefused", "event_id", "parse"]
