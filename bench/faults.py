"""`make faults`: the four services on the local broker, a simulated history driven tick by tick
like the demo, and faults injected at seeded random ticks; then, per fault, what it cost.

The invariant: the services decide exactly what `billstate replay` decides for the same input,
Partner Center sees one successful PATCH per subscription and desired change, and every notice
becomes an e-mail or, after the channel's retries, a notice.failed. The broker is the project's
local one (`billstate_devkit.localkafka`, under BILLSTATE_CACHE_DIR and BILLSTATE_KAFKA_PORT),
cleaned at the start and stopped at the end; access-control talks to the Partner Center test
server and notifications to the SMTP test server, both in this process. bench/README.md
describes the run and the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from billstate_cli.drive import Driver
from billstate_cli.local import SERVICES, Fleet, Service
from billstate_cli.replay import Replay
from billstate_cli.simulation import DEFAULT_START, history
from billstate_cli.summary import read_all
from billstate_devkit import localkafka
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_devkit.smtp import Received, SmtpTestServer, Stage
from billstate_notifications.channels.email import message_id
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import (
    ACCESS_COMMANDS,
    CATALOG,
    CLOCK,
    EVENTS,
    NOTICE_DELIVERIES,
    NOTICE_REQUESTS,
)

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "standard.yaml"
CLIENT_SECRET = "faults-client-secret-not-real"  # noqa: S105  (a throw-away test credential)
SMTP_PASSWORD = "faults-smtp-password-not-real"  # noqa: S105
FROM = "collections@partner.example"
DOMAIN = FROM.split("@")[1]
GUIDS = uuid.UUID("6b1f0c4e-2d3a-4f5b-8c6d-7e8f9a0b1c2d")  # namespace of the mapped GUIDs
KINDS = {  # decision event type -> the kind the table counts it under
    "collections.stage_entered": "stage",
    "access.suspend": "access",
    "access.restore": "access",
    "notice.requested": "notice",
}
RECOVER_LIMIT = 180.0  # seconds a fault may take to recover before it counts as not recovered
RESTART_DELAY = 2.0  # seconds before an exited service is started again (a pod restart)
REBALANCE_TICKS = 3  # days the second collections worker stays


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ---- the test servers, with faults that last a while -------------------------------------


@dataclass
class Window:
    """A fault that lasts `seconds` from when it opens; `hits` counts the answers it spoiled."""

    mode: str
    seconds: float
    until: float = 0.0
    hits: int = 0

    def open(self) -> None:
        self.hits = 0
        self.until = time.monotonic() + self.seconds

    @property
    def active(self) -> bool:
        return time.monotonic() < self.until


@dataclass(frozen=True)
class Patch:
    """One PATCH that reached Partner Center's write: its target and the status before it."""

    tenant: str
    subscription: str
    target: str
    before: str
    status: int
    at: float


class FaultyPartnerCenter(PartnerCenterServer):
    """The Partner Center test server, plus a window of 429s, 500s or slow answers, and a log
    of every PATCH with the status the subscription had before it."""

    SLOW = (1.0, 3.0)  # answer delays in turn during a `slow` window (timeout: 2 s)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = Window("none", 0.0)
        self.patch_log: list[Patch] = []

    def _gate(self, request: web.Request) -> tuple[web.Response | None, float]:
        refused, delay = super()._gate(request)
        if refused is not None or not self.window.active:
            return refused, delay
        self.window.hits += 1
        if self.window.mode == "429":
            body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}
            return web.json_response(body, status=429, headers={"Retry-After": "1"}), 0.0
        if self.window.mode == "500":
            body = {"code": 800003, "description": "Unexpected service error", "data": []}
            return web.json_response(body, status=500), 0.0
        return None, self.SLOW[self.window.hits % len(self.SLOW)]

    def _apply(self, key: tuple[str, str], body: Any, if_match: str | None) -> web.Response:
        resource = self._subscriptions.get(key)
        before = str(resource["status"]) if resource is not None else "missing"
        response = super()._apply(key, body, if_match)
        target = str(body.get("status")) if isinstance(body, dict) else "?"
        self.patch_log.append(Patch(*key, target, before, response.status, time.monotonic()))
        return response


