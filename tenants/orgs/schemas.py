"""API shapes for partners and customers (input and output kept apart)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Slug = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=63,
        pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
        description="lower-case letters, digits and hyphens",
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ORG_STATUSES = ("active", "suspended")
Status = Annotated[str, msgspec.Meta(pattern=r"^(active|suspended)$")]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="IANA time zone")]


class PartnerCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: Name


class PartnerUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET


class PartnerRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


class CustomerCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: Name
    default_timezone: TimeZoneName = "UTC"
    # Only the platform operator names the partner; a partner always creates under itself.
    partner_id: uuid.UUID | None = None


class CustomerUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    default_timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    # Set by the customer only: may its partner act inside it, and until when.
    partner_access: bool | msgspec.UnsetType = msgspec.UNSET
    partner_access_until: Annotated[datetime, msgspec.Meta(tz=True)] | msgspec.UnsetType | None = msgspec.UNSET


class CustomerRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    partner_id: uuid.UUID
    slug: str
    name: str
    status: str
    default_timezone: str
    partner_access: bool
    partner_access_until: datetime | None
    created_at: datetime
    updated_at: datetime
