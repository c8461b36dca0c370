"""`billstate policy diff OLD NEW --history EVENTS`: the back-test of a policy change.

The history is replayed under both policies with the engine `billstate replay` runs
(`Replay`, `replay_lines`); what each run decides for a customer is kept as dated facts
(suspensions and restores per subscription, notices, stages), and the two are compared
customer by customer. Nothing here decides anything: it only records and compares.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import (
    UNREADABLE_EXIT,
    Replay,
    Tally,
    bad_lines_status,
    quiet_broken_pipe,
    replay_lines,
    unreadable,
)
from billstate_collections.domain.exposure import exposure, money
from billstate_shared.contracts import Event, EventBase
from billstate_shared.contracts.outbound import Outbound, Produced
from billstate_shared.domain.policy import CURRENT, Accepted, Policy, digest, refuse_change

__all__ = [
    "Comparison",
    "CustomerDiff",
    "Outcome",
    "Recorder",
    "align",
    "compare",
    "register",
    "run_history",
    "text",
]

RECORDED: Final = frozenset(
    {"access.suspend", "access.restore", "notice.requested", "collections.stage_entered"}
)

Change = Literal["added", "removed", "moved"]


# --- what one run decided for one customer ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    on: date
    kind: str
    audience: str
    suspension_on: str | None  # the date the notice announces, as written in its facts


@dataclass(slots=True)
class Outcome:
    """One customer's outcome under one policy: what was done and said, and when."""

    suspensions: dict[str, list[date]] = field(default_factory=lambda: defaultdict(list))
    restores: dict[str, list[date]] = field(default_factory=lambda: defaultdict(list))
    notices: list[Notice] = field(default_factory=list)
    highest: tuple[int, str] = (-1, CURRENT)  # (index in its policy, name)
    final: str = CURRENT
    suspended: set[str] = field(default_factory=set)  # at the end of the history


@dataclass
class Recorder(Replay):
    """A `Replay` that also keeps, per customer, the outcome of what it decides."""

    outcomes: dict[str, Outcome] = field(default_factory=lambda: defaultdict(Outcome))

    def feed(self, event: Event) -> list[Produced]:
        decided = super().feed(event)
        for produced in decided:
            if produced.event_type in RECORDED:
                self._record(produced)
        return decided

    def _record(self, produced: Produced) -> None:
        data = _data(produced)
        customer_id = produced.customer_id
        outcome = self.outcomes[customer_id]
        kind = produced.event_type
        if kind == "collections.stage_entered":
            name = str(data["stage"])
            outcome.final = name
            index = self.policy.stage_index(name)
            if index is not None and index > outcome.highest[0]:
                outcome.highest = (index, name)
            return
        if kind == "notice.requested":
            facts = data.get("facts") or {}
            on = facts.get("as_of")
            outcome.notices.append(
                Notice(
                    date.fromisoformat(on) if isinstance(on, str) else self._today(produced),
                    str(data["kind"]),
                    str(data["audience"]),
                    _text_or_none(facts.get("suspension_on")),
                )
            )
            return
        on = self._today(produced)
        subscriptions = [str(s) for s in data["subscription_ids"]]
        if kind == "access.suspend":
            outcome.suspended.update(subscriptions)
            dated = outcome.suspensions
        else:
            outcome.suspended.difference_update(subscriptions)
            dated = outcome.restores
        for subscription in subscriptions:
            dated[subscription].append(on)

    def _today(self, produced: Produced) -> date:
        """The business date of a decision that carries none (an access command): the
        customer's book's, which a tick set before deciding; else the date of the event."""
        book = self.books.get(produced.customer_id)
        if book is not None and book.as_of is not None:
            return book.as_of
        return produced.occurred_at.astimezone(self.policy.zone).date()


def _data(produced: Produced) -> Mapping[str, Any]:
    """The JSON-ready `data` of a decision: the engine's light form, or a model's dump."""
    if isinstance(produced, Outbound):
        return produced.data
    model = produced if isinstance(produced, EventBase) else produced.model()
    data = model.model_dump(mode="json")["data"]
    assert isinstance(data, dict)
    return data


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


