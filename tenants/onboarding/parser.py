"""Reading a plant import file (CSV or JSON) into rows, with a line-numbered error for every flaw.

One row describes one node: ``kind`` (site, area, line, asset), the customer's ``external_id`` for it,
its ``name`` and, below a site, the ``parent_external_id`` it hangs from. Row numbers are the CSV line
numbers (the header is line 1) or, for JSON, the 1-based position in the list.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from andon.platform.http.errors import UnsupportedMediaTypeError, ValidationFailedError

KINDS = ("site", "area", "line", "asset")
REQUIRED = ("kind", "external_id", "name")
OPTIONAL = (
    "parent_external_id",
    "timezone",
    "description",
    "asset_type",
    "manufacturer",
    "model",
    "serial_number",
    "criticality",
)
COLUMNS = REQUIRED + OPTIONAL
MAX_ROWS = 50_000


@dataclass(slots=True)
class RawRow:
    number: int
    values: dict[str, str]


@dataclass(slots=True)
class RowError:
    row: int
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(slots=True)
class ParsedFile:
    rows: list[RawRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _file_error(message: str) -> ValidationFailedError:
    return ValidationFailedError(message, extra={"errors": [{"row": None, "field": None, "message": message}]})


def decode(body: bytes) -> str:
    if not body.strip():
        raise _file_error("the file is empty")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(
            f"the file is not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8 CSV and upload again"
        ) from None
    if "\x00" in text:
        raise _file_error("the file contains NUL bytes; it looks binary, not CSV or JSON")
    return text


def _clean(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(type(value).__name__)
    return str(value).strip()


def parse_csv(text: str) -> ParsedFile:
    parsed = ParsedFile()
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise _file_error(f"line 1: malformed CSV header ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s) " + ", ".join(unknown))
        raise _file_error(f"line 1: {'; '.join(parts)}. Columns are: {', '.join(COLUMNS)}")
    reader.fieldnames = header
    try:
        for record in reader:
            line = reader.line_num
            if len(parsed.rows) >= MAX_ROWS:
                raise _file_error(f"the file has more than {MAX_ROWS} rows; split it")
            extra = record.pop(None, None)
            if extra:
                parsed.errors.append(RowError(line, None, f"{len(extra)} more value(s) than the header has columns"))
                continue
            if all(v in (None, "") for v in record.values()):
                continue
            if any(v is None for v in record.values()):
                parsed.errors.append(RowError(line, None, "fewer values than the header has columns"))
                continue
            parsed.rows.append(RawRow(line, {k: _clean(v) for k, v in record.items()}))
    except csv.Error as exc:
        raise _file_error(f"line {reader.line_num}: malformed CSV ({exc})") from None
    return parsed


def parse_json(text: str) -> ParsedFile:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _file_error(f"line {exc.lineno}, column {exc.colno}: malformed JSON ({exc.msg})") from None
    except (RecursionError, ValueError):
        # Nesting deeper than the parser allows, or a number too long to convert.
        raise _file_error("malformed JSON: nested too deeply or a number is too long") from None
    items = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise _file_error('JSON must be a list of rows or an object {"rows": [...]}')
    if len(items) > MAX_ROWS:
        raise _file_error(f"the file has more than {MAX_ROWS} rows; split it")
    parsed = ParsedFile()
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            parsed.errors.append(RowError(number, None, "each row must be an object"))
            continue
        unknown = sorted(set(item) - set(COLUMNS))
        if unknown:
            parsed.errors.append(RowError(number, unknown[0], f"unknown field(s): {', '.join(unknown)}"))
            continue
        try:
            values = {c: _clean(item[c]) for c in COLUMNS if c in item}
        except TypeError as exc:
            parsed.errors.append(RowError(number, None, f"values must be text or numbers, not {exc}"))
            continue
        parsed.rows.append(RawRow(number, values))
    return parsed


def parse(body: bytes, content_type: str) -> ParsedFile:
    text = decode(body)
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/json", "text/json"):
        return parse_json(text)
    if kind in ("text/csv", "application/csv", "text/plain", ""):
        return parse_csv(text)
    raise UnsupportedMediaTypeError(f"unsupported content type '{kind}': send text/csv or application/json")