class FaultySmtp(SmtpTestServer):
    """The SMTP test server, plus a window of 451 replies to RCPT, and arrival times."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = Window("451", 0.0)
        self.arrivals: list[tuple[float, str]] = []  # (monotonic, Message-ID)

    def start(self) -> Self:
        super().start()
        # A client SIGKILLed mid-session makes aiosmtpd log a traceback: expected here.
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
        return self

    def _take_fault(self, stage: Stage) -> str | None:
        if stage == "RCPT" and self.window.active:
            self.window.hits += 1
            return "451 4.3.0 Try again later"
        return super()._take_fault(stage)

    def _accept(self, received: Received) -> None:
        self.arrivals.append((time.monotonic(), str(received.message["Message-ID"])))
        super()._accept(received)


# ---- what replay decides ---------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    event_id: str
    kind: str  # stage, access, notice
    cause: int  # index of the inbound event that made it
    data: dict[str, Any]


@dataclass
class Expected:
    """Replay's decisions for the history, and what they mean for Partner Center and SMTP."""

    decisions: dict[str, Decision]
    desired: dict[str, list[tuple[str, int]]]  # subscription -> [(status, cause)] in order
    ticks: list[int]  # indexes of the clock ticks
    tick_kinds: dict[int, set[str]]  # tick index -> kinds decided on it

    @classmethod
    def of(cls, events: list[dict[str, Any]], replay: Replay) -> Expected:
        decisions: dict[str, Decision] = {}
        desired: dict[str, list[tuple[str, int]]] = defaultdict(list)
        tick_kinds: dict[int, set[str]] = defaultdict(set)
        for i, event in enumerate(events):
            for out in replay.feed(decode(json.dumps(event).encode())):
                kind = KINDS.get(out.event_type)
                if kind is None:
                    continue
                data = json.loads(to_bytes(out))["data"]
                decisions[out.event_id] = Decision(out.event_id, kind, i, data)
                tick_kinds[i].add(kind)
                status = "suspended" if out.event_type == "access.suspend" else "active"
                for sub in data.get("subscription_ids", []) if kind == "access" else []:
                    desired[sub].append((status, i))
        ticks = [i for i, e in enumerate(events) if e["event_type"] == "clock.tick"]
        return cls(decisions, dict(desired), ticks, dict(tick_kinds))

    def changes(self, subscription: str) -> int:
        """How many times the subscription's desired status changes, starting active."""
        now, count = "active", 0
        for status, _ in self.desired[subscription]:
            count += status != now
            now = status
        return count

    def notices(self) -> dict[str, Decision]:
        return {d.data["notice_id"]: d for d in self.decisions.values() if d.kind == "notice"}


# ---- the faults, as data ---------------------------------------------------------------


@dataclass
class Injection:
    """One fault put in: where (event index, day), when, and how it went."""

    fault: Fault
    pos: int
    day: str
    began: float
    recovered: float | None = None  # seconds from the injection; None: not within the limit
    measured: bool = False  # the action measured recovery itself
    hits: int | None = None  # answers a server window spoiled
    note: str = ""


