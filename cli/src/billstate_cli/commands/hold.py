"""`billstate hold place|release`: operator holds as contract events on collections.control.v1."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from datetime import UTC, date, datetime
from typing import Any, get_args

from billstate_cli.commands.send import (
    Outgoing,
    SendError,
    SettingsError,
    add_bootstrap,
    kafka_of,
    produce,
    report_failure,
)
from billstate_shared.contracts import (
    ContractError,
    Event,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    decode,
    encode,
)
from billstate_shared.errors import Refused
from billstate_shared.topics import CONTROL

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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hold = sub.add_parser(
        "hold", help="place or release an operator hold (dispute, promise to pay, manual)"
    )
    actions = hold.add_subparsers(dest="action", required=True, metavar="ACTION")

    place = actions.add_parser(
        "place",
        help="send hold.placed to collections.control.v1",
        description=(
            "Builds a hold.placed event, checks it against the contract, sends it keyed by "
            "the customer id and waits for the broker's acknowledgement. Without --hold-id "
            "the hold id is derived from the hold's fields, so running the same command "
            "again sends the same event, which collections applies once."
        ),
    )
    place.add_argument("--customer", required=True, metavar="ID", help="customer_id")
    place.add_argument("--kind", required=True, choices=KINDS)
    place.add_argument("--invoice", metavar="INV", help="invoice_id (required on a dispute)")
    place.add_argument(
        "--amount",
        metavar="AMOUNT",
        help="dispute only: the disputed part, e.g. 200.00 (default: the whole open amount)",
    )
    place.add_argument(
        "--until", metavar="YYYY-MM-DD", help="promise_to_pay: the promised date (required)"
    )
    place.add_argument("--reason", required=True, metavar="TEXT")
    place.add_argument("--by", required=True, metavar="WHO", help="operator id, not an e-mail")
    place.add_argument("--hold-id", metavar="ID", help="default: derived from the fields above")
    _common(place)
    place.set_defaults(func=_place)

    release = actions.add_parser(
        "release",
        help="send hold.released to collections.control.v1",
        description="Ends a hold. A released hold id can never be placed again.",
    )
    release.add_argument("--customer", required=True, metavar="ID", help="customer_id")
    release.add_argument("--hold-id", required=True, metavar="ID")
    release.add_argument("--reason", required=True, metavar="TEXT")
    release.add_argument("--by", required=True, metavar="WHO", help="operator id, not an e-mail")
    _common(release)
    release.set_defaults(func=_release)


def _common(parser: argparse.ArgumentParser) -> None:
    add_bootstrap(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the envelope on stdout; send nothing"
    )


# ---- building -------------------------------------------------------------------------------


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


def _operator_rules(reason: str, by: str, hold_id: str) -> None:
    # Beyond the contract: rules for what an operator types into an audit trail.
    if not reason.strip():
        raise OptionRefused("--reason", "must say why")
    if not by.strip():
        raise OptionRefused("--by", "must name the operator")
    if "@" in by:
        # Topics are kept for a year and read widely; an e-mail address is personal data.
        raise OptionRefused("--by", "must be an operator id, not an e-mail address")
    if len(hold_id) > MAX_HOLD_ID:
        raise OptionRefused("--hold-id", f"must be at most {MAX_HOLD_ID} characters")


def _checked(
    event_type: str, verb: str, customer: str, now: datetime, data: dict[str, Any]
) -> Event:
    """The operator rules, then the envelope checked by the services' own decoder."""
    hold_id = data["hold_id"]
    _operator_rules(data["reason"], data["by"], hold_id)
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


# ---- the commands ---------------------------------------------------------------------------


def _now() -> datetime:
    # occurred_at records when the operator acted; the services never decide by it.
    return datetime.now(UTC).replace(microsecond=0)


def _place(args: argparse.Namespace) -> int:
    try:
        event = build_placed(
            args.customer, args.kind, args.reason, args.by, _now(),
            invoice=args.invoice, amount=args.amount, until=args.until, hold_id=args.hold_id,
        )  # fmt: skip
    except Refused as err:
        print(f"billstate hold place: {err}; nothing sent", file=sys.stderr)
        return 2
    return _emit("billstate hold place", "placed", event, event.data.hold_id, args)


def _release(args: argparse.Namespace) -> int:
    try:
        event = build_released(args.customer, args.hold_id, args.reason, args.by, _now())
    except Refused as err:
        print(f"billstate hold release: {err}; nothing sent", file=sys.stderr)
        return 2
    return _emit("billstate hold release", "released", event, event.data.hold_id, args)


def _emit(command: str, verb: str, event: Event, hold_id: str, args: argparse.Namespace) -> int:
    item = Outgoing("command line", CONTROL.name, event, encode(event))
    if args.dry_run:
        print(item.value.decode())
        print(
            f"dry run: hold {hold_id} would be {verb} on {CONTROL.name}, key"
            f" {event.customer_id}; nothing sent",
            file=sys.stderr,
        )
        return 0
    try:
        (done,) = asyncio.run(produce(kafka_of(args), [item]))
    except SettingsError as err:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return 2
    except SendError as err:
        report_failure(command, err, 1)
        return 1
    print(
        f"{verb} hold {hold_id} for customer {event.customer_id}: event {event.event_id}"
        f" on {CONTROL.name} partition {done.partition} offset {done.offset}"
    )
    return 0
