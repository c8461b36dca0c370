"""The console's pages against issue 13's targets, over real HTTP (`make bench-console`).

Fills the console's real `Store` through `Store.apply` with real contract events: one
customer with two years of history (monthly invoices and payments, a collections state every
day, the stages, notices and suspensions a late payer goes through) and a crowd of 100,000
customers. Serves `web.build_app` on a loopback port with a viewer token and times GETs of the
customer page, the customers list and the overview (a warm-up, then N runs each), on SQLite by
default and on PostgreSQL with `--postgres URL` or `--with-local-postgres`. Prints p50, p95 and
max per request against its target (p95 is what is judged) and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import math
import os
import pstats
import random
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import aiohttp
import psycopg
from aiohttp import web

from billstate_console.domain.auth import AuthConfig
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts import (
    AccessFailed,
    AccessFailedData,
    AccessRestored,
    AccessRestoredData,
    AccessSuspended,
    AccessSuspendedData,
    CollectionsState,
    CollectionsStateData,
    CustomerUpserted,
    CustomerUpsertedData,
    Event,
    InvoiceIssued,
    InvoiceIssuedData,
    Money,
    NextStage,
    NoticeDelivered,
    NoticeDeliveredData,
    NoticeRequested,
    NoticeRequestedData,
    PaymentReceived,
    PaymentReceivedData,
    PolicyRef,
    StageEntered,
    StageEnteredData,
    Why,
)
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

CUSTOMER_MS = 200.0  # the issue: a customer page with two years of history
OVERVIEW_MS = 500.0  # the issue: the overview with 100,000 customers
LIST_MS = 500.0  # ours: the list pages read the same table as the overview
TOKEN = "bench-console-viewer"  # noqa: S105  (a loopback server that lives for the bench)
LONG_ID = "bench-long"
START = date(2024, 12, 1)
MONTHS = 24
POLICY = PolicyRef(name="standard", version=3)
SUBSCRIPTIONS = ["SUB-long-1", "SUB-long-2"]
# policies/standard.yaml: days past due that enter a stage; suspension also waits 7 days in
# final_notice, which these thresholds already give.
OVERDUE_AT, FINAL_AT, SUSPEND_AT = 1, 14, 21
CROWD_STAGES = ("current", "overdue", "final_notice", "suspended")
CROWD_WEIGHTS = (70, 15, 10, 5)
CURRENCIES = ("EUR", "USD", "GBP", "TWD")
FAILED_SHARE = 0.1  # of the crowd's suspensions: refused by Partner Center, an open case


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, clock(hour, minute), tzinfo=UTC)


# ---- the data -----------------------------------------------------------------------------


def stage_for(days_past_due: int) -> str:
    if days_past_due >= SUSPEND_AT:
        return "suspended"
    if days_past_due >= FINAL_AT:
        return "final_notice"
    if days_past_due >= OVERDUE_AT:
        return "overdue"
    return "current"


def _profile(cid: str, day: date, n: int, tags: list[str], subs: list[str]) -> CustomerUpserted:
    return CustomerUpserted(
        event_id=f"{cid}-upserted-{n}",
        event_type="customer.upserted",
        occurred_at=at(day, 0, 30),
        customer_id=cid,
        data=CustomerUpsertedData(
            name=f"Bench {cid.title()} Ltd",
            locale="en",
            billing_email=f"ap@{cid}.example",
            partner_contact_email="am@partner.example",
            tags=tags,
            subscription_ids=subs,
        ),
    )


def _why(stage: str, dpd: int, overdue: list[Money], invoice: str, due: date) -> Why:
    amounts = ", ".join(f"{m.currency} {m.amount}" for m in overdue)
    return Why(
        rule="rule 6: forward on time",
        text=f"{amounts} overdue for {dpd} days: {stage}",
        trigger_event_id=None,
        anchor_invoice_id=invoice,
        anchor_due_on=due,
        days_past_due=dpd,
        overdue=overdue,
        policy=POLICY,
    )


def _notice(cid: str, day: date, stage: str, audience: str, n: int) -> list[Event]:
    notice_id = f"N-{cid}-{day}-{stage}-{audience}"
    return [
        NoticeRequested(
            event_id=f"{notice_id}-requested",
            event_type="notice.requested",
            occurred_at=at(day, 1, 1 + n),
            customer_id=cid,
            data=NoticeRequestedData(
                notice_id=notice_id,
                kind=stage,
                audience=audience,  # type: ignore[arg-type]
                locale="en",
                facts={"stage": stage},
            ),
        ),
        NoticeDelivered(
            event_id=f"{notice_id}-delivered",
            event_type="notice.delivered",
            occurred_at=at(day, 1, 20 + n),
            customer_id=cid,
            data=NoticeDeliveredData(notice_id=notice_id, channel="email", attempts=1),
        ),
    ]


def _access(cid: str, day: date, *, suspend: bool, subs: list[str] = SUBSCRIPTIONS) -> list[Event]:
    command = f"CMD-{cid}-{day}"
    made: list[Event] = []
    for sub in subs:
        if suspend:
            made.append(
                AccessSuspended(
                    event_id=f"{command}-{sub}-suspended",
                    event_type="access.suspended",
                    occurred_at=at(day, 1, 40),
                    customer_id=cid,
                    data=AccessSuspendedData(
                        command_id=command, subscription_id=sub, provider="pc"
                    ),
                )
            )
        else:
            made.append(
                AccessRestored(
                    event_id=f"{command}-{sub}-restored",
                    event_type="access.restored",
                    occurred_at=at(day, 2, 40),
                    customer_id=cid,
                    data=AccessRestoredData(command_id=command, subscription_id=sub, provider="pc"),
                )
            )
    return made


@dataclass
class _Open:
    invoice_id: str
    amount: Decimal
    issued_on: date
    due_on: date
    paid_on: date


def _bills(cid: str, months: int, rng: random.Random) -> list[_Open]:
    """An invoice on the 1st of each month, due 30 days later, paid in full on a drawn day:
    mostly before it is due, sometimes days late, now and then late enough to be suspended."""
    bills = []
    issued = START
    for _ in range(months):
        due = issued + timedelta(days=30)
        draw = rng.random()
        if draw < 0.6:  # on time
            paid = due - timedelta(days=rng.randint(1, 20))
        elif draw < 0.85:  # late, not suspended
            paid = due + timedelta(days=rng.randint(1, SUSPEND_AT - 1))
        else:  # suspended for a while
            paid = due + timedelta(days=rng.randint(SUSPEND_AT, SUSPEND_AT + 20))
        amount = Decimal(rng.randint(80_000, 160_000)) / 100
        bills.append(_Open(f"INV-{cid}-{issued:%Y%m}", amount, issued, due, paid))
        issued = date(issued.year + issued.month // 12, issued.month % 12 + 1, 1)
    return bills


def _day(cid: str, day: date, bills: list[_Open], stage: str) -> tuple[list[Event], str]:
    """What collections and the actuators write about the customer at `day`'s close: on a
    change of stage its entry, the access changes and the notices; then the state."""
    late = [b for b in bills if b.due_on < day < b.paid_on]
    dpd = (day - min(b.due_on for b in late)).days if late else 0
    total = sum((b.amount for b in late), Decimal(0))
    overdue = [Money(amount=total, currency="EUR")] if late else []
    new = stage_for(dpd)
    events: list[Event] = []
    if new != stage:
        anchor = min(late, key=lambda b: b.due_on) if late else None
        events.append(
            _entered(cid, day, stage=new, previous=stage, dpd=dpd, overdue=overdue, anchor=anchor)
        )
        if new == "suspended" or stage == "suspended":
            events.extend(_access(cid, day, suspend=new == "suspended"))
        if new != "current":
            events.extend(_notice(cid, day, new, "customer", 0))
        if new not in {"current", "overdue"}:
            events.extend(_notice(cid, day, new, "partner", 1))
    events.append(_state(cid, day, new, dpd, overdue))
    return events, new


def long_history(cid: str = LONG_ID, *, months: int = MONTHS, seed: int = 13) -> list[Event]:
    """A customer's `months` of history from START, in time order.

    Monthly invoices and their payments (`_bills`); every day a `collections.state` (stage,
    overdue, the next stage); on each change of stage a `collections.stage_entered` with its
    why and the notices the policy sends (delivered), `access.suspended` for both
    subscriptions on suspension and `access.restored` on payment; a `customer.upserted`
    every six months.
    """
    bills = _bills(cid, months, random.Random(seed))
    end = START + timedelta(days=round(months * 365.25 / 12))
    events: list[Event] = []
    stage, upserts, day = "current", 0, START
    while day < end:
        if (day.month - START.month) % 6 == 0 and day.day == 1:
            upserts += 1
            tags = ["enterprise"] if upserts % 2 else ["enterprise", "watch"]
            events.append(_profile(cid, day, upserts, tags, SUBSCRIPTIONS))
        events.extend(_invoice(cid, b) for b in bills if b.issued_on == day)
        events.extend(_payment(cid, b) for b in bills if b.paid_on == day)
        made, stage = _day(cid, day, bills, stage)
        events.extend(made)
        day += timedelta(days=1)
    events.sort(key=lambda e: e.occurred_at)  # a day's notices and deliveries interleave
    return events


def _invoice(cid: str, bill: _Open) -> InvoiceIssued:
    issued_on = bill.issued_on
    return InvoiceIssued(
        event_id=f"{bill.invoice_id}-issued",
        event_type="invoice.issued",
        occurred_at=at(issued_on, 0, 45),
        customer_id=cid,
        data=InvoiceIssuedData(
            invoice_id=bill.invoice_id,
            currency="EUR",
            amount=bill.amount,
            issued_on=issued_on,
            due_on=bill.due_on,
            subscription_ids=SUBSCRIPTIONS,
        ),
    )


def _payment(cid: str, bill: _Open) -> PaymentReceived:
    return PaymentReceived(
        event_id=f"PAY-{bill.invoice_id}-received",
        event_type="payment.received",
        occurred_at=at(bill.paid_on, 0, 50),
        customer_id=cid,
        data=PaymentReceivedData(
            payment_id=f"PAY-{bill.invoice_id}",
            currency="EUR",
            amount=bill.amount,
            invoice_id=bill.invoice_id,
        ),
    )


def _entered(
    cid: str,
    day: date,
    *,
    stage: str,
    previous: str,
    dpd: int,
    overdue: list[Money],
    anchor: _Open | None,
) -> StageEntered:
    why = (
        _why(stage, dpd, overdue, anchor.invoice_id, anchor.due_on)
        if anchor is not None
        else Why(
            rule="rule 7: backward at once",
            text="paid in full: current",
            trigger_event_id=None,
            anchor_invoice_id=None,
            anchor_due_on=None,
            days_past_due=None,
            overdue=[],
            policy=POLICY,
        )
    )
    return StageEntered(
        event_id=f"{cid}-{day}-entered-{stage}",
        event_type="collections.stage_entered",
        occurred_at=at(day, 1),
        customer_id=cid,
        data=StageEnteredData(
            stage=stage,
            previous=previous,
            as_of=day,
            days_past_due=dpd or None,
            overdue=overdue,
            why=why,
        ),
    )


def _next(stage: str, day: date, dpd: int) -> NextStage | None:
    for name, threshold in (("overdue", OVERDUE_AT), ("final_notice", FINAL_AT)):
        if stage_for(dpd) != name and dpd < threshold:
            return NextStage(stage=name, earliest_on=day + timedelta(days=threshold - dpd))
    if stage != "suspended":
        return NextStage(stage="suspended", earliest_on=day + timedelta(days=SUSPEND_AT - dpd))
    return None


def _state(
    cid: str,
    day: date,
    stage: str,
    dpd: int,
    overdue: list[Money],
    *,
    subs: list[str] = SUBSCRIPTIONS,
) -> CollectionsState:
    return CollectionsState(
        event_id=f"{cid}-{day}-state",
        event_type="collections.state",
        occurred_at=at(day, 1, 59),
        customer_id=cid,
        data=CollectionsStateData(
            stage=stage,
            delinquent=stage != "current",
            overdue=overdue,
            anchor_due_on=None,
            days_past_due=dpd or None,
            as_of=day,
            holds=[],
            suspended_subscription_ids=subs if stage == "suspended" else [],
            next=_next(stage, day, dpd) if overdue else None,
            policy=POLICY,
        ),
    )


def _failed(cid: str, day: date, sub: str) -> AccessFailed:
    """A suspension Partner Center refused: a case for the operators."""
    return AccessFailed(
        event_id=f"CMD-{cid}-{day}-{sub}-failed",
        event_type="access.failed",
        occurred_at=at(day, 1, 45),
        customer_id=cid,
        data=AccessFailedData(
            command_id=f"CMD-{cid}-{day}",
            subscription_id=sub,
            provider="pc",
            attempts=3,
            error="HTTP 409: the subscription is in a state that does not allow the change",
        ),
    )


def crowd_id(i: int) -> str:
    return f"c{i:06d}"


def crowd(count: int, *, seed: int = 13, day: date = date(2026, 11, 30)) -> Iterator[Event]:
    """`count` customers: a profile each; a stage drawn from CROWD_STAGES; a delinquent one
    also has an invoice per currency it owes in (one or two; TWD with no cents, as it is
    billed), the stage it entered (with its why) and its state; a suspended one its subscription
    suspended, or for FAILED_SHARE of them an `access.failed` instead."""
    rng = random.Random(seed)
    for i in range(count):
        cid = crowd_id(i)
        subs = [f"SUB-{cid}-1"]
        yield CustomerUpserted(
            event_id=f"{cid}-upserted-1",
            event_type="customer.upserted",
            occurred_at=at(day - timedelta(days=400), 0, 30),
            customer_id=cid,
            data=CustomerUpsertedData(
                name=f"Customer {i:06d} {rng.choice(('Ltd', 'GmbH', 'Inc', '有限公司'))}",
                locale=rng.choice(("en", "zh-TW")),
                billing_email=f"ap@{cid}.example",
                partner_contact_email="am@partner.example",
                tags=rng.sample(("smb", "enterprise", "edu", "gov"), rng.randint(0, 2)),
                subscription_ids=subs,
            ),
        )
        stage = rng.choices(CROWD_STAGES, CROWD_WEIGHTS)[0]
        dpd = {"current": 0, "overdue": 5, "final_notice": 16, "suspended": 30}[stage]
        dpd += rng.randint(0, 4) if dpd else 0
        overdue: list[Money] = []
        for currency in rng.sample(CURRENCIES, rng.randint(1, 2)) if dpd else ():
            cents = 100 if currency == "TWD" else 1
            amount = Decimal(rng.randint(1_000, 500_000) // cents * cents) / 100
            overdue.append(Money(amount=amount, currency=currency))
        if overdue:
            due = day - timedelta(days=dpd)
            issued = due - timedelta(days=30)
            bills = [
                _Open(f"INV-{cid}-{n}", m.amount, issued, due, day + timedelta(days=60))
                for n, m in enumerate(overdue, 1)
            ]
            for bill, money in zip(bills, overdue, strict=True):
                yield InvoiceIssued(
                    event_id=f"{bill.invoice_id}-issued",
                    event_type="invoice.issued",
                    occurred_at=at(issued, 0, 45),
                    customer_id=cid,
                    data=InvoiceIssuedData(
                        invoice_id=bill.invoice_id,
                        currency=money.currency,
                        amount=bill.amount,
                        issued_on=issued,
                        due_on=due,
                        subscription_ids=subs,
                    ),
                )
            yield _entered(
                cid, day, stage=stage, previous="current", dpd=dpd, overdue=overdue, anchor=bills[0]
            )
        if stage == "suspended" and rng.random() < FAILED_SHARE:
            yield _failed(cid, day, subs[0])
        elif stage == "suspended":
            yield from _access(cid, day, suspend=True, subs=subs)
        yield _state(cid, day, stage, dpd, overdue, subs=subs)


# ---- loading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    events: int
    timeline: int  # the long customer's timeline entries
    seconds: float
    what: str = "events applied"


def fill_events(store: Store, events: Iterable[Event]) -> int:
    """Apply each event through `Store.apply`, one transaction each, as the service does."""
    began = time.monotonic()
    applied = 0
    for event in events:
        store.apply(event)
        applied += 1
        if applied % 50_000 == 0:
            say(f"       {applied:,} events ({applied / (time.monotonic() - began):,.0f}/s)")
    return applied


def fill(store: Store, customers: int, months: int, seed: int) -> Loaded:
    """The crowd, then the long customer (so its rows are the newest, as after a rebuild)."""
    began = time.monotonic()
    events = fill_events(
        store, itertools.chain(crowd(customers, seed=seed), long_history(months=months, seed=seed))
    )
    timeline = len(store.timeline(LONG_ID, limit=1_000_000))
    return Loaded(events, timeline, time.monotonic() - began)


def postgres_schema_url(url: str, schema: str) -> str:
    """The URL with the store's tables in `schema` (docs/console.md: one schema per console)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