When = Literal["any", "access", "notice"]
Act = Callable[["Run", Injection], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    act: Act
    times: int
    when: When = "any"  # ticks it goes in at: any, or where replay decides access or notices
    span: int = 0  # ticks after its own that it drives itself (no other fault goes in there)


# ---- the run ---------------------------------------------------------------------------


class Feeder(Driver):
    """The demo's driver, which can also write a tick without waiting for it to be processed
    (where a fault goes in), waits longer for a recovering pipeline, and measures lag."""

    async def open_tick(self, event: dict[str, Any]) -> None:
        await self.settle()
        value = json.dumps(event, separators=(",", ":")).encode()
        for partition in range(CLOCK.partitions):
            await self.producer.send(CLOCK.name, value, key=b"*", partition=partition)
        await self.producer.flush()

    async def settle(self, timeout: float = 300.0) -> None:  # noqa: ASYNC109  (a polling deadline)
        await super().settle(timeout)

    async def lag(self, groups: Iterable[str]) -> int:
        """Records the groups have not committed yet, over the catalog topics they read."""
        behind = 0
        for group in groups:
            tps = [TopicPartition(t.name, p) for t in CATALOG if group in t.readers
                   for p in range(t.partitions)]  # fmt: skip
            ends = await self.offsets.end_offsets(tps)
            done = await self.admin.list_consumer_group_offsets(group)
            behind += sum(max(end - (done[tp].offset if tp in done else 0), 0)
                          for tp, end in ends.items())  # fmt: skip
        return behind


@dataclass(frozen=True)
class Crash:
    """A service process that exited without being told to."""

    service: str
    code: int
    at: float


@dataclass
class Run:
    """What one run holds: the processes, the test servers, the input, and what happened."""

    layout: localkafka.Layout
    fleet: Fleet
    pc: FaultyPartnerCenter
    smtp: FaultySmtp
    events: list[dict[str, Any]]
    rng: random.Random
    driver: Feeder | None = None
    second: Fleet | None = None  # the second collections worker, while it runs
    pos: int = 0  # the next event to send
    ticks: int = 0
    injections: list[Injection] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    paused: bool = False  # while the broker is down, exited services wait

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    @property
    def feeder(self) -> Feeder:
        assert self.driver is not None
        return self.driver

    def services(self) -> list[Service]:
        return [*self.fleet.services, *(self.second.services if self.second else [])]

    async def open_driver(self) -> None:
        self.driver = Feeder(self.bootstrap)
        await self.driver.__aenter__()

    async def close_driver(self) -> None:
        if self.driver is not None:
            await self.driver.__aexit__()
            self.driver = None


async def all_ready(run: Run) -> bool:
    services = run.services()
    if {s.name for s in services} < set(SERVICES) or any(
        s.process is None or s.process.poll() is not None for s in services
    ):
        return False
    return all(await asyncio.gather(*(asyncio.to_thread(s.ready) for s in services)))


async def recover(run: Run, since: float) -> float | None:
    """Seconds from `since` until every service answers ready and no group lags; None when
    that takes longer than RECOVER_LIMIT."""
    while time.monotonic() - since < RECOVER_LIMIT:
        with contextlib.suppress(KafkaError, OSError):
            if await all_ready(run) and await run.feeder.lag(SERVICES) == 0:
                return time.monotonic() - since
        await asyncio.sleep(0.25)
    return None


async def supervise(run: Run) -> None:
    """What Kubernetes does for a container whose process exits: note it, start it again."""
    while True:
        await asyncio.sleep(0.5)
        fleets = [] if run.paused else [f for f in (run.fleet, run.second) if f is not None]
        for fleet in fleets:
            for service in list(fleet.services):
                code = service.process.poll() if service.process else None
                if code is None:
                    continue
                run.crashes.append(Crash(service.name, code, time.monotonic()))
                say(f"    ! {service.name} exited (code {code}); starting it again")
                fleet.services.remove(service)
                await asyncio.sleep(RESTART_DELAY)
                fleet.start((service.name,))


# ---- the fault actions -----------------------------------------------------------------


Trigger = Callable[["Run"], Callable[[], bool]]  # at injection: the moment to strike


def soon(run: Run) -> Callable[[], bool]:
    """A random moment within a second: the pipeline is working on the tick."""
    at = time.monotonic() + run.rng.uniform(0.0, 1.0)
    return lambda: time.monotonic() >= at


def next_patch(run: Run) -> Callable[[], bool]:
    """Partner Center has just applied a PATCH: access-control is about to store it."""
    done = len(run.pc.patch_log)
    return lambda: len(run.pc.patch_log) > done


def next_mail(run: Run) -> Callable[[], bool]:
    """SMTP has just accepted an e-mail: notifications is about to store the outcome."""
    done = len(run.smtp.arrivals)
    return lambda: len(run.smtp.arrivals) > done


async def strike(run: Run, trigger: Trigger, limit: float = 20.0) -> float:
    """Wait for the trigger (at most `limit` seconds); the seconds since the tick."""
    ready = trigger(run)
    began = time.monotonic()
    while True:
        waited = time.monotonic() - began
        if ready() or waited > limit:
            return waited
        await asyncio.sleep(0.01)


async def kill(name: str, trigger: Trigger, run: Run, injection: Injection) -> None:
    """SIGKILL one service at the trigger; start it again after a moment."""
    waited = await strike(run, trigger, limit := 20.0)
    run.fleet.kill(name)
    pause = run.rng.uniform(1.0, 3.0)
    await asyncio.sleep(pause)
    run.fleet.start((name,))
    late = " (its trigger never came)" if waited > limit else ""
    injection.note = f"killed {waited:.2f} s after the tick{late}, started {pause:.1f} s later"


async def bounce_broker(run: Run, injection: Injection) -> None:
    """Stop the broker (SIGTERM) and start it again on the same data dir."""
    await run.close_driver()
    run.paused = True
    try:
        await asyncio.to_thread(localkafka.down, run.layout)
        stopped = time.monotonic()
        await asyncio.sleep(run.rng.uniform(2.0, 5.0))
        await asyncio.to_thread(localkafka.up, run.layout)
        injection.note = f"broker away {time.monotonic() - stopped:.1f} s (its start included)"
    finally:
        run.paused = False
        await run.open_driver()


async def rebalance(run: Run, injection: Injection) -> None:
    """A second collections worker (its own data dir) joins, stays a few days, and leaves;
    recovery is the longer of the two rebalances."""
    fleet = run.fleet
    run.second = Fleet(fleet.root / "second", fleet.bootstrap, fleet.policy, fleet.extra_env)
    run.second.start(("collections",))
    joined = await recover(run, injection.began)
    await drive(run, ticks=REBALANCE_TICKS)
    second, run.second = run.second, None
    left_at = time.monotonic()
    await asyncio.to_thread(second.stop)
    left = await recover(run, left_at)
    injection.measured = True
    injection.recovered = None if joined is None or left is None else max(joined, left)
    injection.note = f"join {joined or 0:.1f} s, leave {left or 0:.1f} s"


async def fresh_collections(run: Run, injection: Injection) -> None:
    """SIGKILL collections, delete its data dir (a lost node), start it: state from changelog."""
    await strike(run, soon)
    run.fleet.kill("collections")
    shutil.rmtree(run.fleet.root / "collections", ignore_errors=True)
    run.fleet.start(("collections",))
    injection.note = "data dir deleted"


async def provider_window(mode: str, seconds: float, run: Run, injection: Injection) -> None:
    run.pc.window = Window(mode, seconds)
    run.pc.window.open()
    await asyncio.sleep(seconds)
    injection.hits = run.pc.window.hits


async def smtp_window(seconds: float, run: Run, injection: Injection) -> None:
    run.smtp.window = Window("451", seconds)
    run.smtp.window.open()
    await asyncio.sleep(seconds)
    injection.hits = run.smtp.window.hits


FAULTS: tuple[Fault, ...] = (
    Fault("kill-invoicing", "SIGKILL invoicing within 1 s of a tick, back in 1-3 s",
          partial(kill, "invoicing", soon), 2),
    Fault("kill-collections", "SIGKILL collections within 1 s of a tick, back in 1-3 s",
          partial(kill, "collections", soon), 2),
    Fault("kill-access-control", "SIGKILL access-control as a PATCH succeeds, back in 1-3 s",
          partial(kill, "access-control", next_patch), 2, "access"),
    Fault("kill-notifications", "SIGKILL notifications as SMTP accepts a mail, back in 1-3 s",
          partial(kill, "notifications", next_mail), 2, "notice"),
    Fault("broker-restart", "broker stopped (SIGTERM), started again 2-5 s later, same data",
          bounce_broker, 2),
    Fault("rebalance", f"a second collections worker joins, stays {REBALANCE_TICKS} days, leaves",
          rebalance, 1, span=REBALANCE_TICKS),
    Fault("fresh-collections", "collections SIGKILLed, its data dir deleted, restarted",
          fresh_collections, 1),
    Fault("pc-429", "Partner Center answers 429 (Retry-After 1 s) for 6 s",
          partial(provider_window, "429", 6.0), 1, "access"),
    Fault("pc-500", "Partner Center answers 500 for 4 s",
          partial(provider_window, "500", 4.0), 1, "access"),
    Fault("pc-slow", "Partner Center answers 1 s or 3 s late (timeout 2 s) for 8 s",
          partial(provider_window, "slow", 8.0), 1, "access"),
    Fault("smtp-4xx", "SMTP answers 451 to RCPT for 4 s",
          partial(smtp_window, 4.0), 2, "notice"),
)  # fmt: skip


# ---- the plan and the drive ----------------------------------------------------------------


def plan(faults: list[Fault], expected: Expected, rng: random.Random) -> list[tuple[int, Fault]]:
    """Each injection at a tick of its own, drawn with `rng`: first the faults that want a tick
    where replay decides access commands or notices, then the rest; never the first day."""
    ticks, kinds = expected.ticks, expected.tick_kinds
    free = set(ticks[1:])
    chosen: list[tuple[int, Fault]] = []
    for fault in sorted(faults, key=lambda f: (("access", "notice", "any").index(f.when), -f.span)):
        for _ in range(fault.times):
            room = [t for n, t in enumerate(ticks) if free >= set(ticks[n : n + fault.span + 1])
                    and n + fault.span < len(ticks)]  # fmt: skip
            fits = [t for t in room if fault.when in {"any", *kinds.get(t, ())}]
            # The few ticks with access commands are kept for the faults that need them.
            spare = [t for t in fits if fault.when == "access" or "access" not in kinds.get(t, ())]
            pool = spare or fits or room
            if pool:
                tick = rng.choice(pool)
                n = ticks.index(tick)
                free -= set(ticks[n : n + fault.span + 1])
                chosen.append((tick, fault))
    return sorted(chosen, key=lambda c: c[0])


async def drive(
    run: Run, ticks: int | None = None, schedule: list[tuple[int, Fault]] | None = None
) -> None:
    """Send the history from `run.pos`, to the end or `ticks` ticks further, injecting the
    scheduled faults at their ticks (one whose tick has passed goes in at the next tick)."""
    until = None if ticks is None else run.ticks + ticks
    while run.pos < len(run.events) and (until is None or run.ticks < until):
        event = run.events[run.pos]
        if event["event_type"] != "clock.tick":
            await run.feeder.send(event)
            run.pos += 1
            continue
        if schedule and schedule[0][0] <= run.pos:
            await inject(run, schedule.pop(0)[1])
        else:
            await run.feeder.send(event)
            run.pos += 1
        run.ticks += 1
        if run.ticks % 10 == 0:
            say(f"  day {run.ticks:>3}: {run.pos:,} of {len(run.events):,} events sent")


async def inject(run: Run, fault: Fault) -> None:
    """Everything before caught up, the tick written, the fault, the wait until recovered."""
    async with Feeder(run.bootstrap, SERVICES) as everyone:
        await everyone.settle()
    tick = run.events[run.pos]
    await run.feeder.open_tick(tick)
    injection = Injection(fault, run.pos, str(tick["occurred_at"])[:10], time.monotonic())
    run.pos += 1
    run.injections.append(injection)
    await fault.act(run, injection)
    if not injection.measured:
        injection.recovered = await recover(run, injection.began)
    took = injection.recovered
    parts = [f"recovered in {took:.1f} s" if took is not None else "NOT RECOVERED"]
    parts += [injection.note] if injection.note else []
    parts += [f"{injection.hits} answers spoiled"] if injection.hits is not None else []
    say(f"  {injection.day} {fault.name}: {'; '.join(parts)}")


# ---- setting up: Partner Center's subscriptions, the mapping, the services' settings -------


def guid(name: str) -> str:
    return str(uuid.uuid5(GUIDS, name))


def owners(events: list[dict[str, Any]]) -> dict[str, str]:
    """subscription id -> customer id, from the customers' profiles and invoices."""
    found: dict[str, str] = {}
    for event in events:
        for sub in event["data"].get("subscription_ids", []):
            found[sub] = event["customer_id"]
    return found


def configure(workdir: Path, owner: dict[str, str]) -> tuple[Path, Path]:
    """The client-secret file and the partner's mapping file, as a partner would mount them."""
    workdir.mkdir(parents=True)
    secret = workdir / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    mapping = workdir / "partner-center.yaml"
    customers = sorted(set(owner.values()))
    mapping.write_text(
        "customers:\n" + "".join(f"  {c}: {guid(c)}\n" for c in customers)
        + "subscriptions:\n" + "".join(f"  {s}: {guid(s)}\n" for s in sorted(owner)),
        encoding="utf-8",
    )  # fmt: skip
    return secret, mapping


def environment(run_dir: Path, pc: PartnerCenterServer, smtp: SmtpTestServer) -> dict[str, str]:
    secret, mapping = run_dir / "client-secret", run_dir / "partner-center.yaml"
    ac, nt = "BILLSTATE_ACCESS_CONTROL_", "BILLSTATE_NOTIFICATIONS_"
    return {
        "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
        "BILLSTATE_COLLECTIONS_COMMIT_INTERVAL": "0.1",
        ac + "PROVIDER": "partner_center",
        ac + "PARTNER_CENTER_BASE_URL": pc.base_url,
        ac + "PARTNER_CENTER_TOKEN_URL": pc.token_url,
        ac + "PARTNER_CENTER_CLIENT_ID": pc.client_id,
        ac + "PARTNER_CENTER_CLIENT_SECRET_FILE": str(secret),
        ac + "PARTNER_CENTER_MAPPING_FILE": str(mapping),
        ac + "PARTNER_CENTER_TIMEOUT": "2",
        ac + "RECONCILE_INTERVAL": "5",
        # The faults are about delivery, not the guards: every suspension must be applied
        # (a fresh broker's empty payments topic would park them all as a silent feed).
        ac + "BRAKE_CAP": "0",
        ac + "PAYMENT_FEED_MAX_AGE": "0",
        nt + "CHANNEL": "email",
        nt + "SMTP_HOST": smtp.host,
        nt + "SMTP_PORT": str(smtp.port),
        nt + "SMTP_USERNAME": smtp.username,
        nt + "SMTP_PASSWORD": SMTP_PASSWORD,
        nt + "SMTP_FROM_ADDRESS": FROM,
        nt + "SMTP_CA_FILE": str(smtp.ca_file),
    }


# ---- afterwards: what each fault cost ------------------------------------------------------


@dataclass
class Row:
    injected: int = 0
    hits: int | None = None
    lost: Counter[str] = field(default_factory=Counter)  # stage, access, notice
    pc_doubled: int = 0
    pc_missed: int = 0
    mail_doubled: int = 0
    mail_missing: int = 0  # no e-mail and no notice.failed: lost
    mail_failed: int = 0  # no e-mail, notice.failed and a dead letter: waiting for a re-drive
    exits: int = 0
    recovery: list[float | None] = field(default_factory=list)


NO_FAULT = "(before any fault)"


@dataclass
class Outcome:
    """The table's rows by fault name, and the totals that have no single cause."""

    rows: dict[str, Row]
    injections: list[Injection]
    unexpected: list[str] = field(default_factory=list)  # decisions replay did not make
    resent: int = 0  # decisions on their topic more than once (harmless: same ids)
    pc_final_wrong: int = 0
    patches: int = 0  # successful PATCHes
    accepted: int = 0  # e-mails

    def by_pos(self, injections: list[Injection], pos: int) -> Row:
        """The row of the last fault injected at or before the input that caused it."""
        name = next((i.fault.name for i in reversed(injections) if i.pos <= pos), NO_FAULT)
        return self.rows.setdefault(name, Row())

    def by_time(self, injections: list[Injection], at: float) -> Row:
        """The row of the last fault injected before `at` (monotonic)."""
        name = next((i.fault.name for i in reversed(injections) if i.began <= at), NO_FAULT)
        return self.rows.setdefault(name, Row())


def provider_status(run: Run, owner: dict[str, str], sub: str) -> str:
    return str(run.pc.subscription(guid(owner[sub]), guid(sub))["status"])


def provider_behind(run: Run, expected: Expected, owner: dict[str, str]) -> int:
    return sum(
        provider_status(run, owner, sub) != steps[-1][0] for sub, steps in expected.desired.items()
    )


async def finish(run: Run, expected: Expected, owner: dict[str, str]) -> None:
    """All groups caught up; Partner Center at replay's final desired states (the reconciler
    repairs what failed), or 90 s passed."""
    async with Feeder(run.bootstrap, SERVICES) as everyone:
        await everyone.settle()
    deadline = time.monotonic() + 90
    while True:
        if not provider_behind(run, expected, owner) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    async with Feeder(run.bootstrap, SERVICES) as everyone:
        await everyone.settle()


def count_decisions(out: Outcome, run: Run, expected: Expected, topics: dict[str, Any]) -> None:
    seen = Counter(e["event_id"] for t in (EVENTS, ACCESS_COMMANDS, NOTICE_REQUESTS)
                   for e in topics[t.name])  # fmt: skip
    out.resent = sum(n - 1 for n in seen.values())
    out.unexpected = sorted(set(seen) - set(expected.decisions))
    for event_id, decision in expected.decisions.items():
        if event_id not in seen:
            out.by_pos(run.injections, decision.cause).lost[decision.kind] += 1


def count_provider(out: Outcome, run: Run, expected: Expected, owner: dict[str, str]) -> None:
    """Per subscription: PATCHes that set the status it already had (doubled), and desired
    changes that never landed (missed: fewer changes than replay's, or the wrong end state)."""
    by_sub: dict[tuple[str, str], list[Patch]] = defaultdict(list)
    for patch in run.pc.patch_log:
        if patch.status == 200:
            by_sub[patch.tenant, patch.subscription].append(patch)
    for sub, steps in expected.desired.items():
        done = by_sub.get((guid(owner[sub]), guid(sub)), [])
        for patch in done:
            if patch.target == patch.before:
                out.by_time(run.injections, patch.at).pc_doubled += 1
        changed = sum(p.target != p.before for p in done)
        wrong = provider_status(run, owner, sub) != steps[-1][0]
        out.pc_final_wrong += wrong
        missed = max(expected.changes(sub) - changed, int(wrong))
        out.by_pos(run.injections, steps[-1][1]).pc_missed += missed


def count_mail(out: Outcome, run: Run, expected: Expected, topics: dict[str, Any]) -> None:
    seen: Counter[str] = Counter()
    for at, mid in sorted(run.smtp.arrivals):
        seen[mid] += 1
        if seen[mid] > 1:
            out.by_time(run.injections, at).mail_doubled += 1
    outcome = {d["data"]["notice_id"]: d["event_type"] for d in topics[NOTICE_DELIVERIES.name]}
    for notice_id, decision in expected.notices().items():
        if message_id(notice_id, DOMAIN) in seen:
            continue
        row = out.by_pos(run.injections, decision.cause)
        if outcome.get(notice_id) == "notice.failed":
            row.mail_failed += 1
        else:
            row.mail_missing += 1


def count_faults(out: Outcome, run: Run) -> None:
    for injection in run.injections:
        row = out.rows.setdefault(injection.fault.name, Row())
        row.injected += 1
        row.recovery.append(injection.recovered)
        if injection.hits is not None:
            row.hits = (row.hits or 0) + injection.hits
    for crash in run.crashes:
        out.by_time(run.injections, crash.at).exits += 1


async def measure(run: Run, expected: Expected, owner: dict[str, str]) -> Outcome:
    names = [EVENTS.name, ACCESS_COMMANDS.name, NOTICE_REQUESTS.name, NOTICE_DELIVERIES.name]
    topics = await read_all(run.bootstrap, names)
    out = Outcome({}, run.injections)
    count_faults(out, run)
    count_decisions(out, run, expected, topics)
    count_provider(out, run, expected, owner)
    count_mail(out, run, expected, topics)
    out.accepted = len(run.smtp.arrivals)
    out.patches = sum(p.status == 200 for p in run.pc.patch_log)
    return out


# ---- the table ------------------------------------------------------------------------------

HEADER = (
    f"{'fault':<20} {'n':>2} {'hits':>5} │ {'lost: stage':>11} {'access':>6} {'notice':>6} │"
    f" {'PC 2x':>5} {'PC miss':>7} │ {'mail 2x':>7} {'mail lost':>9} {'failed':>6} │"
    f" {'exits':>5} {'recover s':>9}"
)


def line(name: str, row: Row) -> str:
    worst = "-" if not row.recovery else (
        "NONE" if None in row.recovery else f"{max(r for r in row.recovery if r is not None):.1f}"
    )  # fmt: skip
    hits = "-" if row.hits is None else str(row.hits)
    return (
        f"{name:<20} {row.injected:>2} {hits:>5} │ {row.lost['stage']:>11}"
        f" {row.lost['access']:>6} {row.lost['notice']:>6} │ {row.pc_doubled:>5}"
        f" {row.pc_missed:>7} │ {row.mail_doubled:>7} {row.mail_missing:>9}"
        f" {row.mail_failed:>6} │ {row.exits:>5} {worst:>9}"
    )


def total(rows: Iterable[Row]) -> Row:
    sum_row = Row()
    for row in rows:
        sum_row.injected += row.injected
        sum_row.lost.update(row.lost)
        sum_row.pc_doubled += row.pc_doubled
        sum_row.pc_missed += row.pc_missed
        sum_row.mail_doubled += row.mail_doubled
        sum_row.mail_missing += row.mail_missing
        sum_row.mail_failed += row.mail_failed
        sum_row.exits += row.exits
        sum_row.recovery.extend(row.recovery)
    return sum_row


def report(out: Outcome, expected: Expected) -> list[str]:
    """The table, then what it was measured on."""
    order = [f.name for f in FAULTS if f.name in out.rows]
    order += [n for n in out.rows if n not in order]
    all_rows = total(out.rows.values())
    lines = [HEADER, "─" * len(HEADER)]
    lines += [line(name, out.rows[name]) for name in order]
    lines += ["─" * len(HEADER), line("total", all_rows)]
    kinds = Counter(d.kind for d in expected.decisions.values())
    lines += [
        "",
        (
            f"replay decided {len(expected.decisions)} outputs ({kinds['stage']} stage changes,"
            f" {kinds['access']} access commands, {kinds['notice']} notices) for"
            f" {len(expected.desired)} subscriptions; the services wrote"
            f" {len(out.unexpected)} it did not decide and {out.resent} again (same ids)"
        ),
        (
            f"Partner Center: {out.patches} successful PATCHes, {out.pc_final_wrong}"
            f" subscriptions not at replay's final state; SMTP accepted {out.accepted} e-mails"
        ),
    ]
    idle = sorted({i.fault.name for i in out.injections if i.hits == 0 or "never came" in i.note})
    if idle:
        lines.append(f"not exercised (nothing reached the fault): {', '.join(idle)}")
    return lines


def failures(out: Outcome) -> list[str]:
    """What breaks the bar: anything lost, a doubled provider effect, a decision replay did
    not make, a fault the services did not recover from."""
    all_rows = total(out.rows.values())
    found = []
    if sum(all_rows.lost.values()):
        found.append(f"{sum(all_rows.lost.values())} decisions lost")
    if all_rows.pc_missed:
        found.append(f"{all_rows.pc_missed} Partner Center changes missed")
    if all_rows.pc_doubled:
        found.append(f"{all_rows.pc_doubled} Partner Center changes doubled")
    if all_rows.mail_missing:
        found.append(f"{all_rows.mail_missing} notices without an e-mail or a notice.failed")
    if out.unexpected:
        found.append(f"{len(out.unexpected)} decisions replay did not make: {out.unexpected[:3]}")
    if None in all_rows.recovery:
        found.append(
            f"{all_rows.recovery.count(None)} faults not recovered in {RECOVER_LIMIT:.0f} s"
        )
    return found


LEGEND = """\
n: injections · hits: answers a Partner Center or SMTP window spoiled · lost: replay's decisions
that never reached their topic · PC 2x: successful PATCHes that set the status the subscription
already had · PC miss: desired changes that never landed · mail 2x: e-mails beyond the first per
notice (Message-ID) · mail lost: notices with neither an e-mail nor a notice.failed · failed:
notices given up on (notice.failed, dead letter: a re-drive sends them) · exits: service
processes that exited unasked and were started again · recover s: the slowest injection, from
the fault to every service ready and every consumer group caught up.
Losses count under the last fault injected at or before the input that caused them; doubles and
exits under the last fault injected before they happened."""


# ---- the whole run ----------------------------------------------------------------------


async def suite(run: Run, expected: Expected, schedule: list[tuple[int, Fault]]) -> Outcome:
    owner = owners(run.events)
    applied = await apply_topics(run.bootstrap)
    say(f"topics: {len(applied.created)} created")
    for sub, customer in owner.items():
        run.pc.add_subscription(guid(customer), guid(sub), autoRenewEnabled=True)
    started = time.monotonic()
    run.fleet.start(SERVICES)
    await asyncio.to_thread(run.fleet.wait_ready, 300.0)
    say(f"services ready after {time.monotonic() - started:.0f} s (logs in {run.fleet.root}/)")
    await run.open_driver()
    watcher = asyncio.create_task(supervise(run))
    try:
        await drive(run, schedule=schedule)
        say("history sent; waiting for every group and for Partner Center's final states")
        await finish(run, expected, owner)
        return await measure(run, expected, owner)
    finally:
        watcher.cancel()
        await run.close_driver()


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2026, help="history and fault points")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--days", type=int, default=75, help="suspensions start in week 8")
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--policy", type=Path, default=POLICY)
    parser.add_argument(
        "--faults",
        default=",".join(f.name for f in FAULTS),
        help="comma-separated NAME or NAME=TIMES (default: all, at their usual times)",
    )
    parser.add_argument("--workdir", type=Path, help="default: <cache dir>/faults")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    return parser.parse_args(argv)


