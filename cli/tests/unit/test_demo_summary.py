"""The demo summary's Guards section: what the engine's and the actuator's guards did, counted
from the records a run wrote (here built by hand, in the contracts' shapes)."""

from __future__ import annotations

from typing import Any

from billstate_cli.commands.demo import _is_saturday_tick
from billstate_cli.drive import group_topics
from billstate_cli.summary import CONSOLE_HINT, OUTPUTS, RunRecords, guards, summary
from billstate_shared.domain.ids import make_id

HOLIDAY_WHY = (
    "Entered suspended: invoice INV-c1-1 due 2026-02-06 is 24 days past due (stage starts at"
    " day 21); overdue USD 980.56 at or above the minimum; 10 days in final_notice (at least"
    " 7). Postponed until today: 2026-02-27 is a public holiday in TW (Peace Memorial Day"
    " (observed)); 2026-02-28 is a Saturday; 2026-03-01 is a Sunday."
)
PAYMENT_WHY = (
    "Entered suspended: invoice INV-c2-1 due 2026-02-10 is 23 days past due (stage starts at"
    " day 21); overdue USD 500.00 at or above the minimum; 9 days in final_notice (at least 7)."
    " Postponed until today: payment PAY-c2-1 of USD 500.00 expected by 2026-03-05."
)


def event(
    event_type: str, customer: str, data: dict[str, Any], day: str = "2026-03-02"
) -> dict[str, Any]:
    return {
        "event_id": f"{event_type}-{customer}-{len(data)}",
        "event_type": event_type,
        "occurred_at": f"{day}T09:00:00+08:00",
        "customer_id": customer,
        "data": data,
    }


def entered(customer: str, why: str, as_of: str) -> dict[str, Any]:
    return event(
        "collections.stage_entered",
        customer,
        {"stage": "suspended", "previous": "final_notice", "as_of": as_of, "why": {"text": why}},
    )


def parked(customer: str, command: str, n: int) -> dict[str, Any]:
    reason = f"{n}th suspension in 24 hours on builtin; the cap is 3"
    return event(
        "access.parked",
        customer,
        {"command_id": command, "subscription_ids": [f"S-{customer}"], "provider": "builtin",
         "guard": "brake", "reason": reason},
    )  # fmt: skip


def unparked(customer: str, command: str, outcome: str) -> dict[str, Any]:
    return event(
        "access.unparked",
        customer,
        {"command_id": command, "outcome": outcome, "by": "demo-operator", "reason": "ok"},
    )


def records() -> RunRecords:
    topics: dict[str, list[dict[str, Any]]] = {name: [] for name in OUTPUTS}
    topics["collections.events.v1"] = [
        entered("c1", HOLIDAY_WHY, "2026-03-02"),
        entered("c2", PAYMENT_WHY, "2026-03-03"),
        entered("c4", "Entered overdue: invoice INV-c4-1 is 1 day past due.", "2026-03-02"),
    ]
    topics["collections.state.v1"] = [
        event("collections.state", "c3", {"stage": "final_notice", "waiting": None}),
        event(
            "collections.state",
            "c3",
            {
                "stage": "final_notice",
                "waiting": "payment PAY-c3-1 of USD 10.00 expected by 2026-03-04",
            },
        ),
        event(
            "collections.state",
            "c2",
            {
                "stage": "final_notice",
                "waiting": "payment PAY-c2-1 of USD 500.00 expected by 2026-03-05",
            },
        ),
    ]
    batch = "brake-builtin-2026-12-03T12:00:00.000000"
    topics["access.events.v1"] = [
        parked("c5", "cmd-5", 5),
        parked("c4", "cmd-4", 4),
        parked("c6", "cmd-6", 6),
        event(
            "access.approval_needed",
            "c4",
            {
                "batch_id": batch,
                "guard": "brake",
                "count": 3,
                "customer_ids": ["c4", "c5", "c6"],
                "reason": "3 suspensions on builtin held back by the brake",
            },
        ),
        unparked("c4", "cmd-4", "approved"),
        unparked("c5", "cmd-5", "approved"),
        unparked("c6", "cmd-6", "cancelled"),
        event("access.suspended", "c4", {"command_id": "cmd-4", "subscription_id": "S-c4"}),
        event("access.suspended", "c5", {"command_id": "cmd-5", "subscription_id": "S-c5"}),
        event("access.suspended", "c9", {"command_id": "cmd-9", "subscription_id": "S-c9"}),
    ]
    topics["notifications.deliveries.v1"] = [
        event("notice.delivered", "c4", {"notice_id": make_id("ntc", "approval_needed", batch)}),
    ]
    inbound = [
        event("payment.pending", "c2", {"payment_id": "PAY-c2-1", "expected_by": "2026-03-05"}),
        event("payment.pending", "c3", {"payment_id": "PAY-c3-1", "expected_by": "2026-03-04"}),
        event("payment.failed", "c2", {"payment_id": "PAY-c2-1"}, day="2026-03-03"),
        event("payment.received", "c3", {"payment_id": "PAY-c3-1"}, day="2026-03-03"),
        event("clock.tick", "*", {}, day="2026-03-31"),
    ]
    return RunRecords(topics, {}, inbound=inbound)