# ---- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    label: str
    path: str
    target_ms: float


def probes() -> list[Probe]:
    crowd_match = "00042"  # in ids and names: c000420 to c000429, c010042, c000042...
    stage = "final_notice"
    by_overdue = "currency=EUR&sort=overdue&order=desc"
    long = f"/customers/{LONG_ID}"
    return [
        Probe("customer page (HTML)", long, CUSTOMER_MS),
        Probe("customer (API)", f"/api{long}", CUSTOMER_MS),
        Probe("customer timeline (API)", f"/api{long}/timeline", CUSTOMER_MS),
        Probe("overview (HTML)", "/", OVERVIEW_MS),
        Probe("overview (API)", "/api/overview", OVERVIEW_MS),
        Probe("customers, first page (HTML)", "/customers", LIST_MS),
        Probe("customers, first page (API)", "/api/customers", LIST_MS),
        Probe(f"customers, stage={stage} (HTML)", f"/customers?stage={stage}", LIST_MS),
        Probe(f"customers, q={crowd_match} (HTML)", f"/customers?q={crowd_match}", LIST_MS),
        Probe(f"customers, q={crowd_match} (API)", f"/api/customers?q={crowd_match}", LIST_MS),
        Probe("customers, tag=gov (HTML)", "/customers?tag=gov", LIST_MS),
        Probe("customers, EUR by overdue desc (HTML)", f"/customers?{by_overdue}", LIST_MS),
        Probe("customers, EUR by overdue desc (API)", f"/api/customers?{by_overdue}", LIST_MS),
        Probe("customers, by name (API)", "/api/customers?sort=name", LIST_MS),
    ]


