"""Books stored by earlier code load unchanged; what a book keeps stays bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from billstate_collections.domain.book import Book, Window
from billstate_collections.domain.book_state import dump_book, load_book
from billstate_shared.domain.ledger import Ledger
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[4]
STORED = Path(__file__).parent / "fixtures" / "books-stored-before-pruning.json"


def _window(w: Window) -> list[Any]:
    return [sorted((k, str(at)) for k, at in w.ids.items()), str(w.floor)]


def _ledger(ledger: Ledger) -> dict[str, Any]:
    return {
        "invoices": {
            i.invoice_id: [i.currency, str(i.amount), str(i.issued_on), str(i.due_on),
                           list(i.subscription_ids), str(i.adjustment), i.voided, str(i.open),
                           str(i.billed)]
            for i in ledger.invoices.values()
        },
        "payments": {
            p.payment_id: [p.currency, str(p.amount), p.invoice_id, str(p.received_at),
                           p.reversed]
            for p in ledger.payments.values()
        },
        "credit": {c: str(ledger.credit(c)) for c in ledger.currencies()},
        "open": [i.invoice_id for i in ledger.open_invoices()],
    }  # fmt: skip


def summary(book: Book) -> dict[str, Any]:
    """What a loaded book holds that a decision can read, as plain data."""
    return {
        "customer_id": book.customer_id,
        "ledger": _ledger(book.ledger),
        "profile": None if book.profile is None else repr(
            (book.profile.locale, sorted(book.profile.tags), book.profile.subscription_ids,
             book.profile.timezone)),
        "stage": book.stage,
        "entered_on": str(book.entered_on),
        "as_of": str(book.as_of),
        "suspended": list(book.suspended),
        "holds": sorted(repr(h) for h in book.holds.values()),
        "released": _window(book.released),
        "reminded": sorted(book.reminded),
        "seen": _window(book.seen),
        "transitions": book.transitions,
        "sequence_base": book.sequence_base,
        "pending": sorted(repr(p) for p in book.pending.values()),
        "waited": list(book.waited),
        "version": book.version,
        "policy_version": book.policy_version,
        "costs": sorted(repr(c) for c in book.costs.values()),
        "alerted": [list(book.alerted), book.episode],
    }  # fmt: skip


def test_books_stored_before_pruning_load_unchanged() -> None:
    stored = json.loads(STORED.read_text())
    policy = load_policy(ROOT / stored["policy"])
    for case in stored["books"]:
        book = load_book(case["stored"], policy)
        assert json.loads(json.dumps(summary(book))) == case["summary"]
        # and what is stored now loads to the same book again
        again = load_book(json.loads(json.dumps(dump_book(book, policy))), policy)
        assert summary(again) == summary(book)


def _replay(customers: int, days: int, *, reload: bool = False) -> tuple[Any, list[bytes]]:
    """A simulated history through `billstate replay`'s composition; with `reload`, every
    book is stored and loaded again after each event, as a worker without a cache would."""
    from billstate_cli.replay import Replay
    from billstate_cli.simulation import history
    from billstate_shared.contracts import decode
    from billstate_shared.contracts.outbound import to_bytes

    policy = load_policy(ROOT / "policies" / "standard.yaml")
    replay = Replay(policy)
    out: list[bytes] = []
    for envelope in history(customers, days, 11, timezone=policy.timezone):
        out.extend(to_bytes(o) for o in replay.feed(decode(json.dumps(envelope).encode())))
        if reload:
            for customer_id, book in replay.books.items():
                again = load_book(json.loads(json.dumps(dump_book(book, policy))), policy)
                replay.books[customer_id] = again
                replay.registers[customer_id].ledger = again.ledger
    return replay, out


def test_a_book_stored_and_loaded_after_every_event_decides_the_same() -> None:
    _, live = _replay(6, 900)
    reloaded, stored = _replay(6, 900, reload=True)
    assert stored == live
    assert any(book.ledger.past.ids for book in reloaded.books.values())  # it did forget


def test_every_book_stays_under_4_kb_after_five_years() -> None:
    replay, _ = _replay(100, 5 * 365)
    policy = replay.policy
    sizes = [len(json.dumps(dump_book(b, policy), separators=(",", ":")).encode())
             for b in replay.books.values()]  # fmt: skip
    assert max(sizes) < 4096
