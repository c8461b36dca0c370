"""Process entry point of the console service: `python -m billstate_console`."""

from __future__ import annotations

from billstate_console.config import Settings
from billstate_console.entrypoints.service import ConsoleService
from billstate_shared.runtime import service


def main() -> None:
    service.main(Settings(), ConsoleService)
