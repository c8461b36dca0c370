"""Every command example in the docs runs and prints what the docs show.

What is collected, from docs/*.md and README.md:

- console examples: in a ```console block, each line starting with `$ ` is a command. It goes
  on over lines that end with a backslash and over lines inside a single-quoted string still
  open. The lines after it, up to the next `$ ` line or the end of the block, are its output.
- shell examples: in a ```sh, ```shell or ```bash block, each command that starts with
  `uv run billstate` (continued the same way). The other lines of those blocks (make targets,
  the services, curl, kcat, variable assignments) are not billstate examples and are not
  collected.

How one runs: with bash, in a temporary directory that stands for the repository root (every
top-level entry of the repository is linked into it), beside the input files the docs
describe but do not ship (`PREPARED`: lifecycle-cut.jsonl, with-bad.jsonl, the bad-*.yaml
copies of standard.yaml, each made as the doc's prose or comment says), with `uv run
billstate` replaced by this interpreter's `billstate` entry point. No pipefail: a pipeline's
status is its last command's, as in an interactive shell. Each call is its own process, forked
from a server that imported the command once (billstate_devkit.warm): the same entry point,
argv, cwd, environment, stdin, stdout, stderr and exit status, without seconds of imports.

What is compared:

- console: the command's stdout followed by its stderr, against the lines shown, line by line,
  trailing whitespace stripped on both sides (Markdown editors strip it). The whole output
  must match, except where the nearest paragraph before the block says "first lines": there
  the lines shown must be the first lines of the output (whole lines, at least one).
- shell: exit status 0 and nothing on stderr (the docs show no output for them).

What is not run, each by a named rule (`NOT_RUN` maps every such example to its rule, and a
test checks the rules):

1. not a billstate command (a console line such as `$ diff ...`): the docs' shell plumbing;
2. talks to Kafka: `--bootstrap`, `KAFKA_BOOTSTRAP_SERVERS`, or a billstate command in
   `KAFKA_COMMANDS`;
3. writes files: `--out` (it would write into the repository);
4. uses shell state set elsewhere: a `$variable` or `$(...)` outside single quotes;
5. needs an input the docs do not ship and `PREPARED` does not make: a *.jsonl, *.yaml or
   *.json argument that does not exist (`ABSENT` lists those meant not to exist).

A billstate command in neither `OFFLINE_COMMANDS` nor `KAFKA_COMMANDS` fails: classify it.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from billstate_cli.main import COMMANDS
from billstate_devkit.warm import warm_command

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
BILLSTATE = Path(sys.executable).parent / "billstate"
BASH = shutil.which("bash") or "/bin/bash"

# `costs` runs offline without --send (its console examples are --dry-run; --send is in text).
OFFLINE_COMMANDS = frozenset({"replay", "plan", "policy", "simulate", "contracts", "costs"})
KAFKA_COMMANDS = frozenset({"clock", "topics", "demo", "hold", "dlq", "send", "recover", "access"})
ABSENT = frozenset({"nope.yaml", "nope.jsonl"})  # examples of a file that does not exist

LIFECYCLE = ROOT / "docs" / "examples" / "lifecycle.jsonl"
STANDARD = ROOT / "policies" / "standard.yaml"


# ---- the inputs the docs describe ----------------------------------------------------------


def _lifecycle_cut() -> str:
    """docs/policy.md: lifecycle.jsonl cut after the tick of 2026-11-28, payment left out."""
    lines: list[str] = []
    for line in LIFECYCLE.read_text("utf-8").splitlines(keepends=True):
        if '"payment.received"' not in line:
            lines.append(line)
        if '"tick-2026-11-28T01:00Z"' in line:
            break
    return "".join(lines)


def _with_bad() -> str:
    """docs/replay.md "Bad lines": lines 2 and 4 to 7 wrong, each as the prose describes."""
    upsert, issued, tick = LIFECYCLE.read_text("utf-8").splitlines()[:3]
    number = json.loads(issued)
    number["event_id"] = "inv-2026-0002-issued"
    number["data"]["invoice_id"] = "INV-2026-0002"
    number["data"]["amount"] = 99.5  # a JSON number: refused
    paid = json.loads(issued)
    paid["event_type"] = "invoice.paid"
    naive = json.loads(tick)
    naive["occurred_at"] = "2026-11-21T01:00:00"
    aged = {
        "event_id": "aged:contoso:INV-2026-0001:2026-11-24",
        "event_type": "invoice.aged",
        "schema_version": 1,
        "occurred_at": "2026-11-24T01:00:00+00:00",
        "customer_id": "contoso",
        "data": {
            "invoice_id": "INV-2026-0001",
            "due_on": "2026-12-01",
            "as_of": "2026-11-24",
            "days_past_due": -7,
            "outstanding": {"amount": "1450.00", "currency": "USD"},
            "subscription_ids": ["sub-7c1e9a", "sub-55d0f2"],
        },
    }
    cut = tick[: tick.index("clock.") + len("clock.")]  # cut off inside a string
    lines = [upsert, json.dumps(number), issued, json.dumps(paid), json.dumps(naive)]
    return "\n".join([*lines, json.dumps(aged), cut]) + "\n"


# docs/policy.md "Validating a file": each bad-*.yaml is standard.yaml with the one change its
# comment names, as (text, replacement).
BAD_POLICIES: dict[str, tuple[str, str]] = {
    "bad-money.yaml": ('  USD: "5.00"', "  USD: 5.00"),
    "bad-cur.yaml": ('  default: "0.01"', '  usd: "1.00"\n  default: "0.01"'),
    "bad-zone.yaml": ("timezone: Asia/Taipei ", "timezone: Asia/Taipai "),
    "bad-order.yaml": ("    days_past_due: 14\n", "    days_past_due: 25\n"),
    "bad-scope.yaml": ("    scope: overdue_subscriptions   # or: all_subscriptions\n", ""),
    "bad-suspend2.yaml": (
        "    notify: [customer, partner]\nexempt_tags",
        (
            "    notify: [customer, partner]\n  - name: terminated\n    days_past_due: 60\n"
            "    action: suspend\n    scope: all_subscriptions\n    notify: [customer]\nexempt_tags"
        ),
    ),
    "bad-key.yaml": ("  max_days: 30", "  max_day: 30"),
    "bad-dup.yaml": (
        "minimum_overdue:",
        "timezone: Asia/Taipei\nminimum_overdue:",
    ),
    "bad-bool.yaml": ('  default: "0.01"', '  on: "5.00"\n  default: "0.01"'),
    "bad-name.yaml": ("  - name: final_notice", "  - name: Final Notice"),
    "bad-notify.yaml": ("    notify: [customer]\n", "    notify: [customer, customer]\n"),
    "bad-remdup.yaml": ("days_before_due: [7, 1]", "days_before_due: [7, 7]"),
    "bad-action.yaml": ("    action: suspend", "    action: terminate"),
    "bad-vstr.yaml": ("version: 3 ", 'version: "3" '),
    "bad-missing.yaml": ("version: 3                  # bump on every change\n", ""),
    "bad-yaml.yaml": ("days_before_due: [7, 1]", "days_before_due: [7, 1"),
}


def _bad_policy(name: str) -> Callable[[], str]:
    def make() -> str:
        text = STANDARD.read_text("utf-8")
        old, new = BAD_POLICIES[name]
        assert text.count(old) == 1, f"{name}: {old!r} is not once in {STANDARD}"
        return text.replace(old, new)

    return make


def _edited(*changes: tuple[str, str]) -> Callable[[], str]:
    """standard.yaml with the docs' `sed` edits (regular expressions, line by line)."""

    def make() -> str:
        lines = STANDARD.read_text("utf-8").splitlines(keepends=True)
        for pattern, replacement in changes:
            lines = [re.sub(pattern, replacement, line) for line in lines]
        return "".join(lines)

    return make


