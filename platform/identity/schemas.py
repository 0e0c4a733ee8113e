"""API shapes for users, grants, identity providers and the caller's own account."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RoleName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class GrantIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: RoleName
    # A site of the customer; omitted for a grant on the whole organisation.
    site_id: uuid.UUID | None = None


class GrantRead(msgspec.Struct, kw_only=True):
    role: str
    scope_kind: str
    scope_id: uuid.UUID | None
    source: str


class UserCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    display_name: Name
    grants: Annotated[list[GrantIn], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)
    # Without a password the user is invited: an e-mail with a single-use link to set one.
    password: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    display_name: Name | msgspec.UnsetType = msgspec.UNSET
    status: Annotated[str, msgspec.Meta(pattern=r"^(active|disabled)$")] | msgspec.UnsetType = msgspec.UNSET


class GrantsReplace(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grants: Annotated[list[GrantIn], msgspec.Meta(max_length=50)]


class UserRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str
    display_name: str
    org_kind: str
    partner_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    status: str
    totp_enabled: bool
    idp_id: uuid.UUID | None
    last_login_at: datetime | None
    created_at: datetime
    grants: list[GrantRead] = msgspec.field(default_factory=list)


class IdentityProviderCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    issuer: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=500)]
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    scopes: Annotated[str, msgspec.Meta(max_length=500)] = "openid email profile"
    email_domains: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] = msgspec.field(
        default_factory=list
    )
    hosts: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9.-]+(:[0-9]+)?$")]] = msgspec.field(default_factory=list)
    claim_mapping: dict[str, str] = msgspec.field(default_factory=dict)
    group_roles: dict[str, list[RoleName]] = msgspec.field(default_factory=dict)
    default_roles: list[RoleName] = msgspec.field(default_factory=list)
    api_audience: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    machine_clients: dict[str, list[RoleName]] = msgspec.field(default_factory=dict)


class IdentityProviderUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | msgspec.UnsetType = msgspec.UNSET
    scopes: str | msgspec.UnsetType = msgspec.UNSET
    email_domains: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    hosts: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9.-]+(:[0-9]+)?$")]] | msgspec.UnsetType = msgspec.UNSET
    claim_mapping: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    group_roles: dict[str, list[RoleName]] | msgspec.UnsetType = msgspec.UNSET
    default_roles: list[RoleName] | msgspec.UnsetType = msgspec.UNSET
    api_audience: str | msgspec.UnsetType | None = msgspec.UNSET
    machine_clients: dict[str, list[RoleName]] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class IdentityProviderRead(msgspec.Struct, kw_only=True):
    """The client secret is write-only: it never leaves the server."""

    id: uuid.UUID
    name: str
    org_kind: str
    issuer: str
    client_id: str
    scopes: str
    email_domains: list[str]
    hosts: list[str]
    claim_mapping: dict[str, str]
    group_roles: dict[str, list[str]]
    default_roles: list[str]
    api_audience: str | None
    machine_clients: dict[str, list[str]]
    enabled: bool
    redirect_uri: str = ""


class SessionRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    method: str
    ip: str | None
    user_agent: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool = False


class MeRead(msgspec.Struct, kw_only=True):
    kind: str
    id: uuid.UUID | None
    label: str
    org_kind: str
    partner_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    permissions: list[str]
    site_ids: list[uuid.UUID] | None