# --- the comparison -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moved:
    """Access commands of some subscriptions: added (old None), removed (new None) or moved."""

    change: Change
    old: date | None
    new: date | None
    subscription_ids: tuple[str, ...]

    @property
    def days(self) -> int | None:
        if self.old is None or self.new is None:
            return None
        return (self.new - self.old).days

    def as_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "from": _iso(self.old),
            "to": _iso(self.new),
            "days": self.days,
            "subscription_ids": list(self.subscription_ids),
        }


@dataclass(frozen=True, slots=True)
class NoticeChange:
    change: Literal["added", "removed"]
    on: date
    kind: str
    audience: str

    def as_json(self) -> dict[str, Any]:
        return {"change": self.change, "on": self.on.isoformat(), "kind": self.kind,
                "audience": self.audience}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageMove:
    """Where NEW's `migrate` map puts a customer whose last stage under OLD NEW lacks."""

    old: str
    new: str | None  # None: no mapping, a worker would refuse NEW

    def as_json(self) -> dict[str, Any]:
        return {"from": self.old, "to": self.new, "refused": self.new is None}


@dataclass(frozen=True, slots=True)
class CustomerDiff:
    customer_id: str
    old: Outcome
    new: Outcome
    suspensions: tuple[Moved, ...]
    restores: tuple[Moved, ...]
    notices: tuple[NoticeChange, ...]
    stage_move: StageMove | None
    redated: int  # notices both send whose announced suspension date differs
    # At the end of the history, the same under both policies (docs/policy.md "Exposure"):
    # what the partner has at stake with the customer, as the contracts' money list.
    exposure: tuple[dict[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(
            self.suspensions
            or self.restores
            or self.notices
            or self.stage_move is not None
            or self.old.highest[1] != self.new.highest[1]
            or self.old.final != self.new.final
            or self.old.suspended != self.new.suspended
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "old": _outcome_json(self.old),
            "new": _outcome_json(self.new),
            "suspensions": [m.as_json() for m in self.suspensions],
            "restores": [m.as_json() for m in self.restores],
            "notices": [n.as_json() for n in self.notices],
            "notices_redated": self.redated,
            "stage_move": None if self.stage_move is None else self.stage_move.as_json(),
            "exposure": list(self.exposure),
        }


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "highest_stage": outcome.highest[1],
        "final_stage": outcome.final,
        "suspended": sorted(outcome.suspended),
    }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def align(old: Sequence[date], new: Sequence[date]) -> list[tuple[date | None, date | None]]:
    """Pair one subscription's dated commands of two runs, in order: as many pairs as the
    order allows, then the least total shift; what stays unpaired was added or removed."""
    a, b = sorted(old), sorted(new)
    # cost[i][j]: (unpaired, total shift) of the best alignment of a[i:] and b[j:];
    # step[i][j]: its first step, "pair", "old" (a[i] unpaired) or "new" (b[j] unpaired).
    cost = [[(0, 0)] * (len(b) + 1) for _ in range(len(a) + 1)]
    step = [[""] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a), -1, -1):
        for j in range(len(b), -1, -1):
            options: list[tuple[tuple[int, int], str]] = []
            if i < len(a) and j < len(b):
                unpaired, shift = cost[i + 1][j + 1]
                options.append(((unpaired, shift + abs((b[j] - a[i]).days)), "pair"))
            if i < len(a):
                unpaired, shift = cost[i + 1][j]
                options.append(((unpaired + 1, shift), "old"))
            if j < len(b):
                unpaired, shift = cost[i][j + 1]
                options.append(((unpaired + 1, shift), "new"))
            if options:
                cost[i][j], step[i][j] = min(options, key=lambda option: option[0])
    pairs: list[tuple[date | None, date | None]] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if step[i][j] == "pair":
            pairs.append((a[i], b[j]))
            i, j = i + 1, j + 1
        elif step[i][j] == "old":
            pairs.append((a[i], None))
            i += 1
        else:
            pairs.append((None, b[j]))
            j += 1
    return pairs


def _moves(old: Mapping[str, list[date]], new: Mapping[str, list[date]]) -> tuple[Moved, ...]:
    grouped: dict[tuple[Change, date | None, date | None], list[str]] = defaultdict(list)
    for subscription in sorted(old.keys() | new.keys()):
        for before, after in align(old.get(subscription, ()), new.get(subscription, ())):
            if before == after:
                continue
            change: Change = "added" if before is None else "removed" if after is None else "moved"
            grouped[change, before, after].append(subscription)
    moves = [Moved(c, before, after, tuple(subs)) for (c, before, after), subs in grouped.items()]
    moves.sort(key=lambda m: (m.old or m.new or date.min, m.new or date.min, m.subscription_ids))
    return tuple(moves)


