"""Telling the caller's bad value apart from the database's own trouble."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


def is_data_exception(exc: DBAPIError) -> bool:
    """SQLSTATE class 22, "data exception": PostgreSQL refuses a value SQLite accepts (a NUL character
    in text, an out-of-range number). The input's fault, not worth a retry; anything else may pass."""
    code = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return code.startswith("22")
