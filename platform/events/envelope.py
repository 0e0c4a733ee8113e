"""The one envelope: CloudEvents 1.0 with Andon's extensions, read from the three HTTP modes.

- structured: ``application/cloudevents+json``, the attributes and ``data`` in one JSON object;
- binary: the attributes in ``ce-*`` headers, the body is ``data``;
- batch: ``application/cloudevents-batch+json``, a JSON array of structured events.

Every refusal names the field (``[2].time`` in a batch), so a sender can fix what it sends.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec

from andon.platform.events.catalogue import CATALOGUE
from andon.platform.http.errors import ValidationFailedError

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH = 500
SEVERITIES = ("critical", "high", "medium", "low", "info")
# Attribute names the spec reserves or Andon defines; other lowercase names are kept as extensions.
_CORE = frozenset({"id", "source", "specversion", "type", "subject", "time", "datacontenttype", "dataschema", "data"})
_ANDON = frozenset({"tenantid", "siteid", "assetid", "severity", "dedupkey"})
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class CloudEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=False, omit_defaults=True):
    """What Andon keeps of an incoming event, before enrichment."""

    id: Short
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    specversion: Literal["1.0"]
    type: Short
    subject: Short | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    tenantid: uuid.UUID | None = None
    # Site and asset: an Andon id or the external id the plant was imported with.
    siteid: Short | None = None
    assetid: Short | None = None
    severity: Literal["critical", "high", "medium", "low", "info"] | None = None
    dedupkey: Short | None = None
    # Other extension attributes, kept with the event; the wire name is one no sender can use.
    extras: dict[str, Any] = msgspec.field(default_factory=dict, name="andon:extras")


def _refusal(problems: list[tuple[str, str]]) -> ValidationFailedError:
    return ValidationFailedError(
        "The event is not valid: " + "; ".join(f"{field}: {message}" for field, message in problems[:10]),
        extra={"errors": [{"field": field, "message": message} for field, message in problems]},
    )


def _convert(raw: Any, where: str) -> CloudEvent:
    if not isinstance(raw, dict):
        raise _refusal([(where or "$", "an event is a JSON object")])
    try:
        event = msgspec.convert(raw, CloudEvent, strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        field = path.rstrip("`").lstrip(".") or _missing_field(message)
        raise _refusal([(f"{where}{'.' if where and field else ''}{field}", message)]) from None
    problems = _check(event, raw)
    if problems:
        raise _refusal([(f"{where}{'.' if where else ''}{field}", message) for field, message in problems])
    event.extras = {name: value for name, value in raw.items() if name not in _CORE and name not in _ANDON}
    return event


def _missing_field(message: str) -> str:
    # Only "Object missing required field `x`" names a field; "Expected `object`, got `str`" names a type.
    if "missing required field" not in message:
        return ""
    found = re.search(r"`\$?\.?([a-z0-9_]+)`", message)
    return found.group(1) if found else ""


def _check(event: CloudEvent, raw: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in raw:
        if name not in _CORE and name not in _ANDON and not _EXTENSION_NAME.match(str(name)):
            problems.append((name, "extension attribute names are lowercase letters and digits, at most 20"))
    kind = CATALOGUE.get(event.type)
    if kind is None:
        problems.append(("type", f"unknown event type; see GET /api/v1/event-types ({len(CATALOGUE)} types)"))
    elif event.data is None:
        problems.append(("data", f"{event.type} needs data"))
    else:
        try:
            msgspec.convert(event.data, kind.schema, strict=False)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$")
            inner = path.rstrip("`") if path else f".{_missing_field(message)}".rstrip(".")
            problems.append((f"data{inner}", message))
    if event.time is not None and event.time.tzinfo is None:
        problems.append(("time", "a time needs its offset (RFC 3339), for example 2026-11-25T08:00:00Z"))
    return problems


def parse_object(raw: Any, where: str = "") -> CloudEvent:
    """An already-decoded event (a mapping's output); refusals name fields under ``where``."""
    return _convert(raw, where)


def parse_structured(body: bytes) -> CloudEvent:
    return _convert(_json(body), "")


def parse_batch(body: bytes) -> list[tuple[CloudEvent, bytes]]:
    """The events of a batch, each with its own JSON as it arrived (re-encoded, key order kept)."""
    raw = _json(body)
    if not isinstance(raw, list):
        raise _refusal([("$", "a batch is a JSON array of events")])
    if not raw:
        raise _refusal([("$", "the batch is empty")])
    if len(raw) > MAX_BATCH:
        raise _refusal([("$", f"a batch holds at most {MAX_BATCH} events; this one has {len(raw)}")])
    events: list[tuple[CloudEvent, bytes]] = []
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(raw):
        try:
            events.append((_convert(item, f"[{index}]"), msgspec.json.encode(item)))
        except ValidationFailedError as exc:
            problems += [(e["field"], e["message"]) for e in exc.extra["errors"]]
    if problems:
        raise _refusal(problems)  # all or nothing: a sender retries the whole batch
    return events


def parse_binary(headers: dict[str, str], content_type: str, body: bytes) -> CloudEvent:
    """Binary mode: ``ce-`` headers (percent-encoded values, per the HTTP binding) and the body as data."""
    raw: dict[str, Any] = {
        name[3:]: unquote(value) for name, value in headers.items() if name.lower().startswith("ce-")
    }
    raw = {name.lower(): value for name, value in raw.items()}
    if content_type:
        raw["datacontenttype"] = content_type
    if body:
        raw["data"] = _json(body) if "json" in content_type else body.decode(errors="replace")
    return _convert(raw, "")


def _json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _refusal([("$", f"the body is not JSON ({exc})")]) from None