def _simulated() -> str:
    from billstate_cli.simulation import history

    # As `billstate simulate --customers 200 --days 61 --seed 11 --out sim.jsonl` writes it.
    events = history(200, 61, seed=11)
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)


# docs/replay.md "Back-testing a policy change": its sh blocks make these (they write files,
# so they are not run themselves).
BACK_TEST: dict[str, Callable[[], str]] = {
    "candidate.yaml": _edited(
        (r"^version: 3 ", "version: 4 "), (r"^    days_past_due: 21$", "    days_past_due: 30")
    ),
    "renamed.yaml": _edited((r"^version: 3 ", "version: 4 "), ("final_notice", "last_warning")),
    "lifecycle-dec16.jsonl": lambda: "".join(
        LIFECYCLE.read_text("utf-8").splitlines(keepends=True)[:28]
    ),
    "sim.jsonl": _simulated,
}

PREPARED: dict[str, Callable[[], str]] = {
    **BACK_TEST,
    "lifecycle-cut.jsonl": _lifecycle_cut,
    "with-bad.jsonl": _with_bad,
    "bad-empty.yaml": lambda: "",
    **{name: _bad_policy(name) for name in BAD_POLICIES},
}


# ---- reading the docs ------------------------------------------------------------------------

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
SHELL_LANGS = frozenset({"sh", "shell", "bash"})


