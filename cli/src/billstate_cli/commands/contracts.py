"""`billstate contracts`: publish the wire contracts' JSON Schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

from billstate_shared.contracts.schema import write_schemas


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "contracts",
        help="the wire contracts (JSON Schemas)",
        description="Work with billstate's v1 wire contracts.",
    )
    actions = parser.add_subparsers(dest="contracts_command", required=True, metavar="ACTION")
    schema = actions.add_parser(
        "schema",
        help="write one JSON Schema per event type, plus the union",
        description=(
            "Write <event_type>.schema.json for every event type and event.schema.json for "
            "any event into DIR. The output is byte-stable: regenerate and diff to review "
            "a contract change."
        ),
    )
    schema.add_argument("--out", required=True, type=Path, metavar="DIR", help="target folder")
    schema.set_defaults(func=_schema)


def _schema(args: argparse.Namespace) -> int:
    out: Path = args.out
    written = write_schemas(out)
    names = {path.name for path in written}
    # Left-over files from a removed event type would silently stay published otherwise.
    stale = sorted(p.name for p in out.glob("*.schema.json") if p.name not in names)
    print(f"wrote {len(written)} schema files to {out}")
    for name in stale:
        print(f"warning: {out / name} is not a current contract; delete it if it is ours")
    return 0