def _notice_changes(
    old: Iterable[Notice], new: Iterable[Notice]
) -> tuple[tuple[NoticeChange, ...], int]:
    before: dict[tuple[date, str, str], list[Notice]] = defaultdict(list)
    after: dict[tuple[date, str, str], list[Notice]] = defaultdict(list)
    for n in old:
        before[n.on, n.kind, n.audience].append(n)
    for n in new:
        after[n.on, n.kind, n.audience].append(n)
    changes: list[NoticeChange] = []
    redated = 0
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key, []), after.get(key, [])
        redated += sum(x.suspension_on != y.suspension_on for x, y in zip(was, now, strict=False))
        on, kind, audience = key
        changes.extend(NoticeChange("removed", on, kind, audience) for _ in was[len(now) :])
        changes.extend(NoticeChange("added", on, kind, audience) for _ in now[len(was) :])
    return tuple(changes), redated


def _stage_move(final: str, new_policy: Policy) -> StageMove | None:
    if new_policy.stage_index(final) is not None:
        return None
    return StageMove(final, new_policy.migrate.get(final))


def compare_customer(
    customer_id: str, old: Outcome, new: Outcome, new_policy: Policy
) -> CustomerDiff:
    notices, redated = _notice_changes(old.notices, new.notices)
    return CustomerDiff(
        customer_id,
        old,
        new,
        _moves(old.suspensions, new.suspensions),
        _moves(old.restores, new.restores),
        notices,
        _stage_move(old.final, new_policy),
        redated,
    )


@dataclass(frozen=True, slots=True)
class Side:
    file: str
    policy: Policy

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "policy": self.policy.name, "version": self.policy.version}

    @property
    def label(self) -> str:
        return f"{self.policy.name} v{self.policy.version} ({self.file})"


@dataclass(frozen=True, slots=True)
class Comparison:
    old: Side
    new: Side
    history: str
    events: int
    bad_lines: int
    compared: int
    customers: tuple[CustomerDiff, ...]  # the changed ones, by customer id
    redated: int  # over every customer, changed or not
    refused: str | None  # why a worker running OLD would refuse NEW, or None

    def totals(self) -> dict[str, Any]:
        counts: Counter[tuple[str, str]] = Counter()
        for c in self.customers:
            for what, moves in (("suspensions", c.suspensions), ("restores", c.restores)):
                for m in moves:
                    counts[what, _direction(m)] += len(m.subscription_ids)
            for n in c.notices:
                counts["notices", n.change] += 1
            if c.stage_move is not None:
                mapped = "unmapped" if c.stage_move.new is None else "mapped"
                counts["stage_moves", mapped] += 1
        directions = ("added", "removed", "moved_earlier", "moved_later")
        return {
            "customers_compared": self.compared,
            "customers_changed": len(self.customers),
            "suspensions": {d: counts["suspensions", d] for d in directions},
            "restores": {d: counts["restores", d] for d in directions},
            "notices": {
                "added": counts["notices", "added"],
                "removed": counts["notices", "removed"],
                "redated": self.redated,
            },
            "stage_moves": {
                "mapped": counts["stage_moves", "mapped"],
                "unmapped": counts["stage_moves", "unmapped"],
            },
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "old": self.old.as_json(),
            "new": self.new.as_json(),
            "history": {"file": self.history, "events": self.events, "bad_lines": self.bad_lines},
            "deploy": {"accepted": self.refused is None, "reason": self.refused},
            "totals": self.totals(),
            "customers": [c.as_json() for c in self.customers],
        }


def _direction(m: Moved) -> str:
    if m.change != "moved":
        return m.change
    return "moved_later" if (m.days or 0) > 0 else "moved_earlier"


