"""The contracts' extremes through `billstate replay`'s loop: the earliest and latest dates and
times in the widest offsets, the largest amounts (many of them, so their sums are large too),
the longest strings in the widest characters and the longest lists. Nothing raises, no input
line is refused, and every output is valid against its own contract."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billstate_cli.replay import Replay, replay_lines
from billstate_shared.contracts import decode, encode
from billstate_shared.contracts.types import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_HOLDS,
    MAX_ID,
    MAX_INPUT_AMOUNT,
    MAX_LABEL,
    MAX_SUBSCRIPTION_ID,
    MAX_SUBSCRIPTIONS,
    MAX_TAG,
    MAX_TAGS,
    MAX_TEXT,
)
from billstate_shared.policy_file import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[3] / "policies" / "standard.yaml")
WIDE = "\U0001d518"  # four bytes in UTF-8
BIG = str(MAX_INPUT_AMOUNT)

_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_days = st.sampled_from(
    [
        EARLIEST_DATE,
        EARLIEST_DATE + timedelta(days=1),
        LATEST_DATE - timedelta(days=45),
        LATEST_DATE - timedelta(days=1),
        LATEST_DATE,
    ]
) | st.dates(EARLIEST_DATE, LATEST_DATE)
_amounts = st.sampled_from([BIG, "0.0001", "1", "999999999999", "5.00"])


FIRST = datetime(2000, 1, 2, tzinfo=UTC)  # the earliest and latest instants a timestamp takes
LAST = datetime(2199, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


def _moment(day: date, zone: timezone, *, end: bool) -> datetime:
    """A time on `day` in `zone`: its first or last instant, kept to the timestamp range."""
    clock = (23, 59, 59, 999999) if end else (0, 0, 0, 0)
    moment = datetime(day.year, day.month, day.day, *clock, tzinfo=zone)
    return max(FIRST, min(LAST, moment)).astimezone(zone)


def _id(prefix: str, n: int) -> str:
    return prefix + str(n) + WIDE * (MAX_ID - len(prefix) - len(str(n)))


def _subs(n: int) -> list[str]:
    return [f"s{i}-".ljust(MAX_SUBSCRIPTION_ID, "~") for i in range(n)]


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One customer's inbound events, ticks included, in the order they are fed."""
    customer = "C" * 64
    zone = draw(_offsets)
    first = draw(_days)
    events: list[dict[str, Any]] = []
    counter = iter(range(10_000))

    def emit(event_type: str, at: datetime, data: dict[str, Any], who: str = customer) -> None:
        events.append(
            {
                "event_id": _id("e", next(counter)),
                "event_type": event_type,
                "occurred_at": at.isoformat(),
                "customer_id": who,
                "data": data,
            }
        )

    at = _moment(first, zone, end=draw(st.booleans()))
    subs = _subs(draw(st.sampled_from([1, MAX_SUBSCRIPTIONS])))
    emit(
        "customer.upserted",
        at,
        {
            "name": WIDE * MAX_TEXT,
            "locale": "zh-TW",
            "billing_email": "ap@example.com",
            "partner_contact_email": "am@example.com",
            "tags": [f"t{i}".ljust(MAX_TAG, "x") for i in range(MAX_TAGS)],
            "subscription_ids": subs,
        },
    )
    invoices = draw(st.integers(1, 40))
    currencies = draw(st.lists(st.sampled_from(["USD", "EUR", "JPY", "KWD"]), min_size=1))
    for n in range(invoices):
        issued = draw(_days)
        due = draw(st.dates(issued, min(LATEST_DATE, issued + timedelta(days=400))))
        invoice = _id("I", n)
        emit(
            "invoice.issued",
            at,
            {
                "invoice_id": invoice,
                "currency": currencies[n % len(currencies)],
                "amount": draw(_amounts),
                "issued_on": issued.isoformat(),
                "due_on": due.isoformat(),
                "subscription_ids": subs,
            },
        )
        if draw(st.booleans()):
            emit(
                "invoice.adjusted",
                at,
                {
                    "invoice_id": invoice,
                    "amount_delta": draw(st.sampled_from([BIG, f"-{BIG}", "-0.0001"])),
                    "reason": WIDE * MAX_TEXT,
                },
            )
        if draw(st.integers(0, 4)) == 0:
            emit(
                "payment.received",
                at,
                {
                    "payment_id": _id("P", n),
                    "currency": currencies[n % len(currencies)],
                    "amount": draw(_amounts),
                    "invoice_id": draw(st.sampled_from([invoice, None, _id("X", n)])),
                },
            )
    for n in range(draw(st.integers(0, MAX_HOLDS))):
        kind = draw(st.sampled_from(["dispute", "promise_to_pay", "manual"]))
        data: dict[str, Any] = {
            "hold_id": _id("H", n),
            "kind": kind,
            "reason": WIDE * MAX_TEXT,
            "by": WIDE * MAX_LABEL,
        }
        if kind == "dispute":
            data |= {"invoice_id": _id("I", n % invoices), "amount": draw(_amounts)}
        if kind == "promise_to_pay":
            data["until"] = draw(_days).isoformat()
        emit("hold.placed", at, data)
        if draw(st.booleans()):
            emit("hold.released", at, {"hold_id": _id("H", n), "reason": "", "by": "o"})
    emit("payment.failed", at, {"invoice_id": None, "reason": WIDE * MAX_TEXT, "will_retry": True})
    # Ticks: the day after the start, then jumps to the ends of the range, in both offsets.
    ticks = sorted(
        {
            _moment(day, tz, end=end)
            for day in [*draw(st.lists(_days, max_size=6)), LATEST_DATE]
            for tz in (zone, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)))
            for end in (False, True)
        }
    )
    for moment in ticks:
        emit("clock.tick", moment, {}, who="*")
    return events


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories())
def test_extremes_go_through_replay_and_every_output_fits_its_contract(
    history: list[dict[str, Any]],
) -> None:
    lines = [json.dumps(event, ensure_ascii=False).encode() for event in history]
    out = io.BytesIO()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        tally = replay_lines(Replay(POLICY), lines, out, "extremes")
    assert tally.bad == 0, errors.getvalue()
    assert tally.inbound == len(lines)
    produced = out.getvalue().splitlines()
    assert len(produced) == sum(tally.produced.values())
    for line in produced:
        event = decode(line)  # the output is valid against its own contract
        assert decode(encode(event)) == event


