"""People: users of an org node, their role grants, login sessions, and one-time tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.crypto.sealed import SEALED
from andon.platform.db.base import Base, OrgOwnedMixin, RecordMixin
from andon.platform.db.types import JSONType, UTCDateTime


class IdentityProvider(OrgOwnedMixin, RecordMixin, Base):
    """An organisation's OpenID Connect provider, with the claim mapping for its users."""

    __tablename__ = "identity_providers"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    issuer: Mapped[str] = mapped_column(String(500), nullable=False)
    client_id: Mapped[str] = mapped_column(String(200), nullable=False)
    client_secret_sealed: Mapped[str] = mapped_column(Text, nullable=False, info=SEALED)
    scopes: Mapped[str] = mapped_column(String(500), nullable=False, default="openid email profile")
    # Users whose e-mail ends in one of these domains are sent to this provider.
    email_domains: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    # Host names (an organisation's own portal domain) whose sign-in page offers this provider first.
    hosts: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    # {"email": "email", "name": "name", "groups": "groups"}: which claims carry what.
    claim_mapping: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    # {"<group>": ["role", ...]}: group claims to Andon roles, re-applied at every login.
    group_roles: Mapped[dict[str, list[str]]] = mapped_column(JSONType, nullable=False, default=dict)
    # Roles every user of this provider gets regardless of groups (may be empty).
    default_roles: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    # Audience expected in client-credential JWTs from this provider for machine access.
    api_audience: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # {"<client_id>": ["role", ...]}: the machine clients of this provider allowed in, each a service
    # account with exactly these roles. A client not listed here is refused.
    machine_clients: Mapped[dict[str, list[str]]] = mapped_column(JSONType, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class User(OrgOwnedMixin, RecordMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("idp_id", "idp_subject"),)

    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    totp_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True, info=SEALED)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    idp_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("identity_providers.id", ondelete="SET NULL"), nullable=True
    )
    idp_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RoleGrant(RecordMixin, Base):
    """A role held by a user at one org node: the partner, the customer, or one site of it."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope_kind", "scope_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    scope_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    scope_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # "manual" grants are kept; "idp" grants are recomputed from group claims at each login.
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="manual")


class LoginSession(RecordMixin, Base):
    """A server-side session; the browser holds only a random token whose hash is stored here."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    # "active", or "mfa" while the password is checked but the second factor is not yet given.
    stage: Mapped[str] = mapped_column(String(10), nullable=False, default="active")
    idp_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    id_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFlow(RecordMixin, Base):
    """One OIDC authorisation request in flight: state, nonce and PKCE verifier, used once."""

    __tablename__ = "login_flows"

    state: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    nonce: Mapped[str] = mapped_column(String(128), nullable=False)
    code_verifier: Mapped[str] = mapped_column(String(128), nullable=False)
    idp_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False
    )
    redirect_to: Mapped[str] = mapped_column(String(500), nullable=False, default="/account")
    # The callback URL sent to the provider, on the host the person signed in from.
    redirect_uri: Mapped[str] = mapped_column(String(500), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OneTimeToken(RecordMixin, Base):
    """Invitations and password resets: single use, expiring, stored as a hash."""

    __tablename__ = "one_time_tokens"

    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutboundEmail(RecordMixin, Base):
    """The e-mail outbox: written in the transaction that decides to send; a sender delivers it.

    In development nothing is delivered and the dev mailbox page shows these rows.
    """

    __tablename__ = "outbound_emails"

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
