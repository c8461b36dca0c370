"""The handler without a broker: routing, dedupe, retries, outcomes and dead letters.

Records are plain values shaped like aiokafka's; the store is a real SQLite file and the
channels are real (the file outbox, and a channel that fails as told).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billstate_notifications.channels import ChannelError, OutboxChannel
from billstate_notifications.domain import Rendered
from billstate_notifications.handlers import NotificationsHandler, clean_error
from billstate_notifications.store import Store
from billstate_shared.contracts import ContractError, decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.domain.ids import make_id
from billstate_shared.errors import Refused
from billstate_shared.runtime.dlq import read_headers
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce

REQUESTS = "notifications.requests.v1"
ACCESS = "access.events.v1"
CUSTOMERS = "billing.customers.v1"
DELIVERIES = "notifications.deliveries.v1"
NOW = datetime(2026, 11, 14, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Flaky:
    """A channel that fails the first `failures` deliveries with `retryable`."""

    failures: int = 0
    retryable: bool = True
    message: str = "451 try later"
    name: str = "flaky"
    retry_after: float | None = None
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def deliver(
        self, notice_id: str, audience: Any, address: str | None, rendered: Rendered
    ) -> None:
        self.calls.append((notice_id, audience, address))
        if len(self.calls) <= self.failures:
            raise ChannelError(self.message, retryable=self.retryable, retry_after=self.retry_after)


def envelope(event_type: str, customer_id: str, data: dict[str, Any], event_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-11-14T08:00:00+00:00",
            "customer_id": customer_id,
            "data": data,
        }
    ).encode()


def request(
    kind: str = "final_notice", notice_id: str = "ntc-1", customer: str = "contoso", **facts: Any
) -> bytes:
    data = {
        "notice_id": notice_id,
        "kind": kind,
        "audience": "customer",
        "locale": "en",
        "facts": {
            "customer_id": customer,
            "stage": "final_notice",
            "overdue": [{"amount": "120.00", "currency": "USD"}],
            "suspension_on": "2026-11-21",
            **facts,
        },
    }
    return envelope("notice.requested", customer, data, f"evt-{notice_id}")


def rec(
    value: bytes | None, offset: int = 0, topic: str = REQUESTS, key: bytes = b"contoso"
) -> Rec:
    return Rec(topic, 0, offset, key, value)


class Harness:
    def __init__(self, tmp_path: Path, channel: Any = None, attempts: int = 3) -> None:
        self.store = Store(tmp_path / "n.sqlite3")
        self.outbox = tmp_path / "outbox"
        self.channel = channel or OutboxChannel(self.outbox)
        self.sleeps: list[float] = []
        self.metrics = Metrics("notifications")

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.handle = NotificationsHandler(
            store=self.store,
            channel=self.channel,
            retry_attempts=attempts,
            retry_base_delay=0.5,
            metrics=self.metrics,
            clock=lambda: NOW,
            sleep=sleep,
        )


def outcome(out: Produce) -> Any:
    assert out.topic == DELIVERIES
    return decode(out.value)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


async def test_a_notice_is_delivered_and_reported(h: Harness) -> None:
    out = await h.handle(rec(request()))
    assert len(out) == 1
    event = outcome(out[0])
    assert event.event_type == "notice.delivered"
    assert event.event_id == make_id("dlv", "ntc-1", "delivered")
    assert (event.customer_id, out[0].key) == ("contoso", b"contoso")
    assert (event.data.notice_id, event.data.channel, event.data.attempts) == ("ntc-1", "outbox", 1)
    assert event.data.error is None
    assert event.occurred_at == NOW
    document = json.loads((h.outbox / "ntc-1.json").read_text("utf-8"))
    assert document["kind"] == "final_notice"
    assert document["customer_id"] == "contoso"
    row = h.store.delivery("ntc-1")
    assert row is not None
    assert row.status == "delivered"
    assert row.event_id == "evt-ntc-1"


async def test_a_duplicate_request_delivers_and_emits_nothing(tmp_path: Path) -> None:
    channel = Flaky()
    h = Harness(tmp_path, channel)
    assert len(await h.handle(rec(request(), offset=1))) == 1
    assert await h.handle(rec(request(), offset=7)) == []
    assert len(channel.calls) == 1


async def test_the_same_record_again_re_emits_the_same_outcome(h: Harness) -> None:
    """Redelivered after a crash before commit: the outcome may be lost, so write it again."""
    first = await h.handle(rec(request(), offset=3))
    again = await h.handle(rec(request(), offset=3))
    assert again == first
    assert [p.name for p in h.outbox.iterdir()] == ["ntc-1.json"]


async def test_directory_gives_the_name_and_the_address(tmp_path: Path) -> None:
    channel = Flaky()
    h = Harness(tmp_path, channel)
    upsert = EXAMPLES["customer.upserted"].model_copy(update={"customer_id": "contoso"})
    assert await h.handle(rec(encode(upsert), topic=CUSTOMERS)) == []
    await h.handle(rec(request()))
    assert channel.calls == [("ntc-1", "customer", upsert.data.billing_email)]


async def test_unknown_kind_fails_and_dead_letters_the_request(h: Harness) -> None:
    raw = request(kind="carrier_pigeon")
    out = await h.handle(rec(raw, offset=9))
    assert len(out) == 2
    failed = outcome(out[0])
    assert failed.event_type == "notice.failed"
    assert failed.event_id == make_id("dlv", "ntc-1", "failed")
    assert failed.data.attempts == 1
    assert "carrier_pigeon" in failed.data.error
    dlq = out[1]
    assert (dlq.topic, dlq.key, dlq.value) == (f"{REQUESTS}.dlq", b"contoso", raw)
    headers = read_headers(dlq.headers)
    assert headers["offset"] == "9"
    assert headers["topic"] == REQUESTS
    assert headers["field"] == "data.kind"
    assert headers["event_type"] == "notice.requested"
    assert "no template for kind 'carrier_pigeon'" in headers["reason"]
    assert not h.outbox.exists() or not any(h.outbox.iterdir())


async def test_a_locale_without_templates_fails_and_dead_letters(tmp_path: Path) -> None:
    channel = Flaky()
    h = Harness(tmp_path, channel)
    upsert = EXAMPLES["customer.upserted"].model_copy(update={"customer_id": "contoso"})
    await h.handle(rec(encode(upsert), topic=CUSTOMERS))
    raw = json.loads(request())
    raw["data"]["locale"] = "ja"
    out = await h.handle(rec(json.dumps(raw).encode(), offset=4))
    assert outcome(out[0]).event_type == "notice.failed"
    headers = read_headers(out[1].headers)
    assert headers["field"] == "data.locale"
    assert "no templates for locale 'ja'" in headers["reason"]
    assert channel.calls == []


async def test_partner_notices_read_the_partners_locale_through_the_partner_channel(
    tmp_path: Path,
) -> None:
    customers, staff = Flaky(name="email"), Flaky(name="teams")
    store = Store(tmp_path / "n.sqlite3")
    handle = NotificationsHandler(
        store=store,
        channel=customers,
        partner_channel=staff,
        default_locale="zh-TW",
        clock=lambda: NOW,
    )
    out = await handle(rec(encode(EXAMPLES["access.failed"]), topic=ACCESS))
    assert outcome(out[0]).data.channel == "teams"
    assert [c[1] for c in staff.calls] == ["partner"]
    assert customers.calls == []
    row = store.delivery(outcome(out[0]).data.notice_id)
    assert row is not None
    assert row.locale == "zh-TW"

    upsert = EXAMPLES["customer.upserted"].model_copy(update={"customer_id": "contoso"})
    await handle(rec(encode(upsert), topic=CUSTOMERS))
    await handle(rec(request(), offset=2))
    assert [c[1] for c in customers.calls] == ["customer"]
    assert store.delivery("ntc-1") is not None
    assert store.delivery("ntc-1").locale == "en"  # type: ignore[union-attr]


async def test_a_customer_without_a_profile_gets_the_partners_default_locale(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "n.sqlite3")
    handle = NotificationsHandler(
        store=store, channel=Flaky(), default_locale="zh-TW", clock=lambda: NOW
    )
    await handle(rec(request(customer="unknown-co"), key=b"unknown-co"))
    row = store.delivery("ntc-1")
    assert row is not None
    assert row.locale == "zh-TW"


async def test_bad_facts_fail_with_their_path(h: Harness) -> None:
    out = await h.handle(rec(request(suspension_on="soon")))
    assert read_headers(out[1].headers)["field"] == "data.facts.suspension_on"


async def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    channel = Flaky(failures=2)
    h = Harness(tmp_path, channel)
    out = await h.handle(rec(request()))
    event = outcome(out[0])
    assert event.event_type == "notice.delivered"
    assert event.data.attempts == 3
    assert event.data.error == "451 try later"  # the last transient error, for the record
    assert h.sleeps == [0.5, 1.0]


async def test_a_channels_retry_after_is_honoured(tmp_path: Path) -> None:
    channel = Flaky(failures=2, message="429 slow down", retry_after=7.0)
    h = Harness(tmp_path, channel)
    assert outcome((await h.handle(rec(request())))[0]).event_type == "notice.delivered"
    assert h.sleeps == [7.0, 7.0]  # not the 0.5 and 1.0 of the backoff


async def test_exhausted_retries_fail_and_dead_letter(tmp_path: Path) -> None:
    channel = Flaky(failures=99)
    h = Harness(tmp_path, channel, attempts=4)
    out = await h.handle(rec(request()))
    failed = outcome(out[0])
    assert (failed.event_type, failed.data.attempts) == ("notice.failed", 4)
    assert h.sleeps == [0.5, 1.0, 2.0]
    assert out[1].topic == f"{REQUESTS}.dlq"
    assert "failed after" not in failed.data.error
    assert "451 try later" in failed.data.error
    row = h.store.delivery("ntc-1")
    assert row is not None
    assert row.status == "failed"


async def test_a_permanent_error_is_not_retried(tmp_path: Path) -> None:
    channel = Flaky(failures=1, retryable=False, message="550 no such mailbox a@b.example")
    h = Harness(tmp_path, channel)
    out = await h.handle(rec(request()))
    failed = outcome(out[0])
    assert failed.data.attempts == 1
    assert h.sleeps == []
    assert "a@b.example" not in failed.data.error  # no addresses in events or the DLQ
    assert "a@b.example" not in read_headers(out[1].headers)["reason"]


async def test_a_failed_notice_requested_again_is_tried_again(tmp_path: Path) -> None:
    channel = Flaky(failures=3)
    h = Harness(tmp_path, channel)
    assert outcome((await h.handle(rec(request(), offset=1)))[0]).event_type == "notice.failed"
    # Re-driven from the DLQ: a new record (new offset) with the same notice.
    out = await h.handle(rec(request(), offset=2))
    assert outcome(out[0]).event_type == "notice.delivered"


async def test_access_failed_becomes_a_staff_notice(h: Harness) -> None:
    raw = encode(EXAMPLES["access.failed"])
    out = await h.handle(rec(raw, topic=ACCESS))
    event = outcome(out[0])
    assert event.event_type == "notice.delivered"
    document = json.loads((h.outbox / f"{event.data.notice_id}.json").read_text("utf-8"))
    assert (document["kind"], document["audience"], document["locale"]) == (
        "access_failed",
        "partner",
        "en",
    )
    # The same access.failed again is the same notice: nothing new.
    assert await h.handle(rec(raw, topic=ACCESS, offset=1)) == []


async def test_access_drift_becomes_a_staff_notice(h: Harness) -> None:
    out = await h.handle(rec(encode(EXAMPLES["access.drift"]), topic=ACCESS))
    assert outcome(out[0]).event_type == "notice.delivered"


@pytest.mark.parametrize("event_type", ["access.suspended", "access.restored"])
async def test_applied_access_changes_are_logged_not_notified(h: Harness, event_type: str) -> None:
    event = EXAMPLES[event_type]
    assert await h.handle(rec(encode(event), topic=ACCESS)) == []
    assert [e["event_type"] for e in h.store.access_events(event.customer_id)] == [event_type]
    assert not h.outbox.exists()


async def test_malformed_bytes_are_a_contract_error_for_the_loop(h: Harness) -> None:
    with pytest.raises(ContractError):
        await h.handle(rec(b"\xff not json"))


async def test_an_event_on_the_wrong_topic_is_refused(h: Harness) -> None:
    with pytest.raises(Refused) as err:
        await h.handle(rec(encode(EXAMPLES["invoice.issued"])))
    assert err.value.field == "event_type"


async def test_a_customer_tombstone_forgets_the_customer(h: Harness) -> None:
    upsert = EXAMPLES["customer.upserted"]
    await h.handle(rec(encode(upsert), topic=CUSTOMERS, key=upsert.customer_id.encode()))
    assert h.store.customer(upsert.customer_id) is not None
    await h.handle(rec(None, topic=CUSTOMERS, key=upsert.customer_id.encode()))
    assert h.store.customer(upsert.customer_id) is None


async def test_a_tombstone_elsewhere_is_refused(h: Harness) -> None:
    with pytest.raises(Refused):
        await h.handle(rec(None))


async def test_outcomes_are_counted(h: Harness) -> None:
    await h.handle(rec(request(), offset=1))
    await h.handle(rec(request(), offset=2))
    await h.handle(rec(request(kind="carrier_pigeon", notice_id="ntc-2"), offset=3))
    text = h.metrics.render().decode()
    assert (
        'billstate_notices_total{channel="outbox",service="notifications",status="delivered"} 1.0'
        in text
    )
    assert 'status="duplicate"} 1.0' in text
    assert 'status="failed"} 1.0' in text
    assert 'billstate_messages_dead_lettered_total{service="notifications"' in text


def test_clean_error_scrubs_addresses_and_bounds_length() -> None:
    assert clean_error("rcpt  ap@contoso.example\nrefused") == "rcpt [email] refused"
    assert len(clean_error("x" * 5000)) == 500
    assert clean_error("   ") == "unknown error"
