"""The event types Andon understands, each with the schema of its ``data``.

Names follow CloudEvents' reverse-DNS convention under ``dev.andon.``, with a version suffix so a
type can change shape without breaking senders of the old one. Schemas name what a workflow needs
and let vendors send more (unknown fields are kept, not refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Reason = Annotated[str, msgspec.Meta(max_length=2000)]


class _Data(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    pass


class MachineAlarm(_Data):
    code: Code
    message: Text
    state: Literal["raised", "cleared", "acknowledged"] = "raised"
    value: float | None = None
    limit: float | None = None


class MachineStateChange(_Data):
    state: Literal["running", "idle", "stopped", "fault", "maintenance", "setup", "offline"]
    previous: str | None = None
    reason: Reason | None = None


class DowntimeStart(_Data):
    reason: Reason
    category: Literal["planned", "unplanned"] = "unplanned"


class DowntimeEnd(_Data):
    reason: Reason | None = None
    minutes: Annotated[float, msgspec.Meta(ge=0)] | None = None


class QualityDeviation(_Data):
    characteristic: Text
    measured: float | None = None
    lower_limit: float | None = None
    upper_limit: float | None = None
    lot: Code | None = None
    nonconformance_id: Code | None = None


class InventoryException(_Data):
    material: Code
    kind: Literal["shortage", "excess", "mismatch", "blocked"]
    quantity: float | None = None
    unit: Code | None = None


class SupplierDelay(_Data):
    supplier: Text
    kind: Literal["asn_late", "edi_exception", "short_shipment", "quality_hold"]
    reference: Code | None = None
    expected_at: str | None = None
    material: Code | None = None


class FieldServiceCase(_Data):
    case_id: Code
    summary: Text
    customer: Text | None = None
    product: Text | None = None


class CustomerOrderRisk(_Data):
    order_id: Code
    risk: Text
    due_at: str | None = None
    customer: Text | None = None


class EngineeringChange(_Data):
    change_id: Code
    title: Text
    affected_items: list[Code] = msgspec.field(default_factory=list)


class ShiftHandover(_Data):
    shift: Text
    notes: Annotated[str, msgspec.Meta(max_length=10_000)]
    open_issues: list[Text] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    title: str
    schema: type[_Data]
    # An alarm-like event has a lifecycle (raised, cleared) and is what correlation merges.
    alarm: bool = False


CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("dev.andon.machine.alarm.v1", "Machine alarm", MachineAlarm, alarm=True),
        EventType("dev.andon.machine.state_changed.v1", "Machine state change", MachineStateChange),
        EventType("dev.andon.downtime.started.v1", "Downtime started", DowntimeStart, alarm=True),
        EventType("dev.andon.downtime.ended.v1", "Downtime ended", DowntimeEnd),
        EventType("dev.andon.quality.deviation.v1", "Quality deviation / nonconformance", QualityDeviation, alarm=True),
        EventType("dev.andon.inventory.exception.v1", "Inventory exception", InventoryException, alarm=True),
        EventType("dev.andon.supplier.delay.v1", "Supplier delay (ASN late, EDI exception)", SupplierDelay, alarm=True),
        EventType("dev.andon.field.case.v1", "Field service case", FieldServiceCase, alarm=True),
        EventType("dev.andon.order.risk.v1", "Customer order risk", CustomerOrderRisk, alarm=True),
        EventType("dev.andon.engineering.change.v1", "Engineering change", EngineeringChange),
        EventType("dev.andon.shift.handover.v1", "Shift handover", ShiftHandover),
    )
}


def json_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema of a type's ``data``, for the catalogue endpoint and for partners' mappings."""
    schema: dict[str, Any] = msgspec.json.schema(event_type.schema)
    return schema
