"""Per-source mappings: JMESPath expressions that turn a vendor's payload into CloudEvents.

A mapping names an expression per envelope attribute (``id``, ``type``, ``subject``, ``time``,
``severity``, ``dedupkey``, ``siteid``, ``assetid``, ``data``), evaluated against one item of the
payload; ``items`` (optional) picks the list of items out of a payload that carries several. A
constant is a JMESPath raw string: ``'dev.andon.machine.alarm.v1'``. ``severity_values`` translates a
vendor's severities (``{"1": "critical"}``). The source is always the connection's: a mapping cannot
speak for another sender.

Without a mapping, a payload that is a CloudEvent is kept as it is, and any other JSON becomes the
``data`` of the connection's event type.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError

from andon.platform.events.envelope import SEVERITIES, CloudEvent, parse_object
from andon.platform.http.errors import ValidationFailedError, field_error

ATTRIBUTES = ("id", "type", "subject", "time", "severity", "dedupkey", "siteid", "assetid", "data")
KEYS = frozenset({*ATTRIBUTES, "items", "severity_values"})
MAX_ITEMS = 500


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the connection (and the channel) contribute to every event it maps."""

    source: str
    event_type: str | None
    # The id when the payload names none: the delivery's own id (webhook-id), else a hash of the item.
    delivery_id: str | None = None
    # Attributes the channel knows (the site of an MQTT topic), used where the payload says nothing.
    defaults: Mapping[str, str] | None = None


def mapping_problems(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Why a mapping cannot be used, field by field (empty: it compiles)."""
    problems: list[tuple[str, str]] = []
    for key, value in mapping.items():
        where = f"mapping.{key}"
        if key not in KEYS:
            problems.append((where, f"unknown attribute; a mapping sets {', '.join(sorted(KEYS))}"))
        elif key == "severity_values":
            if not isinstance(value, dict) or any(v not in SEVERITIES for v in value.values()):
                problems.append((where, f"an object from the vendor's values to one of {', '.join(SEVERITIES)}"))
        elif not isinstance(value, str) or not value.strip():
            problems.append((where, "a JMESPath expression (a constant is a raw string: 'text')"))
        else:
            try:
                jmespath.compile(value)
            except JMESPathError as exc:
                problems.append((where, f"not a JMESPath expression: {str(exc).splitlines()[0]}"))
    return problems


def check_mapping(mapping: Mapping[str, Any] | None) -> None:
    if mapping is None:
        return
    problems = mapping_problems(mapping)
    if problems:
        raise ValidationFailedError(
            "The mapping is not valid: " + "; ".join(f"{f}: {m}" for f, m in problems),
            extra={"errors": [{"field": f, "message": m} for f, m in problems]},
        )


def item_digest(item: Any) -> str:
    """A stable id for an item that names none: the same record polled twice is the same event."""
    return hashlib.sha256(msgspec.json.encode(item, order="sorted")).hexdigest()


def map_payload(payload: Any, mapping: Mapping[str, Any] | None, stamp: Stamp) -> list[CloudEvent]:
    """The events a payload stands for. All or nothing: any refusal names its field (``[2].time``)."""
    return [event for event, _ in map_items(payload, mapping, stamp)]


def map_items(payload: Any, mapping: Mapping[str, Any] | None, stamp: Stamp) -> list[tuple[CloudEvent, Any]]:
    """Each event of a payload with the vendor item it was made from."""
    if mapping is None:
        return [(_unmapped(payload, stamp), payload)]
    items = [payload]
    if "items" in mapping:
        found = _search(mapping["items"], payload, "mapping.items")
        if not isinstance(found, list):
            raise field_error("mapping.items", f"gave {type(found).__name__}, not a list of items")
        if len(found) > MAX_ITEMS:
            raise field_error("mapping.items", f"gave {len(found)} items; at most {MAX_ITEMS} per delivery")
        items = found
    several = "items" in mapping
    events: list[tuple[CloudEvent, Any]] = []
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        where = f"[{index}]" if several else ""
        try:
            events.append((parse_object(_envelope(item, mapping, stamp, index if several else None), where), item))
        except ValidationFailedError as exc:
            problems += [(e["field"], e["message"]) for e in exc.extra["errors"]]
    if problems:
        raise ValidationFailedError(
            "The mapped events are not valid: " + "; ".join(f"{f}: {m}" for f, m in problems[:10]),
            extra={"errors": [{"field": f, "message": m} for f, m in problems]},
        )
    return events


def _unmapped(payload: Any, stamp: Stamp) -> CloudEvent:
    if isinstance(payload, dict) and "specversion" in payload:
        payload = {**payload}
        payload.setdefault("source", stamp.source)
        event = parse_object(payload)
        # The connection's credential vouches for its own source and what lies under it, never for
        # another's: otherwise it could forge (or pre-empt the ids of) events of other senders.
        if event.source != stamp.source and not event.source.startswith(stamp.source + "/"):
            raise field_error("source", f"events on this connection come from {stamp.source} (or {stamp.source}/...)")
        return event
    if stamp.event_type is None:
        raise field_error(
            "specversion",
            "this connection takes CloudEvents only; set its event_type or a mapping to accept other JSON",
        )
    envelope: dict[str, Any] = {
        "id": stamp.delivery_id or item_digest(payload),
        "source": stamp.source,
        "specversion": "1.0",
        "type": stamp.event_type,
        "datacontenttype": "application/json",
        "data": payload,
    }
    for name, value in (stamp.defaults or {}).items():
        envelope.setdefault(name, value)
    return parse_object(envelope)


def _envelope(item: Any, mapping: Mapping[str, Any], stamp: Stamp, index: int | None) -> dict[str, Any]:
    envelope: dict[str, Any] = {"specversion": "1.0", "source": stamp.source, "datacontenttype": "application/json"}
    for name in ATTRIBUTES:
        if name in mapping:
            value = _search(mapping[name], item, f"{'' if index is None else f'[{index}].'}{name}")
            if value is not None:
                envelope[name] = value
    for name, value in (stamp.defaults or {}).items():
        envelope.setdefault(name, value)
    envelope.setdefault("type", stamp.event_type)
    envelope.setdefault("data", item)
    if "id" not in envelope:
        if stamp.delivery_id is None:
            envelope["id"] = item_digest(item)
        else:
            envelope["id"] = stamp.delivery_id if index is None else f"{stamp.delivery_id}#{index}"
    for name in ("id", "subject", "siteid", "assetid", "dedupkey"):
        if isinstance(envelope.get(name), int | float) and not isinstance(envelope[name], bool):
            envelope[name] = str(envelope[name])
    if "severity" in envelope:
        severity = envelope["severity"]
        table = mapping.get("severity_values") or {}
        envelope["severity"] = table.get(str(severity), str(severity).lower())
    if isinstance(envelope.get("time"), int | float) and not isinstance(envelope["time"], bool):
        envelope["time"] = _epoch(envelope["time"])
    return envelope


def _epoch(value: float) -> str:
    # Vendors send seconds or milliseconds since the epoch; beyond year 5138 in seconds it is milliseconds.
    seconds = value / 1000 if value > 1e11 else value
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _search(expression: str, document: Any, where: str) -> Any:
    try:
        return jmespath.search(expression, document)
    except JMESPathError as exc:
        raise field_error(where, f"the expression failed: {str(exc).splitlines()[0]}") from None
