"""Operator holds: `hold.placed` / `hold.released` for collections.control.v1, checked."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any, get_args

from billstate_shared.contracts import (
    ContractError,
    Event,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    decode,
)
from billstate_shared.errors import Refused

KINDS: tuple[str, ...] = get_args(HoldKind)

# The contract's field paths, as the options an operator typed.
OPTION_OF = {
    "customer_id": "--customer",
    "event_id": "--hold-id",
    "data.hold_id": "--hold-id",
    "data.kind": "--kind",
    "data.invoice_id": "--invoice",
    "data.amount": "--amount",
    "data.until": "--until",
    "data.reason": "--reason",
    "data.by": "--by",
}

# An event id is at most 128 characters and adds "hold-" and "-released" to the hold id.
MAX_HOLD_ID = 128 - len("hold-") - len("-released")


class OptionRefused(Refused):
    """An option the contract (or the operator rules on top) refuses: the option and why.

    `field` names the option as typed, with the contract's field path after it when the
    contract refused it (`--until (data.until)`); `contract_field` is that path alone."""

    def __init__(self, option: str, reason: str, contract_field: str | None = None) -> None:
        where = option if contract_field is None else f"{option} ({contract_field})"
        super().__init__(where, reason, event_type=None)
        self.option, self.contract_field = option, contract_field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.option, self.reason, self.contract_field))

    @property
    def name(self) -> str:
        """The option without its dashes (`until`): a form's field."""
        return self.option.removeprefix("--")


def operator_id(by: str) -> None:
    """Who acted, as an audit trail may keep it: named, and not an e-mail address."""
    if not by.strip():
        raise OptionRefused("--by", "must name the operator")
    if "@" in by:
        # Topics are kept for a year and read widely; an e-mail address is personal data.
        raise OptionRefused("--by", "must be an operator id, not an e-mail address")


def derived_hold_id(
    customer: str,
    kind: str,
    *,
    invoice: str | None,
    amount: str | None,
    until: str | None,
    reason: str,
    by: str,
    on: date,
) -> str:
    """`<kind>-<16 hex>`: the first 64 bits of SHA-256 over the fields and the UTC date of
    placing, as a JSON array, exactly as typed. The same command retried that day yields the
    same hold (applied once); the same hold placed again on a later day, after a release, is
    a new one (a released hold id can never be placed again)."""
    fields = [customer, kind, invoice, amount, until, reason, by, on.isoformat()]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def operator_rules(reason: str, by: str, hold_id: str) -> None:
    """Beyond the contract: rules for what an operator types into an audit trail."""
    if not reason.strip():
        raise OptionRefused("--reason", "must say why")
    operator_id(by)
    if len(hold_id) > MAX_HOLD_ID:
        raise OptionRefused("--hold-id", f"must be at most {MAX_HOLD_ID} characters")


def _checked(
    event_type: str, verb: str, customer: str, now: datetime, data: dict[str, Any]
) -> Event:
    """The operator rules, then the envelope checked by the services' own decoder."""
    hold_id = data["hold_id"]
    operator_rules(data["reason"], data["by"], hold_id)
    envelope = {
        "event_id": f"hold-{hold_id}-{verb}",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": now.isoformat(),
        "customer_id": customer,
        "data": data,
    }
    try:
        return decode(json.dumps(envelope, ensure_ascii=False))
    except ContractError as err:
        option = OPTION_OF.get(err.field, err.field)
        raise OptionRefused(option, err.reason, err.field) from None


def build_placed(
    customer: str,
    kind: str,
    reason: str,
    by: str,
    now: datetime,
    *,
    invoice: str | None = None,
    amount: str | None = None,
    until: str | None = None,
    hold_id: str | None = None,
) -> HoldPlaced:
    """A checked hold.placed event; raises OptionRefused naming the option and the reason."""
    if hold_id is None:
        hold_id = derived_hold_id(
            customer, kind, invoice=invoice, amount=amount, until=until, reason=reason, by=by,
            on=now.astimezone(UTC).date(),
        )  # fmt: skip
    data = {
        "hold_id": hold_id,
        "kind": kind,
        "invoice_id": invoice,
        "amount": amount,
        "until": until,
        "reason": reason,
        "by": by,
    }
    event = _checked("hold.placed", "placed", customer, now, data)
    assert isinstance(event, HoldPlaced)
    return event


def build_released(
    customer: str, hold_id: str, reason: str, by: str, now: datetime
) -> HoldReleased:
    """A checked hold.released event; raises OptionRefused naming the option and the reason."""
    data = {"hold_id": hold_id, "reason": reason, "by": by}
    event = _checked("hold.released", "released", customer, now, data)
    assert isinstance(event, HoldReleased)
    return event
