"""The embedded mode: invoicing's aging and collections' engine composed in-process, no Kafka."""

from __future__ import annotations

import gc
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from billstate_collections.domain.book import Book
from billstate_collections.domain.engine import step
from billstate_invoicing.domain.aging import Aging, Register, record
from billstate_shared.contracts import INBOUND_TYPES, ClockTick, Event, decode
from billstate_shared.contracts.outbound import Produced, to_bytes
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import Refused


@dataclass
class Replay:
    """What the running system would produce for a stream of inbound events, in order.

    Invoicing and collections each keep a ledger per customer in production; here they share
    one (the second application is a no-op duplicate), so memory grows with customers.
    """

    policy: Policy
    books: dict[str, Book] = field(default_factory=dict)
    registers: dict[str, Register] = field(default_factory=dict)
    aging: Aging = field(init=False)
    last_tick: datetime | None = None

    def __post_init__(self) -> None:
        self.aging = Aging(self.policy)

    def book(self, customer_id: str) -> Book:
        book = self.books.get(customer_id)
        if book is None:
            book = self.books[customer_id] = Book(customer_id)
            self.registers[customer_id] = Register(customer_id, ledger=book.ledger)
        return book

    def feed(self, event: Event) -> list[Produced]:
        if event.event_type not in INBOUND_TYPES:
            raise Refused(
                "event_type", f"{event.event_type} is not an inbound event type", event.event_type
            )
        if isinstance(event, ClockTick):
            if self.last_tick is None or event.occurred_at > self.last_tick:
                self.last_tick = event.occurred_at
            out: list[Produced] = []
            books, policy = self.books, self.policy
            for aged in self.aging.tick(event.occurred_at, self.registers.get):
                out.append(aged)
                more = step(books[aged.customer_id], aged, policy)
                if more:  # most aged events decide nothing
                    out.extend(more)
            return out
        book = self.book(event.customer_id)
        decided: list[Produced] = list(step(book, event, self.policy))
        record(self.aging, self.registers[event.customer_id], event)
        return decided

    def run(self, events: Iterable[Event]) -> Iterator[Produced]:
        for event in events:
            yield from self.feed(event)


# The books only grow and hold no reference cycles, yet every full collection of the cyclic
# garbage collector walks all of them: at 10,000 customers 30% of the replay's CPU time went to
# it, and its share grows with the number of customers. Moving what exists to the permanent
# generation every few thousand lines keeps the collector to the young objects (what the last
# lines made); `unfreeze` at the end hands everything back to it.
FREEZE_EVERY = 4096


@dataclass
class Tally:
    inbound: int = 0
    bad: int = 0
    produced: Counter[str] = field(default_factory=Counter)


# Exit statuses of `replay` and `plan` besides 0 (docs/replay.md "Exit status"); a refused
# policy, an unknown --only type or a wrong argument is 2.
UNREADABLE_EXIT = 1  # the events or the policy file cannot be opened
BAD_LINES_EXIT = 3  # the file was read, but bad lines were skipped (without --allow-bad-lines)
BROKEN_PIPE_EXIT = 141  # stdout's reader went away: 128 + SIGPIPE, as a shell reports `seq`


def cannot_open(path: Path) -> str | None:
    """Why `path` cannot be read, as the one line to print ("FILE: no such file"), or None."""
    try:
        with path.open("rb"):
            return None
    except FileNotFoundError:
        return f"{path}: no such file"
    except IsADirectoryError:
        return f"{path}: is a directory"
    except PermissionError:
        return f"{path}: permission denied"
    except OSError as err:
        return f"{path}: cannot read: {err.strerror or err}"


def unreadable(*paths: Path) -> bool:
    """Say on stderr which of `paths` cannot be read; True if any cannot."""
    problems = [p for p in map(cannot_open, paths) if p is not None]
    for problem in problems:
        print(problem, file=sys.stderr)
    return bool(problems)


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (`billstate replay ... | head -1`): stop without a
    traceback. Python flushes stdout once more at exit, which would fail again and print
    "Exception ignored"; stdout is pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass
    return BROKEN_PIPE_EXIT


def bad_lines_status(tally: Tally, *, allowed: bool) -> int:
    """After a run: the count of skipped lines on stderr, and the exit status it means."""
    if not tally.bad:
        return 0
    print(f"{tally.bad} bad line(s) skipped", file=sys.stderr)
    return 0 if allowed else BAD_LINES_EXIT


def replay_lines(
    replay: Replay,
    source: Iterable[bytes],
    out: BinaryIO | None,
    label: str,
    only: set[str] | None = None,
) -> Tally:
    """`billstate replay`'s loop: decode each line, feed it, write what it produced (or the
    `only` types of it; nothing when `out` is None, for a caller that wants only the state);
    a bad line is reported on stderr with its number and skipped."""
    tally = Tally()
    counts = tally.produced
    try:
        for number, line in enumerate(source, start=1):
            if not number % FREEZE_EVERY:
                gc.freeze()
            if not line.strip():
                continue
            # Refused (a ContractError, or not an inbound type) is a ValueError; so is any
            # other value the core refuses: the line is reported and skipped, never fatal.
            try:
                decided = replay.feed(decode(line))
            except ValueError as err:
                tally.bad += 1
                print(f"{label}:{number}: {err}", file=sys.stderr)
                continue
            tally.inbound += 1
            if not decided:
                continue
            counts.update([p.event_type for p in decided])  # Counter's C loop
            if out is None:
                continue
            # One write per input line: a tick decides hundreds of events.
            if only:
                decided = [p for p in decided if p.event_type in only]
                if not decided:
                    continue
            out.write(b"\n".join([to_bytes(p) for p in decided]))
            out.write(b"\n")
    finally:
        gc.unfreeze()
    return tally