def test_the_largest_amounts_summed_many_times_still_fit_outputs() -> None:
    """Two hundred invoices of the largest amount, unpaid for years: the overdue sum in every
    output is far above the input ceiling and still valid money."""
    customer, zone = "big", timezone(timedelta(hours=14))
    at = FIRST
    lines = []
    for n in range(200):
        data = {
            "invoice_id": f"I-{n}",
            "currency": "USD",
            "amount": BIG,
            "issued_on": "2000-01-01",
            "due_on": "2000-01-02",
            "subscription_ids": _subs(MAX_SUBSCRIPTIONS),
        }
        event = {
            "event_id": f"e-{n}",
            "event_type": "invoice.issued",
            "occurred_at": at.isoformat(),
            "customer_id": customer,
            "data": data,
        }
        lines.append(json.dumps(event).encode())
    for day in (date(2000, 1, 3), date(2000, 3, 1), date(2199, 12, 31)):
        tick = {
            "event_id": f"t-{day}",
            "event_type": "clock.tick",
            "occurred_at": _moment(day, zone, end=True).isoformat(),
            "customer_id": "*",
            "data": {},
        }
        lines.append(json.dumps(tick).encode())
    out = io.BytesIO()
    tally = replay_lines(Replay(POLICY), lines, out, "big")
    assert tally.bad == 0
    assert tally.produced["access.suspend"] == 1
    overdue = [
        decode(line).data.overdue  # type: ignore[union-attr]
        for line in out.getvalue().splitlines()
        if b'"collections.stage_entered"' in line
    ]
    assert overdue
    assert overdue[-1][0].amount == MAX_INPUT_AMOUNT * 200


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_the_engine_cannot_carry_is_refused_at_the_border(occurred_at: str) -> None:
    tick = {
        "event_id": "t",
        "event_type": "clock.tick",
        "occurred_at": occurred_at,
        "customer_id": "*",
        "data": {},
    }
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        tally = replay_lines(Replay(POLICY), [json.dumps(tick).encode()], io.BytesIO(), "t")
    assert tally.bad == 1
    assert "occurred_at" in errors.getvalue()
