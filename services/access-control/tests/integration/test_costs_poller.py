"""The cost poller against the local Partner Center: paging, throttling, a 500, restarts.

Faults are the server's (429 with Retry-After, 500), never our code's; the poller's `sleep`
only records, so the waits are asserted without being waited.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from billstate_access_control.costs import CostPoller
from billstate_access_control.providers.partner_center import (
    PartnerCenterProvider,
)
from billstate_access_control.store import Store
from billstate_devkit.partner_center import PartnerCenterServer, billing_line
from billstate_shared.contracts import CostRecorded, decode
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy

CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
FABRIKAM = "2a7c0d41-9b3e-4f6a-8c5d-1e0f9a8b7c6d"
STRANGER = "44444444-4444-4444-8444-444444444444"  # a tenant billstate does not map
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
DEC = (date(2026, 12, 1), date(2026, 12, 31))
NOV = (date(2026, 11, 1), date(2026, 11, 30))


def lines(tenant: str, n: int, period: tuple[date, date] = DEC) -> list[dict[str, object]]:
    """`n` lines of 1.25 each, on n // 2 + 1 subscriptions (two lines on most)."""
    return [
        billing_line(tenant, f"sub-{tenant[:4]}-{i // 2}", *period, Decimal("1.25"))
        for i in range(n)
    ]


class Poller:
    """A poller whose sends are kept and whose sleeps are only recorded."""

    def __init__(self, provider: PartnerCenterProvider, store: Store, page: int = 7) -> None:
        self.sent: list[Produce] = []
        self.slept: list[float] = []

        async def send(out: Produce) -> None:
            self.sent.append(out)

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.job = CostPoller(
            provider=provider,
            store=store,
            send=send,
            retry=RetryPolicy(attempts=4, base_delay=0.5, max_delay=30.0),
            page=page,
            sleep=sleep,
        )

    def costs(self) -> list[CostRecorded]:
        out = []
        for record in self.sent:
            event = decode(record.value or b"")
            assert isinstance(event, CostRecorded)
            assert record.key == event.customer_id.encode()
            assert record.topic == "billing.costs.v1"
            out.append(event)
        return out


def total(events: list[CostRecorded], customer: str) -> Decimal:
    return sum((e.data.amount for e in events if e.customer_id == customer), Decimal(0))


async def test_every_line_of_every_page_is_counted_once_per_subscription_and_period(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_invoice(
        "G000000001",
        date(2027, 1, 9),
        [*lines(CONTOSO, 20), *lines(FABRIKAM, 9), *lines(STRANGER, 4)],
    )
    poller = Poller(provider, store, page=7)  # 33 lines: 5 pages

    result = await poller.job.run_once()

    events = poller.costs()
    assert result.pages == 5
    assert pc.continuations() == 4
    assert (result.lines, result.unmapped, result.invoices) == (33, 4, 1)
    assert total(events, "contoso") == Decimal("25.00")
    assert total(events, "fabrikam") == Decimal("11.25")
    assert {e.customer_id for e in events} == {"contoso", "fabrikam"}
    # One event per subscription and period, lines summed across page boundaries.
    assert len(events) == 10 + 5
    assert len({e.event_id for e in events}) == len(events)
    first = next(e for e in events if e.data.subscription_id == f"sub-{CONTOSO[:4]}-0")
    assert first.data.amount == Decimal("2.50")
    assert (first.data.charge_start, first.data.charge_end) == DEC
    assert first.data.invoice_ref == "G000000001"
    assert first.data.currency == "USD"


async def test_a_mapped_subscription_is_reported_by_billstates_id(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_invoice(
        "G000000002",
        date(2027, 1, 9),
        [
            billing_line(CONTOSO, SUB, *DEC, "612.40"),
            billing_line(CONTOSO, SUB, *DEC, "-12.40"),  # a credit on the same period
            billing_line(CONTOSO, SUB, *NOV, "100.00"),
        ],
    )
    poller = Poller(provider, store)

    await poller.job.run_once()

    amounts = {(e.data.subscription_id, e.data.charge_start): e.data.amount for e in poller.costs()}
    assert amounts == {("sub-a", DEC[0]): Decimal("600.00"), ("sub-a", NOV[0]): Decimal("100.00")}


async def test_a_429_waits_its_retry_after_and_loses_nothing(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_invoice("G000000003", date(2027, 1, 9), lines(CONTOSO, 20))
    poller = Poller(provider, store, page=7)
    await provider.read("/v1/invoices")  # a token first, so the 429s meet the page reads
    pc.throttle(2, retry_after=7)

    result = await poller.job.run_once()

    assert poller.slept == [7.0, 7.0]
    assert result.invoices == 1
    assert total(poller.costs(), "contoso") == Decimal("25.00")
    assert len(pc.requests(path="/v1/invoices")) >= 2
    assert [r.status for r in pc.requests() if r.status == 429] == [429, 429]


async def test_a_500_mid_invoice_is_retried_and_nothing_doubles(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_invoice("G000000004", date(2027, 1, 9), lines(CONTOSO, 20))
    pc.fail_path("/v1/invoices/G000000004/lineitems/", times=1, status=500)  # page 2
    poller = Poller(provider, store, page=7)

    await poller.job.run_once()

    assert poller.slept == [0.5]  # the backoff: a 500 has no Retry-After
    events = poller.costs()
    assert total(events, "contoso") == Decimal("25.00")
    assert len(events) == len({e.event_id for e in events}) == 10


async def test_an_invoice_that_fails_for_good_sends_nothing_and_is_read_next_round(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    pc.add_invoice("G000000005", date(2027, 1, 9), lines(CONTOSO, 20))
    assert (await Poller(provider, store, page=7).job.run_once()).invoices == 1
    pc.add_invoice("G000000006", date(2027, 2, 9), lines(FABRIKAM, 10))
    pc.fail_path("/v1/invoices/G000000006/lineitems/", times=4, status=503)  # page 2, 4 tries
    broken = Poller(provider, store, page=7)

    result = await broken.job.run_once()

    assert (result.failed, result.skipped) == (1, 1)
    assert broken.sent == []  # nothing half-sent
    later = Poller(provider, store, page=7)
    again = await later.job.run_once()
    assert (again.invoices, again.skipped) == (1, 1)  # G..6 read now; G..5 was done
    assert total(later.costs(), "fabrikam") == Decimal("12.50")
    assert {e.data.invoice_ref for e in later.costs()} == {"G000000006"}


async def test_a_restart_does_not_read_a_done_invoice_again(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, tmp_path: Path
) -> None:
    pc.add_invoice("G000000007", date(2027, 1, 9), lines(CONTOSO, 3))
    store = Store(tmp_path / "restart")
    await Poller(provider, store).job.run_once()
    store.close()
    reads = len(pc.requests(path="/v1/invoices/G000000007/lineitems"))

    reopened = Store(tmp_path / "restart")
    try:
        result = await Poller(provider, reopened).job.run_once()
    finally:
        reopened.close()

    assert (result.invoices, result.skipped) == (0, 1)
    assert len(pc.requests(path="/v1/invoices/G000000007/lineitems")) == reads


async def test_only_the_newest_invoices_are_read(
    pc: PartnerCenterServer, provider: PartnerCenterProvider, store: Store
) -> None:
    for month in range(1, 6):
        pc.add_invoice(f"G00000001{month}", date(2027, month, 9), lines(CONTOSO, 2))
    poller = Poller(provider, store)
    poller.job.invoices = 2

    await poller.job.run_once()

    assert {e.data.invoice_ref for e in poller.costs()} == {"G000000015", "G000000014"}
