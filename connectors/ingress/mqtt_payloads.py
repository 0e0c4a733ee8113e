"""What one MQTT message on an mqtt connection is, as a delivery for the intake.

Topics. A connection's topic filter is relative to its customer's namespace: Andon subscribes to
``<mqtt.topic_root>/<customer id>/<topic>``, so a filter (even ``#``) never reaches another customer's
messages. ``site_level`` counts levels of the relative topic: with ``plants/+/alarms/#`` and
``site_level`` 1, a message on ``andon/<customer>/plants/north/alarms/E42`` names the site ``north``
(an Andon id or the external id of the plant import), used where the payload names none.

Payloads.
- ``plain``: JSON, handled as a webhook body is: a CloudEvent is kept (its own id), any other JSON is
  mapped by the connection's mapping, or becomes the ``data`` of its ``event_type``.
- ``sparkplug``: a Sparkplug-B-like JSON body
  ``{"timestamp": <ms>, "seq": <n>, "metrics": [{"name": "code", "value": "E42", "timestamp": <ms>}, ...]}``.
  The event's ``data`` is ``{metric name: value}`` (a later metric of the same name wins; ``isNull``
  metrics give ``null``; aliases are not resolved, so every metric needs its name); its ``time`` is the
  body's ``timestamp``, else the newest metric's; a mapping, if any, reads that ``data`` object.

Event ids (what makes a repeat the same event, stored once per tenant + source + id):
- a CloudEvent's own ``id``, or what the mapping's ``id`` expression gives, comes first;
- sparkplug: a SHA-256 of relative topic, ``seq`` and timestamp;
- otherwise a SHA-256 of relative topic and body. A QoS 1 redelivery (after a reconnect or a crash
  before the acknowledgement) is byte-for-byte the same message, so it is stored once. The cost: two
  byte-identical readings on one topic are one event, so gateways should put a timestamp or a
  sequence number in what they publish (any field that differs makes a different id), or the
  connection should map ``id``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from andon.connectors.sources.intake import Check, Delivery
from andon.connectors.sources.kinds import MqttConfig
from andon.connectors.sources.repository import ConnectionFound
from andon.platform.http.errors import AndonError, ValidationFailedError, field_error

MAX_METRICS = 500
# Milliseconds since the epoch, up to the end of year 9999.
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)]


class PayloadTooLargeError(AndonError):
    status_code = 413
    title = "Content too large"
    type_slug = "payload-too-large"


def namespace(topic_root: str, tenant_id: uuid.UUID) -> str:
    """The customer's own part of the broker: every topic of its connections lies below it."""
    return f"{topic_root}/{tenant_id}/"


def subscription_filter(topic_root: str, tenant_id: uuid.UUID, topic: str) -> str:
    """The filter Andon subscribes to for a connection: its topic under the customer's namespace."""
    return namespace(topic_root, tenant_id) + topic


class _Metric(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    value: Any = None
    timestamp: Millis | None = None


class _Sparkplug(msgspec.Struct, kw_only=True):
    metrics: Annotated[list[_Metric], msgspec.Meta(min_length=1, max_length=MAX_METRICS)]
    timestamp: Millis | None = None
    seq: Annotated[int, msgspec.Meta(ge=0)] | None = None


@dataclass(frozen=True, slots=True)
class SparkplugReading:
    data: dict[str, Any]
    # Milliseconds since the epoch: the body's timestamp, else the newest metric's; None: neither has one.
    timestamp: int | None
    seq: int | None

    @property
    def time(self) -> str | None:
        if self.timestamp is None:
            return None
        return datetime.fromtimestamp(self.timestamp / 1000, UTC).isoformat()


def sparkplug_reading(body: bytes) -> SparkplugReading:
    """The metrics of a Sparkplug-like JSON body; a refusal names the field (``metrics[2].name``)."""
    try:
        decoded = msgspec.json.decode(body, type=_Sparkplug)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        field = path.rstrip("`").lstrip(".")
        if message.startswith("Object missing required field"):
            # "Object missing required field `name`" at the object: the field is the one it names.
            field = ".".join(filter(None, (field, message.split("`")[1])))
        field = field or "$"
        raise field_error(field, f"{message} (a Sparkplug body has metrics: [{{name, value}}, ...])") from None
    except msgspec.DecodeError as exc:
        raise field_error("$", f"the body is not JSON ({exc})") from None
    stamps = [m.timestamp for m in decoded.metrics if m.timestamp is not None]
    timestamp = decoded.timestamp if decoded.timestamp is not None else max(stamps, default=None)
    return SparkplugReading(
        data={metric.name: metric.value for metric in decoded.metrics}, timestamp=timestamp, seq=decoded.seq
    )


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def _refuse(problem: AndonError) -> Check:
    """A refusal found before the intake runs, raised inside it so that it is logged on the connection."""

    def check(found: ConnectionFound, now: datetime) -> None:
        raise problem

    return check


def site_of(config: MqttConfig, topic: str) -> str | None:
    """The site the relative topic names at ``site_level``, if it has that level."""
    if config.site_level is None:
        return None
    levels = topic.split("/")
    if config.site_level >= len(levels):
        return None
    return levels[config.site_level] or None


def delivery_for(
    config: MqttConfig, topic: str, relative: str, body: bytes, *, max_bytes: int
) -> tuple[Delivery, Check | None]:
    """The delivery one message is, and a check that refuses it when it cannot be one (too large, or
    not the Sparkplug body the connection expects). ``topic`` is the full topic, ``relative`` the part
    below the customer's namespace."""
    if len(body) > max_bytes:
        problem = PayloadTooLargeError(f"the message has {len(body)} bytes; at most {max_bytes} are taken")
        return Delivery(body=b"", payloads=[], reference=topic), _refuse(problem)
    defaults: dict[str, str] = {}
    site = site_of(config, relative)
    if site is not None:
        defaults["siteid"] = site
    if config.payload == "plain":
        delivery_id = _digest(relative.encode(), body)
        return Delivery(body=body, reference=topic, delivery_id=delivery_id, defaults=defaults), None
    try:
        reading = sparkplug_reading(body)
    except ValidationFailedError as problem:
        return Delivery(body=body, payloads=[], reference=topic), _refuse(problem)
    if reading.timestamp is None:
        delivery_id = _digest(relative.encode(), body)
    else:
        delivery_id = _digest(relative.encode(), str(reading.seq).encode(), str(reading.timestamp).encode())
    if reading.time is not None:
        defaults["time"] = reading.time
    delivery = Delivery(body=body, payloads=[reading.data], reference=topic, delivery_id=delivery_id, defaults=defaults)
    return delivery, None
