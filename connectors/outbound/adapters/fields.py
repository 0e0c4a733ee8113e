"""A spec's field schemas as msgspec structs, made once at load: inputs are checked by msgspec and the
portal's form and the API's JSON Schema come from the same struct."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from andon.connectors.outbound.adapters.spec import FieldSpec

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "datetime": datetime,
    "date": date,
    "any": Any,
}

_FORMATS = {"datetime": "date-time", "date": "date"}


def struct_name(*parts: str) -> str:
    return "".join(part.replace("_", " ").title().replace(" ", "") for part in parts)


def annotation(name: str, spec: FieldSpec) -> Any:
    """The Python type of one field (a nested struct for an object with fields), with its constraints."""
    kind: Any
    if spec.enum is not None:
        kind = Literal[tuple(spec.enum)]
    elif spec.type == "object":
        kind = make_struct(name, spec.fields) if spec.fields is not None else dict[str, Any]
    elif spec.type == "array":
        kind = list[annotation(name + "Item", spec.items)] if spec.items is not None else list[Any]  # type: ignore[misc]
    else:
        kind = _SCALARS[spec.type]
    constraints: dict[str, Any] = {
        key: value
        for key, value in {
            "title": spec.title,
            "description": spec.description,
            "min_length": spec.min_length,
            "max_length": spec.max_length,
            "pattern": spec.pattern,
            "ge": spec.ge,
            "le": spec.le,
            "examples": spec.examples,
        }.items()
        if value is not None
    }
    if spec.type in _FORMATS:  # so a form offers a date picker, not a text box
        constraints["extra_json_schema"] = {"format": _FORMATS[spec.type]}
    return Annotated[kind, msgspec.Meta(**constraints)] if constraints else kind


def make_struct(
    name: str,
    fields: Mapping[str, FieldSpec],
    base: type[msgspec.Struct] | None = None,
    extra: Iterable[tuple[str, Any, Any]] = (),
) -> type[Any]:
    """A struct of ``fields`` (and ``extra`` ones, already typed); unknown fields are refused, so a
    misspelt input is an error, not lost."""
    made: list[tuple[str, Any, Any]] = list(extra)
    for field_name, spec in fields.items():
        kind = annotation(name + struct_name(field_name), spec)
        if spec.required:
            made.append((field_name, kind, msgspec.NODEFAULT))
        else:
            default = None if spec.default is msgspec.UNSET else spec.default
            try:
                msgspec.convert(default, kind | None)
            except msgspec.ValidationError as exc:
                raise ValueError(f"{field_name}.default: {exc}") from None
            made.append((field_name, kind | None, default))
    return msgspec.defstruct(
        name, made, bases=(base,) if base is not None else None, kw_only=True, forbid_unknown_fields=True
    )
