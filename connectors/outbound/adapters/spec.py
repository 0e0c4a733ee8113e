"""The format of an adapter spec file: a connector type declared as data, on top of the REST adapter.

A spec names the vendor system's extra settings and the authentications it accepts, and per capability
its typed inputs, the request (method, path, query, headers and body as templates over ``inputs``,
``config`` and ``idempotency_key``), the typed outputs (each a JMESPath into the answer, or a template),
and which vendor answers are which failure. Partners add a vendor by adding a file, not code.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from andon.connectors.outbound.rest import Auth

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
FieldType = Literal["string", "integer", "number", "boolean", "datetime", "date", "object", "array", "any"]
ErrorKind = Literal["invalid", "forbidden", "not_found", "failed", "unavailable"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class SpecError(ValueError):
    """A spec file that cannot become a connector type; the message names the file and the field."""


_SIZED = frozenset({"string", "array"})
_NUMERIC = frozenset({"integer", "number"})


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One typed value; it becomes a field of a msgspec struct, so it is checked and has a JSON Schema."""

    type: FieldType = "string"
    title: Text | None = None
    description: Text | None = None
    required: bool = False
    # Absent: an optional field is null when not given (and left out of request bodies).
    default: Any = msgspec.UNSET
    enum: list[str] | None = None
    min_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pattern: Text | None = None
    ge: int | float | None = None
    le: int | float | None = None
    examples: list[Any] | None = None
    # array: the type of each item; object: its fields (without them, any JSON object).
    items: FieldSpec | None = None
    fields: dict[Name, FieldSpec] | None = None

    def __post_init__(self) -> None:
        if self.enum is not None and (self.type != "string" or not self.enum):
            raise ValueError("enum: a non-empty list, for a string field only")
        if (self.min_length is not None or self.max_length is not None) and self.type not in _SIZED:
            raise ValueError(f"min_length/max_length: for string or array fields, not {self.type}")
        if self.pattern is not None and (self.type != "string" or self.enum is not None):
            raise ValueError("pattern: for a string field without enum only")
        if (self.ge is not None or self.le is not None) and self.type not in _NUMERIC:
            raise ValueError(f"ge/le: for integer or number fields, not {self.type}")
        if self.items is not None and self.type != "array":
            raise ValueError("items: for an array field only")
        if self.fields is not None and self.type != "object":
            raise ValueError("fields: for an object field only")
        if self.required and self.default is not msgspec.UNSET:
            raise ValueError("a required field has no default")


class OutputSpec(FieldSpec, forbid_unknown_fields=True, kw_only=True):
    """An output: ``path`` (JMESPath into the answer's JSON) or ``value`` (a template that may use
    ``answer`` as well as ``inputs`` and ``config``)."""

    path: Text | None = None
    value: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.path is None) == (self.value is None):
            raise ValueError("an output has either path (JMESPath) or value (a template)")


class RequestSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    method: Method = "POST"
    # Values put into the path are percent-encoded, so an input cannot add a segment or a query.
    path: Text
    # A query parameter or body member that renders to null is left out.
    query: dict[str, Text] = {}
    headers: dict[str, Text] = {}
    # Any JSON; a string that is one whole ``{{ ... }}`` keeps its value's type (a number, a list, null).
    body: Any = None


class ErrorRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which answers are which failure; the first rule that matches wins, before the status codes' own
    meaning. ``status``: the codes it applies to (empty: any, 2xx included); ``when``: a JMESPath on the
    answer's JSON that must be truthy; ``message``: a JMESPath to the vendor's own words."""

    status: list[Annotated[int, msgspec.Meta(ge=100, le=599)]] = []
    when: Text | None = None
    kind: ErrorKind
    message: Text | None = None

    def __post_init__(self) -> None:
        if not self.status and self.when is None:
            raise ValueError("an error rule needs status or when (else it matches every answer)")


class CapabilitySpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Text
    description: Text = ""
    inputs: dict[Name, FieldSpec] = {}
    request: RequestSpec
    outputs: dict[Name, OutputSpec] = {}
    errors: list[ErrorRule] = []


class AdapterSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    title: Text
    description: Text
    # The authentications the vendor accepts; the first is the default.
    auth: Annotated[list[Auth], msgspec.Meta(min_length=1)]
    # Settings beyond the REST adapter's (a site code, a table name), usable as ``config.<name>``.
    config: dict[Name, FieldSpec] = {}
    # What "check connection" calls (a cheap read); without it, the base URL.
    check: RequestSpec | None = None
    # Rules for every capability, after the capability's own.
    errors: list[ErrorRule] = []
    capabilities: Annotated[dict[Name, CapabilitySpec], msgspec.Meta(min_length=1)]
