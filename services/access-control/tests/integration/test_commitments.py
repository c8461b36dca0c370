"""Commitment checks against the local Partner Center: renewals and cancellation windows of
watched customers' subscriptions, announced once; stages from collections.events.v1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from billstate_access_control.commitments import CommitmentWatch
from billstate_access_control.handlers import AccessHandler
from billstate_access_control.providers.partner_center import (
    PartnerCenterProvider,
)
from billstate_access_control.store import Store
from billstate_devkit.partner_center import PartnerCenterServer
from billstate_shared.contracts import AccessCommitment, StageEntered, decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

NOW = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
FABRIKAM = "2a7c0d41-9b3e-4f6a-8c5d-1e0f9a8b7c6d"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SUB2 = "9e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


def midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


@dataclass(frozen=True)
class Rec:
    value: bytes
    key: bytes
    topic: str = "collections.events.v1"
    partition: int = 0
    offset: int = 0


def stage_entered(customer: str, stage: str, previous: str, as_of: date) -> Rec:
    """The contract's example stage change, for `customer` and `stage`."""
    example = EXAMPLES["collections.stage_entered"]
    assert isinstance(example, StageEntered)
    data = example.data.model_copy(update={"stage": stage, "previous": previous, "as_of": as_of})
    event = example.model_copy(
        update={"customer_id": customer, "event_id": f"stage-{customer}-{as_of}", "data": data}
    )
    return Rec(encode(event), customer.encode())


class Watch:
    def __init__(self, provider: PartnerCenterProvider, store: Store) -> None:
        self.sent: list[Produce] = []
        self.store = store

        async def send(out: Produce) -> None:
            self.sent.append(out)

        async def sleep(_seconds: float) -> None:
            return None

        self.job = CommitmentWatch(
            provider=provider,
            store=store,
            send=send,
            retry=RetryPolicy(attempts=3, base_delay=0.1),
            sleep=sleep,
            clock=lambda: NOW,
        )
        self.handler = AccessHandler(store=store, provider=provider, retry=RetryPolicy())

    async def enter(self, customer: str, stage: str, previous: str, as_of: date) -> None:
        assert await self.handler(stage_entered(customer, stage, previous, as_of)) == []

    def events(self) -> list[AccessCommitment]:
        out = []
        for record in self.sent:
            assert record.topic == "access.events.v1"
            event = decode(record.value or b"")
            assert isinstance(event, AccessCommitment)
            out.append(event)
        return out


async def test_a_renewal_within_the_window_is_announced_once(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    renews = NOW.date() + timedelta(days=10)
    pc.add_subscription(CONTOSO, SUB, commitmentEndDate=midnight(renews - timedelta(days=1)))
    # Renews in 40 days: not yet.
    pc.add_subscription(CONTOSO, SUB2, commitmentEndDate=midnight(NOW.date() + timedelta(39)))
    watch = Watch(provider, store)
    await watch.enter("contoso", "final_notice", "overdue", date(2027, 1, 19))

    first = await watch.job.run_once()
    second = await watch.job.run_once()

    (event,) = watch.events()
    assert (first.announced, second.announced) == (1, 0)
    assert event.customer_id == "contoso"
    assert event.data.subscription_id == "sub-a"
    assert event.data.renews_on == renews
    assert event.data.auto_renew is True
    assert event.data.term_end == renews - timedelta(days=1)
    assert "final_notice" in event.data.reason
    assert renews.isoformat() in event.data.reason


async def test_an_open_cancellation_window_is_announced_with_its_closing_time(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    closes = NOW + timedelta(days=3)
    pc.add_subscription(
        FABRIKAM,
        SUB2,
        autoRenewEnabled=False,
        cancellationAllowedUntilDate=closes.isoformat().replace("+00:00", "Z"),
        refundableQuantity={
            "totalQuantity": 10,
            "details": [{"quantity": 10, "allowedUntilDateTime": closes.isoformat()}],
        },
    )
    watch = Watch(provider, store)
    await watch.enter("fabrikam", "suspended", "final_notice", date(2027, 1, 19))

    await watch.job.run_once()

    (event,) = watch.events()
    assert event.data.subscription_id == SUB2  # unmapped: Partner Center's id
    assert event.data.cancellable_until == closes
    assert event.data.renews_on is None
    assert "2027-01-23 09:00 UTC" in event.data.reason


async def test_a_customer_below_the_watched_stages_is_not_checked(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_subscription(CONTOSO, SUB, commitmentEndDate=midnight(NOW.date() + timedelta(5)))
    watch = Watch(provider, store)
    await watch.enter("contoso", "final_notice", "overdue", date(2027, 1, 18))
    await watch.enter("contoso", "current", "final_notice", date(2027, 1, 19))  # paid

    result = await watch.job.run_once()

    assert (result.customers, watch.sent) == (0, [])
    assert pc.requests(path=f"/v1/customers/{CONTOSO}/subscriptions") == []


async def test_a_late_stage_change_does_not_undo_a_newer_one(
    provider: PartnerCenterProvider, store: Store
) -> None:
    watch = Watch(provider, store)
    await watch.enter("contoso", "final_notice", "overdue", date(2027, 1, 19))
    await watch.enter("contoso", "overdue", "current", date(2027, 1, 10))  # an older record

    assert store.stage("contoso") == "final_notice"


async def test_a_throttled_read_is_retried(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_subscription(CONTOSO, SUB, commitmentEndDate=midnight(NOW.date() + timedelta(5)))
    watch = Watch(provider, store)
    await watch.enter("contoso", "final_notice", "overdue", date(2027, 1, 19))
    pc.throttle(1, retry_after=2)

    result = await watch.job.run_once()

    assert (result.announced, result.unreadable) == (1, 0)


async def test_a_cancelled_subscription_commits_to_nothing(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_subscription(
        CONTOSO, SUB, status="deleted", commitmentEndDate=midnight(NOW.date() + timedelta(5))
    )
    watch = Watch(provider, store)
    await watch.enter("contoso", "suspended", "final_notice", date(2027, 1, 19))

    assert (await watch.job.run_once()).announced == 0
