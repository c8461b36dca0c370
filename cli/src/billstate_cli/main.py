"""The `billstate` command: one argparse tree, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers)`; it sets `func(args) -> int` on its parsers.
COMMANDS = (
    "contracts",
    "topics",
    "policy",
    "replay",
    "plan",
    "simulate",
    "clock",
    "demo",
    "hold",
    "dlq",
    "send",
    "costs",
    "recover",
    "access",
    "status",
    "doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billstate",
        description="Event-driven collections for cloud resellers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"billstate_cli.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


def run() -> None:
    sys.exit(main())
