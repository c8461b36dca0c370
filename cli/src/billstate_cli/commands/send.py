"""`billstate send FILE`: check envelopes as the services would, then produce each to its topic."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from billstate_shared.contracts import ContractError
from billstate_shared.errors import ConfigRefused, ExternalError, Refused
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.operator.letters import Outgoing, Seen, check
from billstate_shared.settings import ServiceSettings
from billstate_shared.topics import topic_for

Headers = tuple[tuple[str, bytes], ...]
# `check`, `Outgoing` and `Seen` are the shared operator package's: one checker and one record
# type for whatever produces operator records (send, re-drive, the console's actions).


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "send",
        help="validate a file of envelopes and produce each to its topic (dry run unless --send)",
        description=(
            "Reads one JSON envelope per line, validates every line with the decoder the "
            "services use, picks each topic from the event_type and keys each record by its "
            "customer_id. A bad line stops everything before anything is sent (exit 2). A "
            "second copy of an event_id is skipped. Without --send it only prints what it "
            "would send."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="JSONL file of envelopes ('-' for stdin)")
    parser.add_argument("--send", action="store_true", help="produce (default: dry run)")
    add_bootstrap(parser)
    parser.set_defaults(func=_run)


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:39092",
    )


@dataclass(frozen=True)
class Kafka:
    """Where the cluster is and how to log in to it."""

    bootstrap: str
    auth: KafkaAuth | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        return {"bootstrap_servers": self.bootstrap, **client_options(self.auth)}


class SettingsError(ConfigRefused):
    """The KAFKA_* settings are incomplete or contradict each other; says `Kafka settings: why`."""

    def __init__(self, reason: str) -> None:
        super().__init__("Kafka settings", reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


def kafka_of(args: argparse.Namespace) -> Kafka:
    """--bootstrap, else the settings every service reads (KAFKA_BOOTSTRAP_SERVERS, then the
    default); security (SASL, TLS) from the same KAFKA_* variables as the services."""
    try:
        settings = ServiceSettings()
    except ValidationError as err:
        problem = err.errors(include_url=False, include_input=False)[0]
        cause = problem.get("ctx", {}).get("error")
        # A refused setting's own words, in pydantic's phrasing for a validator's error.
        message = f"Value error, {cause.reason}" if isinstance(cause, Refused) else problem["msg"]
        raise SettingsError(message) from None
    given: str | None = args.bootstrap
    return Kafka(given or settings.kafka_bootstrap_servers, settings.kafka_auth)


# ---- producing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """A record the broker acknowledged (acks=all)."""

    item: Outgoing
    partition: int
    offset: int


class SendError(ExternalError):
    """Kafka could not take the records; `delivered` holds those acknowledged before, and
    `sending` says whether any were handed to the producer (else nothing was written).
    Running the same command again is safe (the services skip an applied event id)."""

    def __init__(self, message: str, delivered: list[Delivered], *, sending: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.sending = sending

    def __reduce__(self) -> tuple[Any, ...]:
        return (_send_error, (self.message, self.delivered, self.sending))


def _send_error(message: str, delivered: list[Delivered], sending: bool) -> SendError:  # noqa: FBT001  (pickle passes it by position)
    return SendError(message, delivered, sending=sending)


async def produce(kafka: Kafka, items: Sequence[Outgoing]) -> list[Delivered]:
    """Produce in order, idempotently, and wait for every acknowledgement."""
    bootstrap = kafka.bootstrap
    # Idempotence keeps the order within a partition even with several requests in flight.
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, request_timeout_ms=15000, **kafka.options()
    )
    delivered: list[Delivered] = []
    try:
        await producer.start()
    except KafkaError as err:
        await producer.stop()
        raise SendError(f"cannot reach Kafka at {bootstrap}: {err}", delivered) from None
    try:
        # Checked first: producing to a missing topic retries quietly until a timeout.
        cluster = await producer.client.fetch_all_metadata()
        missing = sorted({i.topic for i in items} - set(cluster.topics()))
        if missing:
            raise SendError(
                f"no topic {', '.join(missing)} on {bootstrap}; create the catalog's topics "
                "with `billstate topics apply`",
                delivered,
            )
        pending = []
        for item in items:
            headers = list(item.headers)
            pending.append(
                (item, await producer.send(item.topic, item.value, key=item.key, headers=headers))
            )
        for item, future in pending:
            meta = await future
            delivered.append(Delivered(item, meta.partition, meta.offset))
    except KafkaError as err:
        raise SendError(f"Kafka at {bootstrap} failed: {err}", delivered, sending=True) from None
    finally:
        await producer.stop()
    return delivered


def report_failure(command: str, err: SendError, total: int) -> None:
    """Say exactly what is known after a failed send, and that a retry is safe."""
    acked = len(err.delivered)
    if not err.sending:
        print(f"{command}: {err}; nothing sent", file=sys.stderr)
        return
    print(f"{command}: {err}", file=sys.stderr)
    print(
        f"{command}: {acked} of {total} acknowledged; the others may or may not have been "
        "written. Running the same command again is safe: the services skip an event id "
        "they have applied.",
        file=sys.stderr,
    )


# ---- output hygiene -------------------------------------------------------------------------

_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[^\s@\"'<>(),;:]+")


def safe(text: str) -> str:
    """For tables: e-mail addresses masked, control characters shown as '?'."""
    masked = _EMAIL.sub("[email]", text)
    return "".join(c if c.isprintable() else "?" for c in masked)


def aligned(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A plain-text table: cells made `safe`, every column but the last padded to its widest
    cell (the last, usually a reason, runs on), trailing blanks stripped."""
    cells = [[safe(c) for c in row] for row in [list(columns), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in cells
    ]


# ---- the command ----------------------------------------------------------------------------


def read_file(name: str) -> Iterable[tuple[int, bytes]]:
    """Numbered non-blank lines, newline stripped; '-' reads stdin."""
    if name == "-":
        lines = sys.stdin.buffer.read().splitlines()
    else:
        lines = Path(name).read_bytes().splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line.strip()


def plan_file(name: str) -> tuple[list[Outgoing], list[str], list[str]]:
    """What a file would send; duplicate notes; errors as `FILE:LINE: field: reason`."""
    items: list[Outgoing] = []
    notes: list[str] = []
    errors: list[str] = []
    seen = Seen()
    for number, line in read_file(name):
        origin = f"{name}:{number}"
        try:
            event = check(line)
        except ContractError as err:
            errors.append(f"{origin}: {err.field}: {err.reason}")
            continue
        first = seen.first_copy(event, f"line {number}")
        if first is None:
            items.append(Outgoing(origin, topic_for(event.event_type).name, event, line))
        elif first[1]:
            notes.append(f"duplicate {origin}: event_id {event.event_id} as on {first[0]}, skipped")
        else:
            errors.append(
                f"{origin}: event_id: {event.event_id} is already on {first[0]} with a different "
                "value; the services would apply only the first"
            )
    return items, notes, errors


def _run(args: argparse.Namespace) -> int:
    try:
        items, notes, errors = plan_file(args.file)
    except OSError as err:
        print(f"billstate send: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"billstate send: {len(errors)} bad line(s); nothing sent", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    if not args.send:
        for item in items:
            print(f"would send {item.origin}: {item.describe()}")
        print(f"dry run: {len(items)} to send, {len(notes)} duplicate(s); add --send to produce")
        return 0
    try:
        kafka = kafka_of(args)
        delivered = asyncio.run(produce(kafka, items))
    except SettingsError as err:
        print(f"billstate send: {err}; nothing sent", file=sys.stderr)
        return 2
    except SendError as err:
        report_failure("billstate send", err, len(items))
        return 1
    for d in delivered:
        print(
            f"sent {d.item.origin}: {d.item.describe()} partition {d.partition} offset {d.offset}"
        )
    print(f"sent {len(delivered)} to {kafka.bootstrap}, {len(notes)} duplicate(s) skipped")
    return 0
