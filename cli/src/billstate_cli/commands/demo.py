"""`billstate demo`: the four services on a real broker, a simulated history, and what happened.

The demo runs access-control with its guards at demo scale (a small brake, a short settle
window) and acts as the operator: at the end of every simulated business week (before
Saturday's tick) and at the end of the history, once access-control has caught up and the
approval notice for what it parked is out, it runs `billstate access approve --all --send`.

With `--console` (what `make console` runs), it then keeps going: the console service on the
same broker, with a fresh store under the run's directory, reads everything the run wrote;
once its lag is zero the URL and the sign-in are printed, and it serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from billstate_cli.drive import PIPELINE, Driver
from billstate_cli.local import CONSOLE, SERVICES, Fleet
from billstate_cli.main import main
from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import Replay
from billstate_cli.simulation import history
from billstate_cli.summary import CONSOLE_HINT, RunRecords, ends_now, read_all, summary
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.settings import ServiceSettings
from billstate_shared.topics import ACCESS_EVENTS, group_inputs

# Three months from here put the run's suspensions (from late January, 21 days past the first
# invoices' due dates) around the Lunar New Year holidays of 2026 (14 to 22 February in Taiwan),
# where the business calendar has the most to postpone.
DEMO_START = date(2025, 12, 1)
OPERATOR = "demo-operator"
OPERATOR_REASON = "demo: end of the business week, parked suspensions reviewed"
BRAKE_CAP = 5
APPROVAL_SETTLE = 3.0
SATURDAY = 5
CONSOLE_PORT = 8080
# The console reads every record the run wrote before it is shown: minutes at most.
CONSOLE_CATCH_UP = 600.0


def guard_env(brake_cap: int) -> dict[str, str]:
    """access-control's guards at demo scale (docs/operations.md, "Guards at the actuator")."""
    return {
        # Every suspension of a demo happens within minutes of wall time, so all of them count
        # in one rolling 24 hours: the first `brake_cap` go to the provider, the rest are
        # parked until the operator approves them.
        "BILLSTATE_ACCESS_CONTROL_BRAKE_CAP": str(brake_cap),
        # A batch of parked suspensions gathers for 3 seconds before its one approval notice.
        "BILLSTATE_ACCESS_CONTROL_APPROVAL_SETTLE": str(APPROVAL_SETTLE),
        # The stale-feed guard stays on, at a limit it cannot reach spuriously. The broker is
        # fresh, so the payments topic is empty (silent) when access-control starts; but the
        # history's first payments come weeks of business time (tens of seconds of wall time)
        # before its first suspension, and the feed is read every 2 seconds, so it has spoken
        # before anything could be suspended. An hour without a payment record cannot happen
        # in a run of minutes unless the history has no payments at all; then its suspensions
        # park as `stale_payment_feed`, and the operator approves them the same way.
        "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_MAX_AGE": "3600",
        "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_CHECK_INTERVAL": "2",
    }


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="start the services locally, drive a simulated history through Kafka, summarise",
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--days", type=int, default=91)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--start", type=date.fromisoformat, default=DEMO_START)
    parser.add_argument("--policy", type=Path, default=Path("policies/business-days.yaml"))
    parser.add_argument(
        "--brake-cap",
        type=int,
        default=BRAKE_CAP,
        help=f"suspensions access-control applies per 24 hours, then parks (default {BRAKE_CAP})",
    )
    parser.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--workdir", type=Path, default=Path(".cache/run"))
    parser.add_argument(
        "--services",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        default=SERVICES,
        help="which services to start (default: all four)",
    )
    parser.add_argument(
        "--console",
        action="store_true",
        help="then run the console on the run's data, printing its URL, until interrupted",
    )
    parser.add_argument(
        "--console-port",
        type=int,
        default=int(os.environ.get("BILLSTATE_CONSOLE_HTTP_PORT") or CONSOLE_PORT),
        help=f"the console's port (default: BILLSTATE_CONSOLE_HTTP_PORT, else {CONSOLE_PORT};"
        " a free one when taken)",
    )
    parser.set_defaults(func=_run)


def _say(text: str) -> None:
    print(text, flush=True)


