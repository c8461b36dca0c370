"""`billstate policy validate|explain|diff`: check a policy file, render it for customers, or
back-test a change (policy_diff.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from billstate_cli import policy_diff
from billstate_cli.explain import LOCALES, explain
from billstate_shared.domain.policy import Policy
from billstate_shared.policy_file import PolicyError, load_policy


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="the collections policy file: validate, explain, diff")
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")

    validate = actions.add_parser(
        "validate", help="check a policy file; errors name the line (exit 1)"
    )
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.set_defaults(func=_validate)

    explainer = actions.add_parser(
        "explain", help="render the customer-facing collections policy (Markdown)"
    )
    explainer.add_argument("file", type=Path, metavar="FILE")
    explainer.add_argument("--locale", required=True, choices=LOCALES)
    explainer.add_argument("--out", type=Path, metavar="FILE", help="write here, not to stdout")
    explainer.set_defaults(func=_explain)

    policy_diff.register(actions)


def _load(file: Path) -> Policy | None:
    try:
        return load_policy(file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return 1
    day = earliest_suspension_day(policy)
    suspends = "never suspends" if day is None else f"suspends at day {day}"
    stages = f"{len(policy.stages)} stage{'' if len(policy.stages) == 1 else 's'}"
    print(f"{args.file}: ok: {policy.name} v{policy.version}, {stages}, {suspends}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return 1
    text = explain(policy, args.locale)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{args.out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def earliest_suspension_day(policy: Policy) -> int | None:
    """Days past due at which the suspend stage is first reachable, or None if none suspends.

    The `min_days_in_previous` gates can push a stage past its own `days_past_due`, so the day
    is the later of the two, stage by stage. The first stage's gate counts time spent current,
    which is not tied to the due date, so it cannot delay the first stage here.
    """
    suspend_at = policy.suspend_stage_index
    if suspend_at is None:
        return None
    day = policy.stages[0].days_past_due
    for stage in policy.stages[1 : suspend_at + 1]:
        day = max(stage.days_past_due, day + stage.min_days_in_previous)
    return day
