"""Process entry point of the access-control service: `python -m billstate_access_control`."""

from __future__ import annotations

from billstate_access_control.config import Settings
from billstate_access_control.entrypoints.service import AccessControl
from billstate_shared.runtime.service import main as run_service


def main() -> None:
    """Read the settings once, then run until SIGTERM or SIGINT."""
    run_service(Settings(), AccessControl)
