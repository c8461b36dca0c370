"""A real history for the console's tests: docs/examples/lifecycle.jsonl's inputs, what
`billstate replay` makes of them, and what access-control and notifications would answer."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from billstate_console.store import Store
from billstate_shared.contracts import (
    AccessRestore,
    AccessRestored,
    AccessRestoredData,
    AccessSuspend,
    AccessSuspended,
    AccessSuspendedData,
    CollectionsState,
    CollectionsStateData,
    Event,
    NoticeDelivered,
    NoticeDeliveredData,
    NoticeRequested,
    decode,
)
from billstate_shared.contracts.events import NextStage

ROOT = Path(__file__).resolve().parents[3]
LIFECYCLE = ROOT / "docs/examples/lifecycle.jsonl"
POLICY = ROOT / "policies/standard.yaml"
# What the console reads of the replay's output (invoice.aged and the commands it does not).
READ = {"collections.stage_entered", "notice.requested"}
INPUTS = {"customer.upserted", "invoice.issued", "payment.received"}


def replay_lines() -> tuple[list[str], list[str]]:
    """(inputs the console reads, replay outputs), as JSON lines."""
    billstate = Path(sys.executable).parent / "billstate"
    out = subprocess.run(  # noqa: S603  (our own command, fixed argv)
        [str(billstate), "replay", "--policy", str(POLICY), str(LIFECYCLE)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    inputs = [
        line
        for line in LIFECYCLE.read_text().splitlines()
        if line.strip() and json.loads(line)["event_type"] in INPUTS
    ]
    return inputs, out.splitlines()


def answers(outputs: list[Event]) -> list[Event]:
    """What the actuators answer: each suspend and restore applied, each notice delivered,
    and collections' last state of the customer (current, with a next step to show)."""
    made: list[Event] = []
    for event in outputs:
        later = event.occurred_at + timedelta(minutes=1)
        if isinstance(event, AccessSuspend | AccessRestore):
            suspend = isinstance(event, AccessSuspend)
            for sub in event.data.subscription_ids:
                data = {
                    "command_id": event.data.command_id,
                    "subscription_id": sub,
                    "provider": "builtin",
                }
                made.append(
                    AccessSuspended(
                        event_id=f"applied-{event.event_id}-{sub}",
                        event_type="access.suspended",
                        occurred_at=later,
                        customer_id=event.customer_id,
                        data=AccessSuspendedData(**data),
                    )
                    if suspend
                    else AccessRestored(
                        event_id=f"applied-{event.event_id}-{sub}",
                        event_type="access.restored",
                        occurred_at=later,
                        customer_id=event.customer_id,
                        data=AccessRestoredData(**data),
                    )
                )
        if isinstance(event, NoticeRequested):
            made.append(
                NoticeDelivered(
                    event_id=f"delivered-{event.data.notice_id}",
                    event_type="notice.delivered",
                    occurred_at=later,
                    customer_id=event.customer_id,
                    data=NoticeDeliveredData(
                        notice_id=event.data.notice_id, channel="outbox", attempts=1
                    ),
                )
            )
    last = max(outputs, key=lambda e: e.occurred_at)
    made.append(
        CollectionsState(
            event_id="state-contoso-final",
            event_type="collections.state",
            occurred_at=last.occurred_at,
            customer_id="contoso",
            data=CollectionsStateData(
                stage="current",
                delinquent=False,
                overdue=[],
                anchor_due_on=None,
                days_past_due=None,
                as_of=last.occurred_at.date(),
                holds=[],
                suspended_subscription_ids=[],
                next=NextStage(stage="overdue", earliest_on=last.occurred_at.date()),
                policy={"name": "standard", "version": 3},  # type: ignore[arg-type]
            ),
        )
    )
    return made


@pytest.fixture(scope="session")
def history() -> list[Event]:
    """Every event the console reads of the lifecycle, in the order they happened."""
    inputs, outputs = replay_lines()
    decoded = [decode(line) for line in inputs + outputs]
    events = [e for e in decoded if e.event_type in INPUTS | READ] + answers(decoded)
    return sorted(events, key=lambda e: e.occurred_at)


MakeStore = Callable[[], Store]
BACKENDS = ("sqlite", "postgresql")


def in_schema(url: str, schema: str) -> str:
    """`url` with `search_path` set to `schema`: each store its own tables, one server."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """Makes empty stores on one back end: SQLite in memory, or PostgreSQL, each store in a
    schema of its own on the dev kit's throwaway server (dropped at the end)."""
    made: list[Store] = []
    schemas: list[str] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    def make() -> Store:
        if url is None:
            made.append(Store(":memory:"))
        else:
            schema = f"console_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
            schemas.append(schema)
            made.append(Store(in_schema(url, schema)))
        return made[-1]

    yield make
    for each in made:
        each.close()
    if url is not None and schemas:
        with psycopg.connect(url, autocommit=True) as admin:
            for schema in schemas:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(history: list[Event], make_store: MakeStore) -> Store:
    """The lifecycle's history applied, on each back end."""
    filled = make_store()
    for event in history:
        filled.apply(event)
    return filled
