"""`billstate plan --policy P --customer C EVENTS.jsonl`: one customer's future if unpaid."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from billstate_cli.plan import Plan, plan
from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import (
    UNREADABLE_EXIT,
    Replay,
    bad_lines_status,
    quiet_broken_pipe,
    replay_lines,
    unreadable,
)
from billstate_shared.contracts import CollectionsStateData
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import Refused


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plan",
        help="dated schedule of every notice and action for one customer if nothing is paid",
    )
    parser.add_argument("events", type=Path, help="JSONL file of inbound events")
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--customer", required=True, help="customer_id")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--allow-bad-lines",
        action="store_true",
        help="exit with 0 even if bad lines were skipped (default: exit status 3)",
    )
    parser.set_defaults(func=_run)


def _print_waits(s: CollectionsStateData, policy: Policy) -> None:
    for p in s.pending_payments:
        print(f"payment in flight: {p.payment_id} of {p.currency} {p.amount},"
              f" expected by {p.expected_by}")  # fmt: skip
    if s.waiting:
        print(f"the suspension waits: {s.waiting}")
    if policy.calendar.suspend_on == "business_days":
        print("suspensions happen on business days only: weekends and holidays are skipped")


def _run(args: argparse.Namespace) -> int:
    try:
        return _plan(args)
    except BrokenPipeError:  # `billstate plan ... | head`: the reader has what it wanted
        return quiet_broken_pipe()


def _plan(args: argparse.Namespace) -> int:
    if unreadable(args.policy, args.events):
        return UNREADABLE_EXIT
    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    replay = Replay(policy)
    with args.events.open("rb") as source:
        tally = replay_lines(replay, source, None, str(args.events))
    try:
        result = plan(replay, args.customer, replay.last_tick)
    except Refused as err:
        print(f"plan: {err.reason}", file=sys.stderr)
        bad_lines_status(tally, allowed=True)  # the count, if any: the customer may be on one
        return 1
    _print(result, policy, as_json=args.json)
    sys.stdout.flush()  # a closed pipe is found here, not at exit
    return bad_lines_status(tally, allowed=args.allow_bad_lines)


def _print(result: Plan, policy: Policy, *, as_json: bool) -> None:
    items = result.items()
    if as_json:
        doc = {
            "customer_id": result.customer_id,
            "state": result.state.model_dump(mode="json"),
            "schedule": items,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    s = result.state
    overdue = ", ".join(f"{m.currency} {m.amount}" for m in s.overdue) or "none"
    print(f"customer {result.customer_id}: stage {s.stage} as of {s.as_of}; overdue {overdue};"
          f" {s.days_past_due if s.days_past_due is not None else '-'} days past due;"
          f" suspended: {', '.join(s.suspended_subscription_ids) or 'none'}")  # fmt: skip
    _print_waits(result.state, policy)
    if not items:
        print("nothing further happens if nothing is paid")
        return
    print(f"if nothing is paid ({policy.name} v{policy.version}, dates in {policy.timezone}):")
    print(f"{'date':<11} {'what':<22} {'for':<9} detail")
    for row in items:
        detail = row.get("detail") or ""
        if "subscriptions" in row:
            detail = ", ".join(row["subscriptions"])
        elif row.get("suspension_on"):
            detail = f"says access can be suspended from {row['suspension_on']}"
        line = f"{row['date'] or '':<11} {row['what']:<22} {row.get('audience', ''):<9} {detail}"
        print(line.rstrip())