def _run(args: argparse.Namespace) -> int:
    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    bootstrap = args.bootstrap or ServiceSettings().kafka_bootstrap_servers
    events = list(history(args.customers, args.days, args.seed, args.start, policy.timezone))
    fleet = Fleet(
        args.workdir,
        bootstrap,
        args.policy.resolve(),
        extra_env={
            "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_COLLECTIONS_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_NOTIFICATIONS_OUTBOX_DIR": str((args.workdir / "outbox").resolve()),
            **guard_env(args.brake_cap),
        },
    )
    # The services' state from an earlier run would not match a fresh broker.
    shutil.rmtree(args.workdir, ignore_errors=True)
    started = time.monotonic()
    try:
        _say(f"starting {', '.join(args.services)} (logs in {args.workdir}/)")
        fleet.start(args.services)
        fleet.wait_ready()
        _say(f"{len(args.services)} services ready after {time.monotonic() - started:.0f}s")

        def progress(driver: Driver, event: dict[str, Any]) -> None:
            if event["event_type"] == "clock.tick" and driver.ticks % 5 == 0:
                _say(f"  day {driver.ticks:>3}/{args.days} ({event['occurred_at'][:10]}):"
                     f" {driver.sent:,} billing events sent")  # fmt: skip

        _say(f"simulating {args.customers} customers over {args.days} days (seed {args.seed}) ...")
        pipeline = tuple(s for s in args.services if s in PIPELINE)
        operator = Operator(bootstrap) if "access-control" in args.services else None
        asyncio.run(play(bootstrap, events, pipeline, operator, progress))
        downstream = tuple(s for s in args.services if s in ("access-control", "notifications"))
        asyncio.run(_settle(bootstrap, downstream))
        _say(f"simulation done after {time.monotonic() - started:.0f}s; reading the topics ...")
        records = RunRecords.read(bootstrap)
        records.inbound = events
        replay = Replay(policy)
        records.replayed = [
            {"event_type": o.event_type, "event_id": o.event_id, "customer_id": o.customer_id,
             "data": _data(o)}
            for e in events for o in replay.feed(decode_event(e))
        ]  # fmt: skip
    finally:
        fleet.stop()
        _say("services stopped")
    header = (
        f"billstate run: {args.customers} customers, {args.days} days from {args.start}"
        f" (seed {args.seed}), policy {policy.name} v{policy.version}, time zone {policy.timezone}"
    )
    if operator is not None:
        header += (
            f"\naccess-control: brake {args.brake_cap} suspensions per 24 hours, approval notices"
            f" after {APPROVAL_SETTLE:g} s; {OPERATOR} approved parked suspensions"
            f" {operator.approved} times (end of each business week, and at the end)"
        )
    _say("")
    _say(summary(records, header, hint=None if args.console else CONSOLE_HINT))
    _say(f"logs: {args.workdir}/*.log; delivered notices: {args.workdir}/outbox/")
    if args.console:
        return console(args, bootstrap)
    return 0


