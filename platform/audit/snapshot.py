"""A JSON-safe picture of a row for an audit entry's before/after."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect

# Never written to the audit trail, whatever the table.
REDACTED_COLUMNS = frozenset({"key_hash", "secret", "password_hash"})


def json_safe(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def snapshot(obj: Any, *, skip: frozenset[str] = frozenset({"created_at", "updated_at"})) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {
        attr.key: json_safe(getattr(obj, attr.key))
        for attr in mapper.column_attrs
        if attr.key not in REDACTED_COLUMNS and attr.key not in skip
    }
