"""Shapes shared by every API: pages of results and field updates."""

from __future__ import annotations

from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from andon.platform.http.errors import ValidationFailedError

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    total: int
    limit: int
    offset: int


def to_read(obj: Any, schema: type[T]) -> T:
    return msgspec.convert(obj, schema, from_attributes=True)


def apply_update(obj: Any, data: msgspec.Struct) -> dict[str, Any]:
    """Copy the fields the client sent onto ``obj``; returns what was set, for checks and audit."""
    changed: dict[str, Any] = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            setattr(obj, name, value)
            changed[name] = value
    return changed


def check_timezone(name: str, field: str = "timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailedError(
            f"'{name}' is not a known IANA time zone (for example Europe/Berlin)",
            extra={"errors": [{"field": field, "message": "unknown time zone"}]},
        ) from None
    return name
