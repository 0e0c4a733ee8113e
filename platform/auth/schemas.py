"""API shapes for API keys. The plaintext appears in exactly one response: the one that creates it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

RoleName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    roles: Annotated[list[RoleName], msgspec.Meta(min_length=1, max_length=20)]
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class ApiKeyRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    prefix: str
    org_kind: str
    partner_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    roles: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str
    created_at: datetime


class ApiKeyIssued(ApiKeyRead, kw_only=True):
    key: str = msgspec.field(name="key")
    notice: str = "Store this key now: it is shown only once."


class RoleRead(msgspec.Struct, kw_only=True):
    name: str
    title: str
    org_kind: str
    permissions: list[str]
    description: str
