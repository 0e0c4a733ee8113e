"""Rendering a spec's request from a call's inputs, and checking its templates when the spec loads.

Templates are the engine's sandboxed Jinja (``platform/engine/expressions.py``). Three rules on top:
a string that is one whole ``{{ ... }}`` keeps its value's type, so a number stays a number in a JSON
body; a value that renders to null is left out of objects and queries (an optional input not given
does not clear the vendor's field); values in a path are percent-encoded and may not be ``.`` or
``..``, so an input cannot reach another resource.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import msgspec
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from andon.platform.engine.expressions import ExpressionError, render

_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)
# Names a template may use; anything else is a mistake in the spec.
ROOTS = frozenset({"inputs", "config", "idempotency_key", "answer"})


def _path_value(value: Any) -> str:
    text = "" if value is None else str(value)
    if text in (".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment")
    return quote(text, safe="")


_VALUES = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_PATHS = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_path_value)


def _whole(source: str) -> str | None:
    found = _WHOLE.match(source)
    if found is None or "{{" in found.group(1) or "}}" in found.group(1):
        return None
    return found.group(1)


@functools.lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return _VALUES.compile_expression(source, undefined_to_none=False)


def value(template: Any, context: Mapping[str, Any]) -> Any:
    """A body or an output: objects and lists item by item, nulls left out of objects."""
    if isinstance(template, str):
        whole = _whole(template)
        if whole is None:
            return render(template, context)
        try:
            return _expression(whole)(**context)
        except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
            raise ExpressionError(f"{template!r}: {exc}") from None
    if isinstance(template, list):
        return [value(item, context) for item in template]
    if isinstance(template, dict):
        rendered = {key: value(item, context) for key, item in template.items()}
        return {key: item for key, item in rendered.items() if item is not None}
    return template


def path(template: str, context: Mapping[str, Any]) -> str:
    try:
        return str(_PATHS.from_string(template).render(**context))
    except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
        raise ExpressionError(f"{template!r}: {exc}") from None


def strings(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters and headers: text, those that render to nothing left out."""
    rendered = {key: value(template, context) for key, template in templates.items()}
    return {key: _text(item) for key, item in rendered.items() if item is not None and item != ""}


def _text(item: Any) -> str:
    # true rather than True: query strings follow JSON's spelling, as the vendors' documents do.
    return item if isinstance(item, str) else msgspec.json.encode(item).decode()


def check(source: str, names: Mapping[str, Iterable[str]]) -> None:
    """Parse ``source``; refuse a name outside ``names`` (root → its members), so a misspelt input
    fails when the spec loads, not on a call."""
    try:
        tree = _VALUES.parse(source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{source!r}: line {exc.lineno}: {exc.message}") from None
    local = {found.name for found in tree.find_all(nodes.Name) if found.ctx in ("store", "param")} | {"loop"}
    for found in tree.find_all(nodes.Name):
        if found.ctx == "load" and found.name not in names and found.name not in local:
            raise ExpressionError(f"{source!r}: unknown name {found.name!r} (use {', '.join(sorted(names))})")
    for attribute in tree.find_all(nodes.Getattr):
        if isinstance(attribute.node, nodes.Name) and attribute.node.name in names:
            members = set(names[attribute.node.name])
            if members and attribute.attr not in members:
                raise ExpressionError(
                    f"{source!r}: {attribute.node.name} has no {attribute.attr!r} (it has {', '.join(sorted(members))})"
                )