@dataclass(frozen=True)
class Figures:
    backend: str
    probe: Probe
    samples: list[float]  # ms
    size: int  # bytes of the last answer

    def pct(self, p: float) -> float:
        """Nearest rank."""
        ranked = sorted(self.samples)
        return ranked[max(0, math.ceil(len(ranked) * p / 100) - 1)]

    @property
    def ok(self) -> bool:
        return self.pct(95) < self.probe.target_ms

    def row(self) -> str:
        return (
            f"{self.backend:<10} {self.probe.label:<38} {self.probe.target_ms:>5.0f}ms "
            f"{self.pct(50):>6.1f}ms {self.pct(95):>6.1f}ms {max(self.samples):>6.1f}ms "
            f"{self.size / 1024:>7.1f}  {'PASS' if self.ok else 'MISS'}"
        )


HEAD = (
    f"{'backend':<10} {'request':<38} {'target':>7} {'p50':>8} {'p95':>8} {'max':>8} "
    f"{'KiB':>7}  p95 vs target"
)


async def measure(store: Store, backend: str, runs: int, warmup: int) -> list[Figures]:
    auth = AuthConfig(tokens=((TOKEN, "viewer"),))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    results: list[Figures] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    say(HEAD)
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=headers) as http:
            for probe in probes():
                samples: list[float] = []
                size = 0
                for n in range(warmup + runs):
                    began = time.perf_counter()
                    async with http.get(probe.path) as answer:
                        body = await answer.read()
                    took = (time.perf_counter() - began) * 1000
                    if answer.status != 200:
                        raise SystemExit(f"{probe.path}: HTTP {answer.status}: {body[:300]!r}")
                    size = len(body)
                    if n >= warmup:
                        samples.append(took)
                results.append(Figures(backend, probe, samples, size))
                say(results[-1].row())
    finally:
        await runner.cleanup()
    return results


