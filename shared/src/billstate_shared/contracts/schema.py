"""JSON Schemas of the wire contracts, one file per event type plus the whole union."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from billstate_shared.contracts.events import EVENT_TYPES, Event

__all__ = ["SCHEMA_DIALECT", "UNION_SCHEMA_NAME", "render", "schema_documents", "write_schemas"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
UNION_SCHEMA_NAME = "event.schema.json"


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name to schema: `<event_type>.schema.json` for each type, then the union."""
    documents: dict[str, dict[str, Any]] = {}
    for event_type, cls in EVENT_TYPES.items():
        documents[f"{event_type}.schema.json"] = _with_dialect(cls.model_json_schema())
    union = TypeAdapter(Event).json_schema()
    union["title"] = "Event"
    union["description"] = "Any billstate v1 event; `event_type` selects the member."
    documents[UNION_SCHEMA_NAME] = _with_dialect(union)
    return documents


def render(schema: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every schema file into out_dir (created if needed); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, schema in schema_documents().items():
        path = out_dir / name
        # Bytes, not text mode: the snapshot must not depend on the platform's newline.
        path.write_bytes(render(schema).encode("utf-8"))
        written.append(path)
    return written


def _with_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **schema}