def compare(
    old: Side, new: Side, runs: tuple[Recorder, Recorder], *, history: str, tally: Tally
) -> Comparison:
    """The changed customers, the totals' parts and the deploy check of two runs."""
    old_run, new_run = runs
    empty = Outcome()
    customers = sorted(old_run.books.keys() | new_run.books.keys())
    diffs = [
        compare_customer(
            c, old_run.outcomes.get(c, empty), new_run.outcomes.get(c, empty), new.policy
        )
        for c in customers
    ]
    for i, d in enumerate(diffs):
        book = old_run.books.get(d.customer_id)
        if d.changed and book is not None and book.costs:
            diffs[i] = replace(d, exposure=tuple(money(exposure(book))))
    accepted = Accepted(
        old.policy.name,
        old.policy.version,
        digest(old.policy),
        tuple(s.name for s in old.policy.stages),
    )
    return Comparison(
        old,
        new,
        history,
        tally.inbound,
        tally.bad,
        len(customers),
        tuple(d for d in diffs if d.changed),
        sum(d.redated for d in diffs),
        refuse_change(accepted, new.policy),
    )


# --- running it -----------------------------------------------------------------------------


def run_history(policy: Policy, history: Path) -> tuple[Recorder, Tally, list[str]]:
    """Replay `history` under `policy`; the run and the bad lines' reports (not printed)."""
    recorder = Recorder(policy)
    reports = io.StringIO()
    with history.open("rb") as source, redirect_stderr(reports):
        tally = replay_lines(recorder, source, None, str(history))
    return recorder, tally, reports.getvalue().splitlines()


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "diff",
        help="back-test a policy change: replay a history under OLD and NEW, report who changes",
        description="Replays the history under both policies and reports, per customer whose "
        "outcome changes, the suspensions, restores, notices and stages that differ.",
    )
    parser.add_argument("old", type=Path, metavar="OLD.yaml", help="the policy running now")
    parser.add_argument("new", type=Path, metavar="NEW.yaml", help="the candidate policy")
    parser.add_argument(
        "--history", type=Path, required=True, metavar="EVENTS.jsonl",
        help="JSONL file of inbound events, as for billstate replay",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--allow-bad-lines", action="store_true",
        help="exit with 0 even if bad history lines were skipped (default: exit status 3)",
    )  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return _diff(args)
    except BrokenPipeError:  # `billstate policy diff ... | head`: the reader has what it wanted
        return quiet_broken_pipe()


def _diff(args: argparse.Namespace) -> int:
    history: Path = args.history
    if unreadable(args.old, args.new, history):
        return UNREADABLE_EXIT
    old_policy = policy_or_none(args.old)
    if old_policy is None:
        return REFUSED_EXIT
    new_policy = policy_or_none(args.new)
    if new_policy is None:
        return REFUSED_EXIT
    old_run, tally, old_bad = run_history(old_policy, history)
    new_run, _, new_bad = run_history(new_policy, history)
    # The lines are decoded the same way under both policies; say each bad one once.
    seen = set(old_bad)
    for line in old_bad + [line for line in new_bad if line not in seen]:
        print(line, file=sys.stderr)
    comparison = compare(
        Side(str(args.old), old_policy), Side(str(args.new), new_policy),
        (old_run, new_run), history=str(history), tally=tally,
    )  # fmt: skip
    if args.json:
        print(json.dumps(comparison.as_json(), indent=2, ensure_ascii=False))
    elif sys.stdout.isatty():
        _rich(comparison)
    else:
        sys.stdout.write(text(comparison))
    sys.stdout.flush()  # a closed pipe is found here, not at exit
    return bad_lines_status(tally, allowed=args.allow_bad_lines)


# --- rendering ------------------------------------------------------------------------------


def _subs(ids: Sequence[str]) -> str:
    return ", ".join(ids) or "none"


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


def _exposure(c: CustomerDiff) -> str:
    return ", ".join(f"{m['currency']} {m['amount']}" for m in c.exposure)


