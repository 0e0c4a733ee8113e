"""Reading a template: YAML in, a checked ``Template`` out, or every problem with its line and path.

The checks, in order (each stage only when the one before passed, so one mistake is not reported
five times): YAML syntax and duplicate keys; the format (``format.py``); then the meaning: the
parameters are a JSON Schema whose defaults satisfy it; triggers name known event types with CEL
filters that compile; every ``@messages.<name>`` and ``@params.<name>`` exists (a parameter that
stands in for a value has a default); the workflow, filled in with the defaults, compiles as the
engine would run it; and every ``<binding>.<capability>`` a step calls is declared in ``requires``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import msgspec
import yaml

from andon.platform.engine.capabilities import Capabilities
from andon.platform.engine.definition import ActionStep, Definition, LookupStep, compile_definition
from andon.platform.engine.expressions import ExpressionError, compile_cel
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.http.errors import ValidationFailedError
from andon.templates_catalog.dsl.format import PLACEHOLDER, Template

# Capabilities a step may call without a binding: the engine's own.
BUILT_IN = frozenset(Capabilities().names())
MAX_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # "workflow.steps[2].when"; "" for the document as a whole
    line: int | None  # 1-based, where the path's value starts
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else ""
        if self.path:
            where = f"{where}, {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message


class TemplateError(Exception):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems[:10]))

    def as_validation_error(self) -> ValidationFailedError:
        return ValidationFailedError(
            f"The template is not valid: {'; '.join(str(p) for p in self.problems[:10])}",
            extra={
                "errors": [{"field": p.path or "template", "message": p.message, "line": p.line} for p in self.problems]
            },
        )


# --- YAML with positions -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice in this mapping (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _line_of(root: yaml.Node | None, path: str) -> int | None:
    """The line where the value at ``path`` (``a.b[2].c``) starts; the nearest parent's when the path
    goes further than the document (a missing field)."""
    node = root
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
        elif isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if found is None:
                break
            node = found
        else:
            break
        line = node.start_mark.line + 1
    return line


# --- the checks ------------------------------------------------------------------------------------------


def parse(text: str, source: str = "template") -> Template:
    """The checked template; ``TemplateError`` listing every problem found at the first failing stage."""
    if len(text.encode()) > MAX_BYTES:
        raise TemplateError(source, [Problem("", None, f"larger than {MAX_BYTES // 1024} KiB")])
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise TemplateError(source, [Problem("", line, f"not valid YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise TemplateError(source, [Problem("", None, f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise TemplateError(source, [Problem("", 1, "a template is a mapping (template:, version:, workflow:, ...)")])
    try:
        template = msgspec.convert(data, Template, strict=False)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `$")
        path = at.rstrip("`").lstrip(".")
        raise TemplateError(source, [Problem(path, _line_of(root, path), message)]) from None
    problems = [Problem(path, _line_of(root, path), message) for path, message in _meaning(template)]
    if problems:
        raise TemplateError(source, problems)
    return template


def _meaning(template: Template) -> Iterator[tuple[str, str]]:
    yield from _parameters(template.parameters)
    for i, trigger in enumerate(template.triggers):
        if trigger.event_type not in CATALOGUE:
            yield f"triggers[{i}].event_type", f"unknown event type '{trigger.event_type}'"
        if trigger.when is not None:
            try:
                compile_cel(trigger.when)
            except ExpressionError as exc:
                yield f"triggers[{i}].when", f"not a CEL expression: {exc}"
    placeholders = list(_placeholders(template.workflow, "workflow"))
    properties = template.parameters.get("properties") or {}
    bad = False
    for path, kind, name in placeholders:
        if kind == "messages" and name not in template.messages:
            bad = True
            yield path, f"no message '{name}' in messages"
        elif kind == "params" and name not in properties:
            bad = True
            yield path, f"no parameter '{name}' in parameters"
        elif kind == "params" and "default" not in properties[name]:
            bad = True
            yield path, f"the parameter '{name}' stands in for a value here, so it needs a default"
    if bad:
        return
    # The engine's own checks, on the workflow as a deployment with the defaults builds it.
    try:
        compiled = compile_definition(built_definition(template, defaults(template.parameters)))
    except ValidationFailedError as refusal:
        for error in refusal.extra["errors"]:
            yield f"workflow.{error['field']}", str(error["message"])
        return
    yield from _calls(template, compiled.definition)


def _parameters(schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if schema.get("type") != "object":
        yield "parameters.type", "parameters are a JSON Schema of type object"
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        yield f"parameters.{where}" if where else "parameters", f"not a JSON Schema: {exc.message}"
        return
    for name, error in parameter_errors(schema, defaults(schema)):
        yield f"parameters.properties.{name}.default", error


def defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["default"]
        for name, spec in (schema.get("properties") or {}).items()
        if isinstance(spec, dict) and "default" in spec
    }


def parameter_errors(schema: dict[str, Any], values: dict[str, Any]) -> list[tuple[str, str]]:
    """Each value that fails the parameters' schema, by parameter name ("" for the object itself)."""
    validator = jsonschema.Draft202012Validator(schema)
    found: list[tuple[str, str]] = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        name = ".".join(str(p) for p in error.absolute_path)
        found.append((name, error.message))
    return found


def _calls(template: Template, definition: Definition) -> Iterator[tuple[str, str]]:
    for i, step in enumerate(definition.steps):
        if not isinstance(step, ActionStep | LookupStep) or step.capability in BUILT_IN:
            continue
        at = f"workflow.steps[{i}].capability"
        binding, _, capability = step.capability.partition(".")
        declared = template.requires.get(binding)
        if declared is None:
            known = ", ".join(sorted(template.requires)) or "none declared"
            yield at, f"'{binding}' is not a binding in requires ({known})"
        elif capability not in declared.capabilities:
            yield at, f"requires.{binding} does not list the capability '{capability}'"


def _placeholders(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, str):
        found = PLACEHOLDER.match(value)
        if found:
            yield path, found.group(1), found.group(2)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _placeholders(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _placeholders(item, f"{path}.{key}")


def built_definition(
    template: Template,
    params: dict[str, Any],
    *,
    messages: dict[str, str] | None = None,
    bindings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The workflow a deployment runs: placeholders filled from ``params`` and the messages (the
    template's, overridden by ``messages``), and each ``<binding>.<capability>`` renamed
    ``<connection key>.<capability>`` per ``bindings``."""
    values = {"messages": {**template.messages, **(messages or {})}, "params": params}

    def place(value: Any) -> Any:
        if isinstance(value, str):
            found = PLACEHOLDER.match(value)
            if found and found.group(2) in values[found.group(1)]:
                return values[found.group(1)][found.group(2)]
            return value
        if isinstance(value, list):
            return [place(v) for v in value]
        if isinstance(value, dict):
            return {k: place(v) for k, v in value.items()}
        return value

    definition: dict[str, Any] = place(template.workflow)
    steps = definition.get("steps")
    if bindings and isinstance(steps, list):
        for step in steps:
            capability = step.get("capability") if isinstance(step, dict) else None
            if step.get("kind") in ("action", "lookup") and isinstance(capability, str) and capability not in BUILT_IN:
                binding, _, name = capability.partition(".")
                if binding in bindings:
                    step["capability"] = f"{bindings[binding]}.{name}"
    return definition


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