def profile(store: Store, paths: list[str]) -> None:
    """cProfile of the handlers behind `paths` (one request each after a warm-up)."""

    async def hit() -> None:
        auth = AuthConfig(tokens=((TOKEN, "viewer"),))
        app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with aiohttp.ClientSession(f"http://{host}:{port}", headers=headers) as http:
                for path in paths:
                    async with http.get(path) as answer:
                        await answer.read()
                    profiler = cProfile.Profile()
                    profiler.enable()
                    async with http.get(path) as answer:
                        await answer.read()
                    profiler.disable()
                    say(f"\n---- profile of GET {path} (top 15 by cumulative time)")
                    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(
                        15
                    )
        finally:
            await runner.cleanup()

    asyncio.run(hit())


# ---- the run ------------------------------------------------------------------------------


def table(rows: list[Figures], loads: dict[str, Loaded]) -> bool:
    say("")
    say(HEAD)
    for f in rows:
        say(f.row())
    say("")
    for backend, loaded in loads.items():
        say(
            f"{backend}: {loaded.events:,} {loaded.what} in {loaded.seconds:.0f} s "
            f"({loaded.events / loaded.seconds:,.0f}/s); {LONG_ID} has "
            f"{loaded.timeline} timeline entries"
        )
    missed = [f for f in rows if not f.ok]
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    say(f"host: {os.cpu_count()} CPUs, load average {load}")
    say("targets: all met" if not missed else f"targets: {len(missed)} MISSED")
    return not missed


