"""The `--policy FILE` every engine command takes: loaded once, or refused in one voice."""

from __future__ import annotations

import sys
from pathlib import Path

from billstate_shared.domain.policy import Policy
from billstate_shared.policy_file import PolicyError, load_policy

REFUSED_EXIT = 2


def policy_or_none(path: Path) -> Policy | None:
    """The policy at `path`; None after saying on stderr why it is refused (exit with 2)."""
    try:
        return load_policy(path)
    except PolicyError as err:
        print(f"refused policy: {err}", file=sys.stderr)
        return None
