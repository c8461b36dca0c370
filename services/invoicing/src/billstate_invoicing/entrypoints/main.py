"""Process entry point of the invoicing service: `python -m billstate_invoicing`."""

from __future__ import annotations

from billstate_invoicing.config import Settings
from billstate_invoicing.entrypoints.worker import build
from billstate_shared.runtime.faustkit import serve


def main() -> None:
    serve(Settings(), "registers", build)