@dataclass(frozen=True)
class Example:
    doc: str  # the file, relative to the repository root
    line: int  # the command's first line, 1-based
    kind: str  # "console" or "shell"
    command: str
    shown: tuple[str, ...]  # the output shown (console only)
    first_lines: bool  # the doc shows only the first lines of the output

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _complete(command: str) -> bool:
    """A command is complete when it does not end with a backslash and its quotes close."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


def _blocks(path: Path) -> Iterator[tuple[int, str, list[str], str]]:
    """(first line number, language, lines, the nearest prose before it) per fenced block."""
    lines = path.read_text("utf-8").splitlines()
    prose: list[str] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                prose.append(lines[i])
            elif prose and prose[-1] != "":
                prose.append("")
            i += 1
            continue
        indent, lang = match.groups()
        start = i + 1
        i += 1
        body: list[str] = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1  # the closing fence
        paragraph = "\n".join(prose).strip().split("\n\n")[-1] if prose else ""
        yield start + 1, lang, body, paragraph
        if prose:  # a block right after a block keeps the same prose before it
            prose = [paragraph]


def _commands(body: list[str], start: int, prompt: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, command, the lines after it up to the next command) in a block."""
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith(prompt):
            i += 1
            continue
        number = start + i
        command = line.removeprefix(prompt)
        i += 1
        while not _complete(command) and i < len(body):
            command += "\n" + body[i]
            i += 1
        output: list[str] = []
        while i < len(body) and not (prompt and body[i].startswith(prompt)):
            if not prompt:
                break
            output.append(body[i])
            i += 1
        yield number, command, output


def collect() -> list[Example]:
    examples: list[Example] = []
    for path in DOCS:
        doc = str(path.relative_to(ROOT))
        for start, lang, body, paragraph in _blocks(path):
            first = "first lines" in paragraph.lower()
            if lang == "console":
                for number, command, output in _commands(body, start, "$ "):
                    examples.append(Example(doc, number, "console", command, tuple(output), first))
            elif lang in SHELL_LANGS:
                for number, command, _ in _commands(body, start, ""):
                    if command.startswith("uv run billstate "):
                        examples.append(Example(doc, number, "shell", command, (), first))
    return examples


EXAMPLES = collect()


# ---- the rules -------------------------------------------------------------------------------

BILLSTATE_CALL = re.compile(r"\buv run billstate\s+([\w-]+)")
SHELL_STATE = re.compile(r"\$[\w{(]")
INPUT = re.compile(r"\.(jsonl|ya?ml|json)$")


