"""The Partner Center id mapping: billstate's customer and subscription ids to Partner
Center's GUIDs, read from a YAML file at start-up.

```yaml
customers:     # customer_id -> the customer's Microsoft Entra tenant id
  contoso: 6f1c3a52-8d0e-4b7a-9c1f-2e4d5a6b7c8d
subscriptions: # subscription_id -> Partner Center subscription id (unlisted: same id)
  sub-7c1e9a: a3b9c1d2-0e4f-4a5b-8c6d-7e8f9a0b1c2d
```

A bad file is refused (`ConfigRefused`) with its path, line and problem, so nothing starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from billstate_shared.errors import ConfigRefused

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECTIONS = ("customers", "subscriptions")


def check_ids(mapping: dict[str, str], what: str) -> dict[str, str]:
    """`mapping` when every key is a billstate id and every value a GUID."""
    for key, value in mapping.items():
        if not key:
            raise ConfigRefused(what, "an empty billstate id")
        if not GUID.match(value):
            raise ConfigRefused(what, f"{key} maps to {value!r}, not a GUID")
    return mapping


def load_mapping(path: Path | str) -> tuple[dict[str, str], dict[str, str]]:
    """Read `{customers: {billstate id: tenant id}, subscriptions: {billstate id: PC id}}`.

    Bad content raises ConfigRefused, whose message names the file, the line and the problem
    (`partner-center.yaml:4: customers: fabrikam must map to a GUID`)."""
    path = Path(path)
    root = _compose(path)
    if root is None:
        return {}, {}
    if not isinstance(root, yaml.MappingNode):
        raise _refused(
            path, root, "the mapping must be a YAML mapping with customers and subscriptions"
        )
    found: dict[str, dict[str, str]] = {}
    for key_node, value_node in root.value:
        section = _text(key_node)
        if section not in SECTIONS:
            raise _refused(
                path, key_node, f"unknown key {key_node.value!r}; expected customers, subscriptions"
            )
        if section in found:
            raise _refused(path, key_node, f"{section} appears twice")
        found[section] = _section(path, section, value_node)
    return found.get("customers", {}), found.get("subscriptions", {})


def _compose(path: Path) -> yaml.Node | None:
    """The file's YAML node tree (None when it is empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8"
        raise ConfigRefused(str(path), f"cannot read the mapping ({reason})") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigRefused(f"{path}{where}", f"not valid YAML ({err.problem})") from None


def _section(path: Path, section: str, node: yaml.Node) -> dict[str, str]:
    """One section's billstate id -> GUID pairs."""
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return {}  # `customers:` with nothing under it
    if not isinstance(node, yaml.MappingNode):
        raise _refused(path, node, f"{section} must be a mapping of billstate id to GUID")
    ids: dict[str, str] = {}
    for id_node, guid_node in node.value:
        ours = _text(id_node)
        if not ours:
            raise _refused(path, id_node, f"{section}: a billstate id must be a non-empty string")
        if ours in ids:
            raise _refused(path, id_node, f"{section}: {ours} appears twice")
        theirs = _text(guid_node)
        if theirs is None or not GUID.match(theirs):
            raise _refused(path, guid_node, f"{section}: {ours} must map to a GUID")
        ids[ours] = theirs
    return ids


def _refused(path: Path, node: yaml.Node, problem: str) -> ConfigRefused:
    return ConfigRefused(f"{path}:{node.start_mark.line + 1}", problem)


def _text(node: yaml.Node) -> str | None:
    """A scalar's text when it is a string or an integer (an all-digit customer id)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag.endswith((":str", ":int")):
        return str(node.value)
    return None
