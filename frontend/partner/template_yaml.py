"""Values typed into the template editor's form view written back into the draft's YAML.

Each changed value is rendered by the template format's own serialiser (``to_yaml``) and put in place
of the old one, so the rest of the partner's text (its layout, flow lists, comments) stays as written
and the diff against upstream shows only what the form changed. The result is read back and compared
with what was asked for; when splicing cannot be trusted (a value in a flow mapping, a key to add,
anything that reads back differently) the whole document is written by ``to_yaml`` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from andon.templates_catalog.dsl.load import to_yaml

Path = tuple[str, ...]


class _Unspliceable(Exception):
    """This change cannot be put in place safely; the whole document is rewritten."""


def _put(data: Any, path: Path, value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def _locate(root: yaml.Node, path: Path) -> tuple[yaml.Node, yaml.Node, yaml.MappingNode]:
    """The key node, the value node and the mapping holding them at ``path``."""
    node = root
    parent: yaml.MappingNode | None = None
    key_node: yaml.Node | None = None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            raise _Unspliceable(part)
        found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
        if found is None:
            raise _Unspliceable(part)
        parent, (key_node, node) = node, found
    if parent is None or key_node is None:
        raise _Unspliceable("the document itself")
    return key_node, node, parent


def _rendered(value: Any, column: int) -> str:
    """What follows the key: ``": value"`` on the key's line, or a block below it."""
    text = to_yaml(value)
    text = text.removesuffix("...\n").rstrip("\n")
    indent = " " * (column + 2)
    if isinstance(value, dict | list) and value:
        return ":\n" + "\n".join(indent + line if line else line for line in text.split("\n"))
    first, *rest = text.split("\n")
    return ": " + first + "".join("\n" + (indent + line if line.strip() else "") for line in rest)


def _splice(text: str, changes: Mapping[Path, Any]) -> str:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        raise _Unspliceable("empty")
    edits: list[tuple[int, int, str]] = []
    for path, value in changes.items():
        key_node, value_node, parent = _locate(root, path)
        if parent.flow_style or value_node.tag == "tag:yaml.org,2002:merge":
            raise _Unspliceable("flow")
        start, end = key_node.end_mark.index, value_node.end_mark.index
        while end > start and text[end - 1] in " \t\r\n":
            end -= 1
        edits.append((start, end, _rendered(value, key_node.start_mark.column)))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def with_values(text: str, changes: Mapping[Path, Any]) -> str:
    """``text`` with the value at each path replaced (or added)."""
    if not changes:
        return text
    data = yaml.safe_load(text)
    expected = copy.deepcopy(data)
    for path, value in changes.items():
        _put(expected, path, value)
    try:
        spliced = _splice(text, changes)
        if yaml.safe_load(spliced) == expected:
            return spliced
    except (_Unspliceable, yaml.YAMLError):
        pass
    return to_yaml(expected)