def test_the_guards_section_counts_each_guard_with_an_example() -> None:
    lines = guards(records())

    assert lines[0] == "Guards"
    assert lines[1] == (
        "  Suspensions postponed by the business calendar: 1, e.g. c1 from 2026-02-27 to"
        " 2026-03-02: 2026-02-27 is a public holiday in TW (Peace Memorial Day (observed));"
        " 2026-02-28 is a Saturday; 2026-03-01 is a Sunday"
    )
    assert lines[2] == (
        "  Suspensions held back by a payment in flight: 2 (2 customers): 1 arrived, 1 failed"
    )
    assert lines[3] == (
        "    paid, so never suspended: 1; suspended once the wait ended (the why names the"
        " payment): 1"
    )
    assert lines[4] == (
        "    e.g. c3: payment PAY-c3-1 expected by 2026-03-04, arrived in time; no suspension"
    )
    assert lines[5] == (
        "  Suspensions parked at access-control: 3 by the brake, 0 by a silent payment feed;"
        " e.g. c4: 4th suspension in 24 hours on builtin; the cap is 3"
    )
    assert lines[6] == "  Approval notices: 1 (batches of 3), 1 delivered to staff"
    assert lines[7] == (
        "  Parked suspensions approved: 2 (2 then applied); cancelled because the customer paid"
        " first: 1 (c6); rejected: 0; still waiting: 0"
    )


def test_a_payment_in_flight_with_no_end_by_the_last_day_is_still_in_flight() -> None:
    run = records()
    run.inbound = [e for e in run.inbound if e["event_type"] != "payment.received"]
    run.inbound[-1] = event("clock.tick", "*", {}, day="2026-03-04")

    assert "1 failed, 1 still in flight" in guards(run)[2]
    run.inbound[-1] = event("clock.tick", "*", {}, day="2026-03-05")
    assert "1 failed, 1 lapsed" in guards(run)[2]


def test_without_guards_at_work_the_section_says_zero() -> None:
    empty = RunRecords({name: [] for name in OUTPUTS}, {})

    assert guards(empty) == [
        "Guards",
        "  Suspensions postponed by the business calendar: 0",
        "  Suspensions held back by a payment in flight: 0 (0 customers)",
        "  Suspensions parked at access-control: 0 by the brake, 0 by a silent payment feed",
        "  Approval notices: 0 (batches of none), 0 delivered to staff",
        (
            "  Parked suspensions approved: 0 (0 then applied); cancelled because the customer"
            " paid first: 0; rejected: 0; still waiting: 0"
        ),
    ]


def test_the_summary_shows_applied_access_apart_from_the_guards() -> None:
    text = summary(records(), "header")

    assert "Access applied by the provider: suspended 3\n" in text
    assert "\nGuards\n" in text


def test_the_summary_ends_naming_the_console_unless_it_starts_next() -> None:
    assert summary(records(), "header").splitlines()[-1] == (
        "See every customer's timeline and why in the console: make console"
    )
    assert CONSOLE_HINT not in summary(records(), "header", hint=None)


def test_the_operator_acts_before_saturdays_tick() -> None:
    saturday = {"event_type": "clock.tick", "occurred_at": "2026-03-07T09:00:00+08:00"}
    friday = {"event_type": "clock.tick", "occurred_at": "2026-03-06T09:00:00+08:00"}
    payment = {"event_type": "payment.received", "occurred_at": "2026-03-07T10:00:00+08:00"}

    assert _is_saturday_tick(saturday)
    assert not _is_saturday_tick(friday)
    assert not _is_saturday_tick(payment)


def test_settling_access_control_waits_on_its_group_topics_not_the_watched_feed() -> None:
    names = {t.name for t in group_topics("access-control")}

    # collections.events.v1: followed only while commitments are watched, never settled on.
    assert names == {"access.commands.v1", "access.approvals.v1"}
    assert "billing.payments.v1" in {t.name for t in group_topics("collections")}


def state(customer: str, stage: str, *money: tuple[str, str]) -> dict[str, Any]:
    exposure = [{"currency": c, "amount": a} for c, a in money]
    return event("collections.state", customer, {"stage": stage, "exposure": exposure})


def test_the_exposure_section_totals_per_stage_and_ranks_the_largest() -> None:
    topics: dict[str, list[dict[str, Any]]] = {name: [] for name in OUTPUTS}
    topics["collections.state.v1"] = [
        state("c1", "suspended", ("USD", "900.00")),
        state("c1", "suspended", ("USD", "1200.50"), ("EUR", "10.00")),  # the latest counts
        state("c2", "suspended", ("USD", "300.00")),
        state("c3", "overdue", ("EUR", "2000.00")),
        state("c4", "current"),
        *(state(f"d{n}", "reminder", ("USD", f"{n}.00")) for n in range(1, 6)),
    ]
    lines = summary(RunRecords(topics, {}), "run").splitlines()
    start = lines.index(
        "Exposure to Microsoft (billed to the partner for periods customers have not paid)"
    )
    assert lines[start + 1 : start + 11] == [
        "  overdue         EUR 2,000.00 (1 customers)",
        "  reminder        USD 15.00 (5 customers)",
        "  suspended       EUR 10.00, USD 1,500.50 (2 customers)",
        "  Largest 5:",
        "    c3           overdue         EUR 2,000.00",
        "    c1           suspended       USD 1,200.50, EUR 10.00",
        "    c2           suspended       USD 300.00",
        "    d5           reminder        USD 5.00",
        "    d4           reminder        USD 4.00",
        "",
    ]


def test_without_exposure_the_section_says_none() -> None:
    topics: dict[str, list[dict[str, Any]]] = {name: [] for name in OUTPUTS}
    topics["collections.state.v1"] = [state("c4", "current")]
    text = summary(RunRecords(topics, {}), "run")
    assert "Exposure to Microsoft" in text
    assert "not paid)\n  none\n" in text
