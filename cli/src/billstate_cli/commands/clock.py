"""`billstate clock tick|run`: business time for the services, written to every clock partition."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaError

from billstate_cli.drive import Driver, tick_event
from billstate_invoicing.domain.clock import DEFAULT_SKEW, span, utc
from billstate_shared.errors import Refused
from billstate_shared.kafka_auth import KafkaAuth
from billstate_shared.settings import ServiceSettings

REFUSED_EXIT = 2
UNREACHABLE_EXIT = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clock = sub.add_parser("clock", help="send clock ticks (business time) to billing.clock.v1")
    actions = clock.add_subparsers(dest="action", required=True, metavar="ACTION")
    tick = actions.add_parser("tick", help="one tick on every partition")
    tick.add_argument(
        "--at",
        type=_timestamp,
        help="RFC 3339 time with offset (default: now); at most 10 minutes ahead of now",
    )
    tick.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    tick.set_defaults(func=_tick)
    run = actions.add_parser("run", help="tick on a schedule until stopped")
    run.add_argument("--every", type=_interval, default=timedelta(minutes=15), help="e.g. 15m, 1h")
    run.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    run.set_defaults(func=_run)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time; write e.g. 2026-12-01T09:00:00+08:00"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write e.g. {text}+08:00")
    return value


def _interval(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval like 30s, 15m, 1h or 1d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    every = timedelta(**{unit: int(match.group(1))})
    if not every:  # 0s would send ticks back to back, as fast as the broker takes them
        raise argparse.ArgumentTypeError(f"{text!r} is no interval; give at least 1s")
    return every


async def _send(bootstrap: str, at: datetime, auth: KafkaAuth) -> None:
    async with Driver(bootstrap, groups=(), auth=auth) as driver:
        await driver.send(tick_event(at))


def not_ahead(at: datetime, now: datetime, skew: timedelta = DEFAULT_SKEW) -> None:
    """Refuse a tick more than `skew` ahead of now: invoicing would dead-letter it (it checks
    a tick against the time the broker took it), and without that guard it would age every
    open invoice to its date at once."""
    ahead = at - now
    if ahead > skew:
        raise Refused(
            "--at",
            f"{utc(at)} is {span(ahead)} ahead of now ({utc(now)}); a tick may be at most"
            f" {span(skew)} ahead, since time only moves forward and a tick from the future"
            " would age every open invoice to its date at once",
        )


def _tick(args: argparse.Namespace) -> int:
    # The scheduler is the one place that reads the wall clock: it is what "now" means.
    now = datetime.now(UTC)
    at = args.at or now
    try:
        not_ahead(at, now)
    except Refused as err:
        print(f"billstate clock tick: {err}; nothing sent", file=sys.stderr)
        return REFUSED_EXIT
    settings = ServiceSettings()  # bootstrap and security from KAFKA_* variables
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    try:
        asyncio.run(_send(bootstrap, at, settings.kafka_auth))
    except KafkaError as err:
        print(f"billstate clock tick: cannot reach Kafka at {bootstrap}: {err}", file=sys.stderr)
        return UNREACHABLE_EXIT
    print(f"tick {at.isoformat()} sent to every partition of billing.clock.v1 on {bootstrap}")
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = ServiceSettings()  # bootstrap and security from KAFKA_* variables
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers

    async def loop() -> None:
        async with Driver(bootstrap, groups=(), auth=settings.kafka_auth) as driver:
            while True:
                at = datetime.now(UTC)  # now, never ahead of it: the guard has nothing to refuse
                await driver.send(tick_event(at))
                print(f"tick {at.isoformat()}", flush=True)
                await asyncio.sleep(args.every.total_seconds())

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        print("clock stopped", file=sys.stderr)
    except KafkaError as err:
        print(f"billstate clock run: cannot reach Kafka at {bootstrap}: {err}", file=sys.stderr)
        return UNREACHABLE_EXIT
    return 0