def chosen(text: str) -> list[Fault]:
    faults = {f.name: f for f in FAULTS}
    picked = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, times = item.partition("=")
        if name not in faults:
            raise SystemExit(f"unknown fault {name!r}; --list shows them")
        picked.append(replace(faults[name], times=int(times or faults[name].times)))
    return picked


def prepare(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Expected]:
    policy = load_policy(args.policy)
    events = list(history(args.customers, args.days, args.seed, args.start, policy.timezone))
    return events, Expected.of(events, Replay(policy))


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.list:
        for fault in FAULTS:
            say(f"{fault.name:<20} x{fault.times}  {fault.what}")
        return 0
    began = time.monotonic()
    faults = chosen(args.faults)
    rng = random.Random(args.seed)
    events, expected = prepare(args)
    schedule = plan(faults, expected, rng)
    say(
        f"fault suite: {args.customers} customers, {args.days} days from {args.start},"
        f" seed {args.seed}, {len(events):,} inbound events, {len(schedule)} injections"
    )
    for pos, fault in schedule:
        say(f"  {str(events[pos]['occurred_at'])[:10]}  {fault.name:<20} {fault.what}")
    layout = localkafka.Layout.from_env()
    workdir = (args.workdir or layout.root.parent / "faults").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    localkafka.clean(layout)
    say(f"broker: local Kafka at {localkafka.up(layout)} (cleaned; stopped at the end)")
    try:
        out = run_suite(
            args,
            layout,
            workdir=workdir,
            events=events,
            expected=expected,
            schedule=schedule,
            rng=rng,
        )
    finally:
        localkafka.down(layout)
    return verdict(out, expected, time.monotonic() - began)