def skip_reason(example: Example) -> str | None:
    """The rule (module docstring) that skips the example, or None to run it."""
    command = example.command
    if not command.startswith("uv run billstate "):
        return "rule 1: not a billstate command"
    subcommands = BILLSTATE_CALL.findall(command)
    unknown = set(subcommands) - OFFLINE_COMMANDS - KAFKA_COMMANDS
    assert not unknown, f"{example.id}: classify billstate {sorted(unknown)} in this test"
    if (
        "--bootstrap" in command
        or "KAFKA_BOOTSTRAP_SERVERS" in command
        or set(subcommands) & KAFKA_COMMANDS
    ):
        return "rule 2: talks to Kafka"
    if re.search(r"(^|\s)--out\b", command):
        return "rule 3: writes files"
    if SHELL_STATE.search(re.sub(r"'[^']*'", "''", command)):
        return "rule 4: uses shell state set elsewhere"
    for word in shlex.split(command, comments=True):
        named = INPUT.search(word) and word not in ABSENT and word not in PREPARED
        if named and not (ROOT / word).exists():
            return f"rule 5: needs {word}, which the docs do not ship"
    return None


def test_the_docs_have_examples_to_run() -> None:
    """The collection works: the examples these docs are known to hold are found and run."""
    ran = [e for e in EXAMPLES if skip_reason(e) is None]
    assert len([e for e in ran if e.kind == "console"]) >= 25
    commands = " ".join(e.command for e in ran)
    for needle in ("replay", "plan", "policy validate", "policy explain", "with-bad.jsonl"):
        assert needle in commands


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that stands for the repository root, with the prepared inputs beside."""
    where = tmp_path_factory.mktemp("doc-root")
    for entry in ROOT.iterdir():
        if entry.name not in PREPARED and entry.name not in ABSENT:
            (where / entry.name).symlink_to(entry)
    for name, make in PREPARED.items():
        (where / name).write_text(make(), "utf-8")
    return where


@pytest.fixture(scope="module")
def billstate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `billstate` command, each call forked from one warm server (module docstring)."""
    assert BILLSTATE.exists(), f"no billstate entry point beside {sys.executable}"
    warm = ("billstate_cli.main", *(f"billstate_cli.commands.{c}" for c in COMMANDS))
    where = tmp_path_factory.mktemp("warm")
    with warm_command(where, "billstate", "billstate_cli.main:run", warm) as command:
        yield command


def _run(command: str, cwd: Path, billstate: Path) -> subprocess.CompletedProcess[str]:
    script = command.replace("uv run billstate ", f"{shlex.quote(str(billstate))} ")
    return subprocess.run(  # noqa: S603  (the docs' own commands, in a scratch directory)
        [BASH, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# The examples not run, by rule, are accounted for by name in one test instead of as skipped
# tests: a test run with skips reads as a run that left something out.
RUN = [e for e in EXAMPLES if skip_reason(e) is None]
NOT_RUN = {e.id: reason for e in EXAMPLES if (reason := skip_reason(e)) is not None}


def test_every_example_not_run_has_a_listed_rule() -> None:
    rules = {reason.split(":")[0] for reason in NOT_RUN.values()}
    assert rules <= {f"rule {n}" for n in range(1, 6)}, rules
    assert RUN, "no example runs"
    # What is not run is mostly what needs Kafka; a jump here means a rule swallowed more.
    talks_to_kafka = sum(reason.startswith("rule 2") for reason in NOT_RUN.values())
    assert len(NOT_RUN) - talks_to_kafka <= 8, sorted(NOT_RUN.items())


@pytest.mark.parametrize("example", RUN, ids=[e.id for e in RUN])
def test_example(example: Example, root: Path, billstate: Path) -> None:
    done = _run(example.command, root, billstate)
    if example.kind == "shell":
        assert (done.returncode, done.stderr) == (0, ""), done.stdout
        return
    real = _lines(done.stdout) + _lines(done.stderr)
    shown = _lines("\n".join(example.shown))
    if example.first_lines:
        assert shown, f"{example.id}: no output shown"
        real = real[: len(shown)]
    diff = "\n".join(difflib.unified_diff(shown, real, "shown", "printed", lineterm=""))
    assert real == shown, f"{example.id}: `{example.command}` prints otherwise:\n{diff}"
