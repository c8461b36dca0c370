"""The published JSON Schemas and docs/contracts.md match the code's contracts."""

from __future__ import annotations

import json
from pathlib import Path

from billstate_shared.contracts import EVENT_TYPES, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.contracts.schema import UNION_SCHEMA_NAME, write_schemas
from billstate_shared.topics import BY_NAME, EVENT_TOPICS

HERE = Path(__file__).parent
DOCS = HERE.parents[1] / "docs" / "contracts.md"
FIX = "run `make schemas` (billstate contracts schema --out tests/contracts) and commit the result"


def test_schema_snapshot_is_current(tmp_path: Path) -> None:
    written = {path.name: path.read_bytes() for path in write_schemas(tmp_path)}
    committed = {path.name: path.read_bytes() for path in HERE.glob("*.schema.json")}
    missing = sorted(written.keys() - committed.keys())
    extra = sorted(committed.keys() - written.keys())
    changed = sorted(
        name for name in written.keys() & committed.keys() if written[name] != committed[name]
    )
    problems = [
        *(f"missing: {name}" for name in missing),
        *(f"not a current contract: {name}" for name in extra),
        *(f"differs: {name}" for name in changed),
    ]
    assert not problems, f"JSON Schema snapshot is stale ({'; '.join(problems)}); {FIX}"


def test_snapshot_has_one_schema_per_event_type_and_the_union() -> None:
    names = {path.name for path in HERE.glob("*.schema.json")}
    assert names == {f"{t}.schema.json" for t in EVENT_TYPES} | {UNION_SCHEMA_NAME}


def test_docs_show_every_example_and_link_every_schema() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for event_type, event in EXAMPLES.items():
        pretty = json.dumps(json.loads(encode(event)), indent=2, ensure_ascii=False)
        assert pretty in text, f"docs/contracts.md: example of {event_type} is out of date"
        assert f"tests/contracts/{event_type}.schema.json" in text, event_type
        assert f"`{event_type}`" in text, event_type
    assert f"tests/contracts/{UNION_SCHEMA_NAME}" in text


def test_docs_topic_table_is_the_catalog() -> None:
    """The table of who writes, reads and observes each topic, row for row."""

    def names(items: tuple[str, ...], quote: str = "") -> str:
        return ", ".join(f"{quote}{item}{quote}" for item in items) or "-"

    expected = [
        f"| `{t.name}` | {names(t.event_types, '`')} | {names(t.writers)} | {names(t.readers)}"
        f" | {names(t.observers)} | {'yes' if t.dlq in BY_NAME else 'no'} |"
        for t in EVENT_TOPICS
    ]
    header = "| topic | carries | written by | read by | observed by | DLQ |"
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2
    assert lines[start : start + len(expected) + 1] == [*expected, ""], (
        "docs/contracts.md: the topic table differs from billstate_shared.topics"
    )
