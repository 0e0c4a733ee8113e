"""API shapes for the plant hierarchy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="IANA time zone")]
Text100 = Annotated[str, msgspec.Meta(max_length=100)]
Criticality = Annotated[str, msgspec.Meta(pattern=r"^[ABC]$", description="A (critical), B or C")]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local")]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7, description="ISO weekday, 1 = Monday")]


class _In(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Out(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class SiteCreate(_In, kw_only=True):
    name: Name
    external_id: ExternalId | None = None
    timezone: TimeZoneName = "UTC"
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class SiteUpdate(_In, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    external_id: ExternalId | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    description: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType | None = msgspec.UNSET


class SiteRead(_Out, kw_only=True):
    name: str
    external_id: str | None
    timezone: str
    description: str | None


class AreaCreate(_In, kw_only=True):
    site_id: uuid.UUID
    name: Name
    external_id: ExternalId | None = None


class AreaUpdate(_In, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    external_id: ExternalId | msgspec.UnsetType | None = msgspec.UNSET


class AreaRead(_Out, kw_only=True):
    site_id: uuid.UUID
    name: str
    external_id: str | None


class LineCreate(_In, kw_only=True):
    site_id: uuid.UUID
    area_id: uuid.UUID | None = None
    name: Name
    external_id: ExternalId | None = None


class LineUpdate(_In, kw_only=True):
    area_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    name: Name | msgspec.UnsetType = msgspec.UNSET
    external_id: ExternalId | msgspec.UnsetType | None = msgspec.UNSET


class LineRead(_Out, kw_only=True):
    site_id: uuid.UUID
    area_id: uuid.UUID | None
    name: str
    external_id: str | None


class AssetCreate(_In, kw_only=True):
    site_id: uuid.UUID
    line_id: uuid.UUID | None = None
    name: Name
    external_id: ExternalId | None = None
    asset_type: Text100 | None = None
    manufacturer: Text100 | None = None
    model: Text100 | None = None
    serial_number: Text100 | None = None
    criticality: Criticality | None = None


class AssetUpdate(_In, kw_only=True):
    line_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    name: Name | msgspec.UnsetType = msgspec.UNSET
    external_id: ExternalId | msgspec.UnsetType | None = msgspec.UNSET
    asset_type: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    manufacturer: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    model: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    serial_number: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    criticality: Criticality | msgspec.UnsetType | None = msgspec.UNSET


class AssetRead(_Out, kw_only=True):
    site_id: uuid.UUID
    line_id: uuid.UUID | None
    name: str
    external_id: str | None
    asset_type: str | None
    manufacturer: str | None
    model: str | None
    serial_number: str | None
    criticality: str | None


RosterRole = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="e.g. supervisor")]
PersonRef = Annotated[str, msgspec.Meta(min_length=3, max_length=320, description="a user's e-mail or id")]
Roster = Annotated[
    dict[RosterRole, Annotated[list[PersonRef], msgspec.Meta(max_length=50)]], msgspec.Meta(max_length=30)
]


class Shift(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    start: ClockTime
    # Before ``start``: the shift ends the next day (a night shift); ``days`` are the days it starts.
    end: ClockTime
    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7]
    )
    # Who is on duty in this shift, by role: users of the customer (e-mail or id). Escalation
    # ladders page ``{role: ..., on_shift: true}`` from here. Left out when not set.
    roster: Roster | msgspec.UnsetType = msgspec.UNSET


Shifts = Annotated[list[Shift], msgspec.Meta(max_length=24)]


class ShiftCalendarCreate(_In, kw_only=True):
    site_id: uuid.UUID
    name: Name
    external_id: ExternalId | None = None
    timezone: TimeZoneName | None = None
    shifts: Shifts = msgspec.field(default_factory=list)


class ShiftCalendarUpdate(_In, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    external_id: ExternalId | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    shifts: Shifts | msgspec.UnsetType = msgspec.UNSET


class ShiftCalendarRead(_Out, kw_only=True):
    site_id: uuid.UUID
    name: str
    external_id: str | None
    timezone: str
    shifts: list[Shift]
