"""The four services as real processes on a real broker, under fresh consumer groups per test."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.drive import Driver, start_at_end
from billstate_cli.local import SERVICES, Fleet
from billstate_cli.replay import Replay
from billstate_cli.summary import RunRecords, ends_now
from billstate_collections.domain.snapshot import state_data
from billstate_devkit.kafka import ensure_catalog
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "standard.yaml"


class Pipeline:
    """One isolated run: fresh groups (starting at the end of every topic), own data dirs."""

    def __init__(
        self,
        bootstrap: str,
        root: Path,
        extra: dict[str, str] | None = None,
        policy: Path = POLICY,
    ) -> None:
        self.bootstrap = bootstrap
        suffix = uuid.uuid4().hex[:8]
        self.groups = {service: f"{service}-test-{suffix}" for service in SERVICES}
        env = {
            "BILLSTATE_INVOICING_COMMIT_INTERVAL": "0.1",
            "BILLSTATE_COLLECTIONS_COMMIT_INTERVAL": "0.1",
            # The histories these tests play are business time, months away from the wall
            # clock either way; the future-tick guard has its own tests (invoicing, clock
            # recovery), so here it allows any tick within a century.
            "BILLSTATE_INVOICING_CLOCK_SKEW": str(100 * 366 * 86_400),
            # access-control's guards are off here: these tests are about the pipeline, and
            # with the defaults every suspension would park (a payments topic these tests
            # leave empty is a silent feed; a history has more than 50 suspensions a day).
            # test_guards_broker.py turns them on (`extra`).
            "BILLSTATE_ACCESS_CONTROL_BRAKE_CAP": "0",
            "BILLSTATE_ACCESS_CONTROL_PAYMENT_FEED_MAX_AGE": "0",
        }
        for service, group in self.groups.items():
            env[f"BILLSTATE_{service.replace('-', '_').upper()}_CONSUMER_GROUP"] = group
        env.update(extra or {})
        self.fleet = Fleet(root, bootstrap, policy, extra_env=env)
        self.since: dict[Any, int] = {}

    async def start(self, names: tuple[str, ...] = SERVICES) -> None:
        await ensure_catalog(self.bootstrap)
        await start_at_end(self.bootstrap, {n: self.groups[n] for n in names})
        self.since = await ends_now(self.bootstrap)
        await self.restart(names)

    async def restart(self, names: tuple[str, ...]) -> None:
        self.fleet.start(names)
        await asyncio.to_thread(self.fleet.wait_ready)

    def pipeline_groups(self) -> dict[str, str]:
        return {s: self.groups[s] for s in ("invoicing", "collections")}

    async def drive(
        self,
        events: Iterable[dict[str, Any]],
        *,
        twice: bool = False,
        after_tick: Callable[[Driver], None] | None = None,
    ) -> None:
        async with Driver(self.bootstrap, self.pipeline_groups()) as driver:
            driver.after_tick = after_tick
            for event in events:
                await driver.send(event)
                if twice and event["event_type"] != "clock.tick":
                    await driver.send(event)
            await driver.settle()

    async def settle(self) -> None:
        async with Driver(self.bootstrap, self.groups) as driver:
            await driver.settle()

    async def outcome(self) -> RunRecords:
        return await RunRecords.read_since(self.bootstrap, self.since)

    def access(self, customer_id: str) -> dict[str, Any]:
        url = self.fleet.get("access-control").url(f"/customers/{customer_id}/access")
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.fleet.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body: dict[str, Any] = json.loads(answer.read())
            return body


def replayed(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `billstate replay` decides for the same input, as JSON."""
    replay = Replay(load_policy(POLICY))
    out: list[dict[str, Any]] = []
    for event in events:
        produced = replay.feed(decode(json.dumps(event).encode()))
        out.extend(json.loads(to_bytes(p)) for p in produced)
    return out


def final_states(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Replay's collections state per customer after the input, as the state topic shows it."""
    policy = load_policy(POLICY)
    replay = Replay(policy)
    for event in events:
        replay.feed(decode(json.dumps(event).encode()))
    return {
        customer: json.loads(state_data(book, policy).model_dump_json())
        for customer, book in replay.books.items()
        if book.as_of is not None or book.ledger.invoices
    }


def renamed(events: Iterable[dict[str, Any]], suffix: str) -> Iterator[dict[str, Any]]:
    """The events with `suffix` on every customer id (and event id): a test's customers of
    its own on a broker other tests write the same simulated ids to."""
    for event in events:
        if event["customer_id"] != "*":
            event["customer_id"] += suffix
            event["event_id"] += suffix
        yield event


def load_jsonl(path: Path, customer_suffix: str = "") -> list[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for event in events:
        if event["customer_id"] != "*":
            event["customer_id"] += customer_suffix
            event["event_id"] += customer_suffix
    return events


@pytest.fixture
async def pipeline(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    run = Pipeline(kafka_bootstrap, tmp_path)
    try:
        yield run
    finally:
        run.fleet.stop()
