"""docs/architecture.md stays true: every file it names exists, every function it names is there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
TEXT = DOC.read_text(encoding="utf-8")

# A path in backticks, possibly broken across a line by the Markdown's wrapping.
PATHS = re.compile(r"`((?:services|shared|cli|bench|devkit|deploy|tests|docs)/[\w./-]+)`")
# A walk step: "N. `path`, `name`" (the name may be Class.method), across line breaks.
STEPS = re.compile(r"^\d+\.\s+`([\w./-]+\.py)`,\s+`([\w.]+)`", re.MULTILINE)


def _defined(path: Path) -> set[str]:
    """Top-level functions and classes, and Class.method names, defined in a module."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


def test_every_named_file_exists() -> None:
    named = set(PATHS.findall(TEXT.replace("\n    ", "")))
    assert len(named) >= 12
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def test_every_step_of_the_walk_names_a_function_of_its_file() -> None:
    steps = STEPS.findall(TEXT.replace("\n    ", " ").replace("\n   ", " "))
    assert len(steps) == 12
    wrong = [
        f"{path}: {name}"
        for path, name in steps
        if not (ROOT / path).exists() or name not in _defined(ROOT / path)
    ]
    assert wrong == [], f"walk steps whose function is not in the file: {wrong}"


def test_the_walk_takes_at_most_twelve_files() -> None:
    steps = STEPS.findall(TEXT.replace("\n    ", " ").replace("\n   ", " "))
    assert len({path for path, _name in steps}) <= 12