def describe(c: CustomerDiff) -> list[str]:
    """One line per change of a customer, in plain words."""
    lines: list[str] = []
    if c.old.suspended != c.new.suspended:
        lines.append(
            f"suspended at the end: {_subs(sorted(c.old.suspended))}"
            f" -> {_subs(sorted(c.new.suspended))}"
        )
    for what, moves in (("suspension", c.suspensions), ("restore", c.restores)):
        for m in moves:
            subs = _subs(m.subscription_ids)
            if m.old is None and m.new is not None:
                lines.append(f"{what} added: {m.new.isoformat()} ({subs})")
            elif m.new is None and m.old is not None:
                lines.append(f"{what} removed: {m.old.isoformat()} ({subs})")
            elif m.old is not None and m.new is not None:
                days = m.days or 0
                way = "later" if days > 0 else "earlier"
                lines.append(
                    f"{what} moved {_days(abs(days))} {way}:"
                    f" {m.old.isoformat()} -> {m.new.isoformat()} ({subs})"
                )
    lines.extend(
        f"notice {n.change}: {n.on.isoformat()} {n.kind} to {n.audience}" for n in c.notices
    )
    if c.stage_move is not None:
        move = c.stage_move
        if move.new is None:
            lines.append(f"stage {move.old} is not in NEW: no mapping: NEW would be refused")
        else:
            lines.append(f"stage {move.old} is not in NEW: moves from {move.old} to {move.new}")
    return lines


def _counts(c: Mapping[str, int], directions: Sequence[str]) -> str:
    return ", ".join(f"{c[d]} {d.replace('_', ' ')}" for d in directions)


def _totals_rows(comparison: Comparison) -> list[tuple[str, str]]:
    t = comparison.totals()
    moves = ("added", "removed", "moved_earlier", "moved_later")
    n, m = t["notices"], t["stage_moves"]
    redated = f"{n['redated']} kept but announcing another suspension date"
    return [
        ("customers", f"{t['customers_compared']} compared, {t['customers_changed']} changed"),
        ("suspensions", f"{_counts(t['suspensions'], moves)} (per subscription)"),
        ("restores", f"{_counts(t['restores'], moves)} (per subscription)"),
        ("notices", f"{_counts(n, ('added', 'removed'))}; {redated}"),
        ("stage moves", f"{m['mapped'] + m['unmapped']} ({m['unmapped']} without a mapping)"),
    ]


def _header(comparison: Comparison) -> list[str]:
    deploy = (
        "a worker running OLD accepts NEW"
        if comparison.refused is None
        else f"a worker running OLD refuses NEW: {comparison.refused}"
    )
    bad = f", {comparison.bad_lines} bad line(s) skipped" if comparison.bad_lines else ""
    return [
        f"OLD: {comparison.old.label}",
        f"NEW: {comparison.new.label}",
        f"history: {comparison.history}, {comparison.events} events{bad}",
        f"deploy: {deploy}",
    ]


def text(comparison: Comparison) -> str:
    """The plain report: header, totals, then each changed customer (stable, for pipes)."""
    out = _header(comparison)
    out.append("")
    rows = _totals_rows(comparison)
    width = max(len(label) for label, _ in rows)
    out.extend(f"{label + ':':<{width + 1}} {value}" for label, value in rows)
    for c in comparison.customers:
        out.extend(("", c.customer_id))
        out.append(f"  highest stage: {c.old.highest[1]} -> {c.new.highest[1]}")
        out.append(f"  final stage: {c.old.final} -> {c.new.final}")
        if c.exposure:
            out.append(f"  exposure at the end: {_exposure(c)}")
        out.extend(f"  {line}" for line in describe(c))
    return "\n".join(out) + "\n"


def _rich(comparison: Comparison) -> None:
    # Imported here: only a terminal pays for rich.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for line in _header(comparison):
        console.print(line, highlight=False, markup=False)
    totals = Table(show_header=False, box=None, pad_edge=False)
    totals.add_column(style="bold", no_wrap=True)
    totals.add_column()
    for label, value in _totals_rows(comparison):
        totals.add_row(Text(label), Text(value))
    console.print(totals)
    if not comparison.customers:
        console.print("no customer's outcome changes", highlight=False)
        return
    table = Table(title="customers whose outcome changes (OLD -> NEW)", title_justify="left")
    table.add_column("customer", no_wrap=True)
    table.add_column("highest stage", no_wrap=True)
    table.add_column("final stage", no_wrap=True)
    table.add_column("changes", ratio=1)
    for c in comparison.customers:
        changes = describe(c)
        cells = (
            c.customer_id,
            f"{c.old.highest[1]}\n-> {c.new.highest[1]}",
            f"{c.old.final}\n-> {c.new.final}",
            "\n".join(changes),
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