def _port(wanted: int) -> int:
    """`wanted` if it is free on loopback, else 0 (the fleet picks a free one)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return 0
    return wanted


def console(args: argparse.Namespace, bootstrap: str) -> int:
    """The console on the run's broker and a fresh store, shown once it has read everything
    the run wrote, until interrupted (Ctrl-C or SIGTERM); then stopped by pid."""
    port = _port(args.console_port)
    if not port:
        _say(f"port {args.console_port} is taken; the console takes a free one")
    fleet = Fleet(args.workdir, bootstrap, args.policy.resolve(), ports={CONSOLE: port})
    inputs = tuple(t.name for t in group_inputs(CONSOLE))
    found = asyncio.run(ends_now(bootstrap, inputs))
    ends = {(tp.topic, tp.partition): end for tp, end in found.items()}
    # Ctrl-C and SIGTERM (a supervisor, `kill`) end the wait alike, so the console stops
    # cleanly; SIGINT explicitly too, as a shell starts a background job with it ignored.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = time.monotonic()
        _say(f"starting the console (log: {args.workdir}/{CONSOLE}.log) ...")
        fleet.start((CONSOLE,))
        fleet.wait_ready()
        fleet.wait_caught_up(CONSOLE, ends, CONSOLE_CATCH_UP)
        took = time.monotonic() - started
        _say(f"the console has read the {len(inputs)} topics to their end after {took:.0f}s")
        _sign_in(fleet)
        return _serve(fleet)
    except KeyboardInterrupt:
        _say("")
        return 0
    finally:
        for signum in previous:  # as `_interrupt` does, when the wait ended otherwise
            signal.signal(signum, signal.SIG_IGN)
        fleet.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _say("console stopped")


def _sign_in(fleet: Fleet) -> None:
    served = fleet.get(CONSOLE)
    viewer = fleet.token_file("viewer")
    bearer = f'-H "Authorization: Bearer $(cat {viewer})"'
    _say("")
    _say(f"The console: {served.url('/')}")
    _say("Sign in with a bearer token (Authorization: Bearer <token>); this run's, in files")
    _say("only you can read:")
    for role in fleet.console_tokens:
        _say(f"  {role:<8} {fleet.token_file(role)}")
    _say(f"e.g.  curl {bearer} {served.url('/api/overview')}")
    _say(
        f"      BILLSTATE_CONSOLE_TOKEN=$(cat {viewer}) BILLSTATE_CONSOLE_URL={served.url('')}"
        " billstate status CUSTOMER"
    )
    _say("Ctrl-C stops the console.")


def _serve(fleet: Fleet) -> int:
    """Wait while the console runs; 1 (with its log's tail) if it ends by itself."""
    served = fleet.get(CONSOLE)
    process = served.process
    while process is not None and process.poll() is None:
        time.sleep(0.5)
    tail = served.log.read_text(errors="replace")[-2000:]
    code = None if process is None else process.returncode
    _say(f"the console exited with {code}; {served.log}:\n{tail}")
    return 1


def _interrupt(_signum: int, _frame: object) -> None:
    # Once: a second Ctrl-C (or uv passing the same one on) must not cut the stop short.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


async def _settle(bootstrap: str, groups: tuple[str, ...]) -> None:
    async with Driver(bootstrap, groups=groups) as driver:
        await driver.settle()


async def play(
    bootstrap: str,
    events: list[dict[str, Any]],
    pipeline: tuple[str, ...],
    operator: Operator | None,
    progress: Callable[[Driver, dict[str, Any]], None],
) -> None:
    """Drive the history; the operator acts before each Saturday's tick and at the end."""
    async with Driver(bootstrap, pipeline) as driver:
        for event in events:
            if operator is not None and _is_saturday_tick(event):
                await driver.settle()
                await operator.round(event["occurred_at"][:10])
            await driver.send(event)
            progress(driver, event)
        await driver.settle()
    if operator is not None:
        await operator.round("the end")


def _is_saturday_tick(event: dict[str, Any]) -> bool:
    return (
        event["event_type"] == "clock.tick"
        and datetime.fromisoformat(event["occurred_at"]).weekday() == SATURDAY
    )


class Operator:
    """The partner's operator in a demo: approves every parked suspension, once the
    approval notice for it is out, with `billstate access approve --all --send`."""

    def __init__(self, bootstrap: str, wait_for_notice: float = APPROVAL_SETTLE + 30) -> None:
        self.bootstrap = bootstrap
        self.wait_for_notice = wait_for_notice
        self.approved = 0  # rounds that approved something

    async def round(self, when: str) -> None:
        await _settle(self.bootstrap, ("access-control",))
        waiting = await self._announced()
        if not waiting:
            return
        argv = ["access", "approve", "--all", "--by", OPERATOR, "--reason", OPERATOR_REASON,
                "--send", "--bootstrap", self.bootstrap]  # fmt: skip
        code, said = await asyncio.to_thread(_quietly, argv)
        if code != 0:
            _say(f"  {when}: `billstate access approve` exited {code}: {said.strip()[-300:]}")
            return
        self.approved += 1
        _say(f"  {when}: {OPERATOR} approved {waiting} parked suspension(s)")
        await _settle(self.bootstrap, ("access-control",))

    async def _announced(self) -> int:
        """Parked suspensions still open, once every parked one is counted in an
        `access.approval_needed` (or after `wait_for_notice` seconds, when a batch's members
        were all cancelled before its notice and none came)."""
        deadline = time.monotonic() + self.wait_for_notice
        while True:
            found = (await read_all(self.bootstrap, [ACCESS_EVENTS.name]))[ACCESS_EVENTS.name]
            parked = {e["data"]["command_id"] for e in found if e["event_type"] == "access.parked"}
            ended = {e["data"]["command_id"] for e in found if e["event_type"] == "access.unparked"}
            told = sum(
                e["data"]["count"] for e in found if e["event_type"] == "access.approval_needed"
            )
            still = len(parked - ended)
            if not still or told >= len(parked) or time.monotonic() > deadline:
                return still
            await asyncio.sleep(0.5)


def _quietly(argv: list[str]) -> tuple[int, str]:
    """Run a `billstate` command in this process; its exit code and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


def decode_event(event: dict[str, Any]) -> Any:
    import json

    return decode(json.dumps(event).encode())


def _data(output: Any) -> dict[str, Any]:
    import json

    raw = to_bytes(output)
    data: dict[str, Any] = json.loads(raw)["data"]
    return data
