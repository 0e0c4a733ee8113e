"""Reading spec files: each one is checked whole when Andon starts, and a bad one stops it with the file
and the field to fix, rather than failing a workflow's call later."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from andon.connectors.outbound.adapters.build import connector_type
from andon.connectors.outbound.adapters.spec import AdapterSpec, SpecError
from andon.connectors.outbound.types import ConnectorType

SPECS = Path(__file__).with_name("specs")


_AT = re.compile(r" - at `(\$[^`]*)`$")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]|\[\.\.\.\]")


def _fails_alike(raw: Any, message: str) -> bool:
    try:
        msgspec.convert(raw, AdapterSpec)
    except msgspec.ValidationError as exc:
        return str(exc) == message
    return False


def _with_keys(raw: Any, message: str) -> str:
    """msgspec writes a map's key as ``[...]``; a spec's author needs the name (which capability, which
    input). Each such key is found as the first entry that, kept alone with those before it, fails the same."""
    found = _AT.search(message)
    if found is None or "[...]" not in found.group(1):
        return message
    node, named = raw, "$"
    for step in _STEP.finditer(found.group(1)[1:]):
        field, index = step.group(1), step.group(2)
        if field is not None:
            node, named = node[field], f"{named}.{field}"
        elif index is not None:
            node, named = node[int(index)], f"{named}[{index}]"
        else:
            entries = dict(node)
            for count, key in enumerate(entries, 1):
                node.clear()
                node.update(dict(list(entries.items())[:count]))
                alike = _fails_alike(raw, message)
                node.clear()
                node.update(entries)
                if alike:
                    node, named = node[key], f"{named}.{key}"
                    break
            else:
                return message
    return message[: found.start(1)] + named + "`"


def load(path: Path) -> ConnectorType:
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SpecError(f"{path.name}: not JSON ({exc})") from None
    try:
        spec = msgspec.convert(raw, AdapterSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"{path.name}: {_with_keys(raw, str(exc))}") from None
    if spec.key != path.stem:
        raise SpecError(f"{path.name}: $.key is {spec.key!r}, but must be the file's name, {path.stem!r}")
    try:
        return connector_type(spec)
    except SpecError as exc:
        raise SpecError(f"{path.name}: {exc}") from None


def load_folder(folder: Path) -> tuple[ConnectorType, ...]:
    """Every ``*.json`` spec in ``folder``, in name order."""
    return tuple(load(path) for path in sorted(folder.glob("*.json")))


# The shipped adapters, read once on import (the catalogue is a constant of the process).
ADAPTERS = load_folder(SPECS)