def run_suite(
    args: argparse.Namespace,
    layout: localkafka.Layout,
    *,
    workdir: Path,
    events: list[dict[str, Any]],
    expected: Expected,
    schedule: list[tuple[int, Fault]],
    rng: random.Random,
) -> Outcome:
    configure(workdir, owners(events))
    with (
        FaultyPartnerCenter.in_thread(client_secret=CLIENT_SECRET) as pc,
        FaultySmtp(password=SMTP_PASSWORD) as smtp,
    ):
        fleet = Fleet(workdir, layout.bootstrap, args.policy.resolve(),
                      extra_env=environment(workdir, pc, smtp))  # fmt: skip
        run = Run(layout, fleet, pc, smtp, events, rng)
        try:
            return asyncio.run(suite(run, expected, schedule))
        finally:
            fleet.stop()
            if run.second is not None:
                run.second.stop()


def verdict(out: Outcome, expected: Expected, seconds: float) -> int:
    say()
    for text in report(out, expected):
        say(text)
    say()
    say(LEGEND)
    say()
    found = failures(out)
    if found:
        say("BAR NOT MET: " + "; ".join(found))
    else:
        say("bar met: nothing lost, no provider change doubled, every fault recovered")
    say(f"fault suite took {seconds:.0f} s")
    return 1 if found else 0


if __name__ == "__main__":
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the suite stops and starts its own broker
    sys.exit(main())
