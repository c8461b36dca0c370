"""`billstate hold place|release`: operator holds as contract events on collections.control.v1."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from billstate_cli.commands.send import (
    SendError,
    SettingsError,
    add_bootstrap,
    kafka_of,
    produce,
    report_failure,
)
from billstate_shared.contracts import Event, encode
from billstate_shared.errors import Refused
from billstate_shared.operator.holds import (
    KINDS,
    MAX_HOLD_ID,
    OPTION_OF,
    OptionRefused,
    build_placed,
    build_released,
    derived_hold_id,
)
from billstate_shared.operator.letters import Outgoing
from billstate_shared.topics import CONTROL

# The builders live in billstate_shared.operator (the console builds the same events).
__all__ = [
    "KINDS",
    "MAX_HOLD_ID",
    "OPTION_OF",
    "OptionRefused",
    "build_placed",
    "build_released",
    "derived_hold_id",
    "register",
]


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
