"""Process entry point of the collections service: `python -m billstate_collections`."""

from __future__ import annotations

from billstate_collections.config import Settings
from billstate_collections.entrypoints.policy_check import accept
from billstate_collections.entrypoints.worker import build
from billstate_shared.runtime.faustkit import serve


def main() -> None:
    serve(Settings(), "books", build, accept)
