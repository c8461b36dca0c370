"""Ledger events as values, replayable onto any ledger: what the ledger's property tests draw."""

from __future__ import annotations

from dataclasses import dataclass

from billstate_shared.domain.ledger import Ledger, Posting


@dataclass(frozen=True)
class Op:
    """One ledger event, replayable onto any ledger."""

    kind: str
    args: tuple[object, ...]
    keywords: tuple[tuple[str, object], ...] = ()

    def apply(self, ledger: Ledger) -> Posting:
        method = getattr(ledger, self.kind)
        posting: Posting = method(*self.args, **dict(self.keywords))
        return posting

    @property
    def key(self) -> tuple[str, object]:
        """What makes two events the same event (the ledger's dedupe key)."""
        return (self.kind, self.args[0])