def load_sqlite(target: str, args: argparse.Namespace) -> Loaded:
    say(f"sqlite: filling {target}")
    store = Store(target)
    # A bench's load, not the service's: nothing to keep if the host dies meanwhile.
    store._run("PRAGMA synchronous=OFF")  # noqa: SLF001
    try:
        loaded = fill(store, args.customers, args.months, args.seed)
    finally:
        store.close()
    say(f"sqlite: {loaded.events:,} events applied in {loaded.seconds:.0f} s")
    return loaded


def copy_rows(source: Store, target: Store) -> int:
    """Every row of every table but `meta` (the generation) from a SQLite store into an empty
    PostgreSQL one: the same schema, so the same rows the same events would have made."""
    assert isinstance(source.db, sqlite3.Connection)
    assert isinstance(target.db, psycopg.Connection)
    tables = [
        name
        for (name,) in source.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name != "meta"
    ]
    copied = 0
    for table in tables:
        rows = source.db.execute(f"SELECT * FROM {table}")  # noqa: S608  (the store's tables)
        columns = ", ".join(d[0] for d in rows.description)
        with (
            target.db.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
                copied += 1
    return copied


def load_postgres(url: str, sqlite_target: str, args: argparse.Namespace) -> Loaded:
    say(f"postgresql: filling {url.split('?', maxsplit=1)[0]}")
    began = time.monotonic()
    store = Store(url)
    try:
        if args.apply_on_postgres:
            store._run("SET synchronous_commit TO off")  # noqa: SLF001  (as for SQLite)
            loaded = fill(store, args.customers, args.months, args.seed)
            what = "events applied"
        else:
            source = Store(sqlite_target)
            try:
                count = copy_rows(source, store)
            finally:
                source.close()
            timeline = len(store.timeline(LONG_ID, limit=1_000_000))
            loaded = Loaded(count, timeline, time.monotonic() - began, "rows copied")
            what = "rows copied from the SQLite store"
        store._run("ANALYZE")  # noqa: SLF001  (autovacuum would have, in a running service)
    finally:
        store.close()
    say(f"postgresql: {loaded.events:,} {what} in {loaded.seconds:.0f} s")
    return loaded


def timed(backend: str, target: str, args: argparse.Namespace) -> list[Figures]:
    store = Store(target)  # a fresh connection, as a (re)started service has
    try:
        rows = asyncio.run(measure(store, backend, args.runs, args.warmup))
        if args.profile:
            profile(store, [p.path for p in probes()])
    finally:
        store.close()
    return rows


@contextlib.contextmanager
def postgres(args: argparse.Namespace) -> Iterator[str | None]:
    """The URL of a fresh schema for the bench (dropped at the end), or None."""
    server = None
    url = args.postgres
    if args.with_local_postgres:
        from billstate_devkit.postgres import LocalPostgres

        server = LocalPostgres()
        url = server.start()
        say(f"postgresql: local server on port {server.port} (started here)")
    if url is None:
        yield None
        return
    schema = f"bench_console_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield postgres_schema_url(url, schema)
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        if server is not None:
            server.stop()
            say("postgresql: local server stopped")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=MONTHS, help="the long customer's history")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--runs", type=int, default=30, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL database")
    parser.add_argument(
        "--with-local-postgres",
        action="store_true",
        help="also run on a throwaway local PostgreSQL server (the dev kit's)",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="time PostgreSQL only")
    parser.add_argument(
        "--apply-on-postgres",
        action="store_true",
        help="fill PostgreSQL through Store.apply too, not by copying the SQLite store's rows "
        "(slow: a few hundred events/s)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile each route once")
    parser.add_argument(
        "--keep", type=Path, metavar="FILE", help="make the SQLite store here and keep it"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like ^C: the local server stops and the temporary files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    rows: list[Figures] = []
    loads: dict[str, Loaded] = {}
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder, postgres(args) as url:
        if args.keep is not None and args.keep.exists():
            raise SystemExit(f"{args.keep} exists; --keep makes a new store")
        sqlite_target = f"sqlite:///{args.keep or Path(folder) / 'console.sqlite3'}"
        loads["sqlite"] = load_sqlite(sqlite_target, args)
        if not args.skip_sqlite:
            rows += timed("sqlite", sqlite_target, args)
        if url is not None:
            loads["postgresql"] = load_postgres(url, sqlite_target, args)
            rows += timed("postgresql", url, args)
    ok = table(rows, loads)
    say(f"bench-console took {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
