"""Read a policy YAML file into a `Policy`, refusing a bad one with the line and the reason."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from billstate_shared.domain.policy import ERROR_LOC_KEY, Policy
from billstate_shared.errors import ConfigRefused

__all__ = ["PolicyError", "load_policy", "parse_policy"]

# A policy file is a few dozen nodes; aliases can make a tiny file expand exponentially.
MAX_NODES: Final = 10_000

Path_ = tuple[str | int, ...]  # a pydantic loc: mapping keys and list indexes


class PolicyError(ConfigRefused):
    """A policy file refused: where (source, 1-based line, field path) and why."""

    def __init__(self, source: str, line: int, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.source = source
        self.line = line

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.line, self.field, self.reason))


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at `path`; PolicyError (line 0) if it cannot be read."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, 0, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(source, 0, "(file)", f"not UTF-8 text: {exc.reason}") from exc
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy YAML `text`; `source` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(source, exc) from exc
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise PolicyError(source, line, "(yaml)", str(exc.reason)) from exc
    if root is None:
        raise PolicyError(source, 1, "(document)", "the file is empty; expected a policy mapping")
    converter = _Converter(source)
    data = converter.convert(root, ())
    try:
        # Only the file's spelling of keys (`policy:`, not the model's `name`) is accepted.
        return Policy.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise _refusal(source, exc.errors()[0], converter.lines) from exc


def _syntax_error(source: str, exc: yaml.MarkedYAMLError) -> PolicyError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    reason = f"YAML syntax error: {exc.problem or 'invalid YAML'}"
    if exc.context:
        reason += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark.line + 1 != line:
            reason += f" started on line {exc.context_mark.line + 1}"
        reason += ")"
    return PolicyError(source, line, "(yaml)", reason)


class _Converter:
    """Turns the composed node tree into plain Python, noting each value's and key's line."""

    def __init__(self, source: str) -> None:
        self.source = source
        # path -> (line of the key that introduces the value, line where the value starts)
        self.lines: dict[Path_, tuple[int, int]] = {}
        self._constructor = yaml.SafeLoader("")
        self._nodes = 0
        self._open: set[int] = set()

    def convert(self, node: yaml.Node, path: Path_, key_line: int | None = None) -> Any:
        value_line = node.start_mark.line + 1
        self.lines[path] = (key_line or value_line, value_line)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise PolicyError(
                self.source, value_line, _field(path), "too many values (aliases expand too far)"
            )
        if isinstance(node, yaml.ScalarNode):
            return self._constructor.construct_object(node)
        if id(node) in self._open:
            raise PolicyError(self.source, value_line, _field(path), "recursive alias")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
        finally:
            self._open.discard(id(node))
        raise PolicyError(self.source, value_line, _field(path), "unsupported YAML node")

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError(
                    self.source,
                    line,
                    _field(path) or "(document)",
                    "merge keys (<<) are not supported",
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise PolicyError(
                    self.source, line, _field(path) or "(document)", "a key must be a plain value"
                )
            key = self._constructor.construct_object(key_node)
            if not isinstance(key, str):
                # YAML 1.1 reads on/off/yes/no as booleans and 12 as a number; no policy key is.
                raise PolicyError(
                    self.source,
                    line,
                    _field((*path, key_node.value)),
                    f"key {key_node.value!r} is read as {_describe(key)}, not a name; quote it",
                )
            # PyYAML silently keeps the last of two equal keys; a policy must say one thing.
            if key in result:
                raise PolicyError(self.source, line, _field((*path, key)), f"duplicate key {key!r}")
            result[key] = self.convert(value_node, (*path, key), key_line=line)
        return result


def _refusal(
    source: str, error: ErrorDetails, lines: Mapping[Path_, tuple[int, int]]
) -> PolicyError:
    loc: list[str | int] = list(error["loc"])
    on_key = bool(loc) and loc[-1] == "[key]"
    if on_key:
        loc.pop()
    ctx = error.get("ctx") or {}
    loc.extend(ctx.get(ERROR_LOC_KEY, ()))
    path = tuple(loc)

    found = path
    while found not in lines:
        found = found[:-1]
    key_line, value_line = lines[found]
    kind = error["type"]
    if found != path:
        # The value is absent (a missing key): point at where its parent is introduced.
        line = key_line
    elif on_key or kind == "extra_forbidden":
        line = key_line
    else:
        line = value_line
    return PolicyError(source, line, _field(path) or "(document)", _reason(error, path))


def _reason(error: ErrorDetails, path: Path_) -> str:  # noqa: PLR0911  (a table: one return per error kind)
    kind = error["type"]
    value = error["input"]
    if kind == "missing":
        return f"missing required key {path[-1]!r}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {path[-1]!r}{hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type", "mapping_type"):
        return f"must be a mapping of keys to values, got {_describe(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, got {_describe(value)}"
    if kind == "greater_than_equal":
        return f"must be at least {error.get('ctx', {}).get('ge')}, got {_describe(value)}"
    if kind == "too_short":
        return f"must not be empty, got {_describe(value)}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        return f"must be {message.removeprefix('Input should be ')}, got {_describe(value)}"
    return message


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return repr(value)


def _allowed_keys(path: Path_) -> list[str]:
    """The keys the model accepts at `path` (a mapping's path), for the unknown-key hint."""
    model: Any = Policy
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        model = _model_in(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    # Unwraps tuple[Stage, ...] and Optional[...] down to the model class, if there is one.
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _field(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
