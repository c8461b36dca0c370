"""`billstate replay --policy P EVENTS.jsonl`: every outbound event the system would produce."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import (
    UNREADABLE_EXIT,
    Replay,
    bad_lines_status,
    quiet_broken_pipe,
    replay_lines,
    unreadable,
)
from billstate_shared.contracts import EVENT_TYPES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="run the engine over a JSONL file of inbound events; print what it decides",
        description="Reads inbound events (one envelope per line, in order) and writes every "
        "outbound event the running system would produce, one per line, deterministically.",
    )
    parser.add_argument("events", type=Path, help="JSONL file of inbound events ('-' for stdin)")
    parser.add_argument("--policy", type=Path, required=True, help="the policy YAML file")
    parser.add_argument(
        "--only",
        type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
        help="print only these event types, comma-separated",
    )
    parser.add_argument(
        "--allow-bad-lines",
        action="store_true",
        help="exit with 0 even if bad lines were skipped (default: exit status 3)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return _replay(args)
    except BrokenPipeError:  # `billstate replay ... | head`: the reader has what it wanted
        return quiet_broken_pipe()


def _replay(args: argparse.Namespace) -> int:
    stdin = str(args.events) == "-"
    if unreadable(args.policy, *(() if stdin else (args.events,))):
        return UNREADABLE_EXIT
    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    only = set(args.only or ())
    unknown = only - set(EVENT_TYPES)
    if unknown:
        print(f"--only: unknown event types: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    replay = Replay(policy)
    source = sys.stdin.buffer if stdin else args.events.open("rb")
    out = sys.stdout.buffer
    with source:
        tally = replay_lines(replay, source, out, str(args.events), only)
    out.flush()
    return bad_lines_status(tally, allowed=args.allow_bad_lines)
