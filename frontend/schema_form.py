"""A JSON Schema object drawn as form controls, and the form read back into values it accepts.

Used wherever a schema decides what a person fills in: a connector type's settings, a workflow
template's parameters. A string is a text box, an integer a number box, a boolean a checkbox, an enum
a chooser, a map of strings a "Name: value" text area, a list of strings one a line; anything else is
typed as JSON. Each control's ``name`` is the schema's property behind a prefix (``config-base_url``),
so several schemas can share a form and the service's field names map onto the controls."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

URL_PATTERN = "^https?://"
# Words a property name spells in lower case that read better as people write them.
_WORDS = {
    "url": "URL",
    "id": "ID",
    "api": "API",
    "smtp": "SMTP",
    "oauth2": "OAuth2",
    "tls": "TLS",
    "starttls": "STARTTLS",
}
# Controls whose text is kept as typed (spaces and blank lines can matter in them).
MULTILINE = ("headers", "lines", "json")


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One property of a schema as a form control (``name`` is the form's: the prefix and the key)."""

    key: str
    name: str
    label: str
    widget: str  # text, number, checkbox, select, headers (a map of strings), lines (a list), json
    required: bool
    default: str
    options: tuple[tuple[str, str], ...] = ()
    # An enum's values by the option's text (an enum of numbers goes back as numbers).
    choices: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    hint: str = ""
    maxlength: int | None = None


def words(name: str) -> str:
    """``base_url`` → "Base URL"; a schema's own title wins over this."""
    parts = [_WORDS.get(p, p) for p in name.split("_")]
    text = " ".join(parts)
    return text[:1].upper() + text[1:]


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: Mapping[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return node


def as_text(value: Any, widget: str) -> str:
    """A value as the form's string."""
    if value is None:
        return ""
    if widget == "checkbox":
        return "on" if value else ""
    if widget == "headers" and isinstance(value, Mapping):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if widget == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if widget == "json":
        return json.dumps(value)
    return str(value)


def _field(schema: Mapping[str, Any], prefix: str, key: str, prop: Mapping[str, Any], required: bool) -> SchemaField:
    node = _resolve(schema, prop)
    if "anyOf" in node:  # ``X | None``: the first choice that is not null (an empty box is the default)
        choices = [_resolve(schema, c) for c in node["anyOf"]]
        node = next((c for c in choices if c.get("type") != "null"), {})
    kind = node.get("type")
    hints = [str(prop.get("description") or node.get("description") or "")]
    options: tuple[tuple[str, str], ...] = ()
    enum: dict[str, Any] = {}
    if "enum" in node:
        widget = "select"
        enum = {str(v): v for v in node["enum"]}
        options = tuple((text, words(text)) for text in enum)
    elif kind == "boolean":
        widget = "checkbox"
    elif kind == "integer":
        widget = "number"
        bounds = (node.get("minimum"), node.get("maximum"))
        if None not in bounds:
            hints.append(f"{bounds[0]} to {bounds[1]}.")
    elif kind == "object" and node.get("additionalProperties", {}).get("type") == "string":
        widget = "headers"
        hints.append("One a line, as Name: value.")
    elif kind == "array" and node.get("items", {}).get("type") == "string":
        widget = "lines"
        allowed = node["items"].get("enum")
        # Without the allowed words a person could only guess them.
        hints.append(f"One a line, from: {', '.join(map(str, allowed))}." if allowed else "One a line.")
    elif kind == "string":
        widget = "text"
        pattern = str(node.get("pattern", ""))
        if pattern.startswith(URL_PATTERN):
            hints.append("A web address starting with https://")
        elif "@" in pattern:
            hints.append("An e-mail address.")
    else:
        widget = "json"
        hints.append("As JSON.")
    default = prop.get("default", node.get("default"))
    return SchemaField(
        key=key,
        name=prefix + key,
        label=str(prop.get("title") or node.get("title") or words(key)),
        widget=widget,
        required=required and "default" not in prop,
        default=as_text(default, widget),
        options=options,
        choices=enum,
        hint=" ".join(h for h in hints if h),
        maxlength=node.get("maxLength"),
    )


def schema_fields(schema: Mapping[str, Any], prefix: str) -> tuple[SchemaField, ...]:
    """An object schema's properties as form controls, in the order the schema declares them."""
    root = _resolve(schema, schema)
    required = set(root.get("required", ()))
    return tuple(_field(schema, prefix, k, p, k in required) for k, p in root.get("properties", {}).items())


def whole(raw: str, field: str, errors: dict[str, str]) -> int | str:
    """A whole number typed into a form (left as typed, with a note, when it is not one)."""
    try:
        return int(raw)
    except ValueError:
        errors[field] = "a whole number"
        return raw


def _value(field: SchemaField, raw: str, errors: dict[str, str]) -> Any:
    """One control's text as the schema takes it; ``msgspec.UNSET`` leaves it at its default."""
    if field.widget == "checkbox":
        return raw == "on"
    if not raw:
        if field.required:
            errors[field.name] = "required"
        return msgspec.UNSET
    if field.widget == "number":
        return whole(raw, field.name, errors)
    if field.widget == "select":
        return field.choices.get(raw, raw)  # a tampered choice: the service says why
    if field.widget == "headers":
        headers: dict[str, str] = {}
        for line in raw.splitlines():
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                errors[field.name] = f"one a line, as Name: value (not “{line.strip()[:60]}”)"
                continue
            headers[name.strip()] = value.strip()
        return headers
    if field.widget == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if field.widget == "json":
        try:
            return json.loads(raw)
        except ValueError:
            errors[field.name] = "not valid JSON"
            return msgspec.UNSET
    return raw


def read_fields(
    fields: tuple[SchemaField, ...], data: Mapping[str, str], values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """The controls' values as the schema takes them, by property; ``values`` gets what was typed (to
    put back into a refused form) and ``errors`` a note per control that could not be read."""
    read: dict[str, Any] = {}
    for field in fields:
        raw = str(data.get(field.name, ""))
        raw = raw if field.widget in MULTILINE else raw.strip()
        values[field.name] = raw if field.widget != "checkbox" else ("on" if raw == "on" else "")
        value = _value(field, values[field.name], errors)
        if value is not msgspec.UNSET:
            read[field.key] = value
    return read
