"""The shared declarative base: naming conventions, UUIDv7 keys, created/updated timestamps."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from andon.platform.db.ids import new_id
from andon.platform.db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordMixin:
    """Id and timestamps every table carries."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class TenantOwnedMixin(RecordMixin):
    """A row that belongs to one customer organisation (the tenant).

    Tables with this mixin get a row-level security policy on PostgreSQL (see ``db/rls.py``) and can
    only be queried through a ``TenantRepository``.
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)


class OrgOwnedMixin:
    """A row owned by one org node: the platform (both ids empty), a partner, or a customer.

    Keys, users and identity providers live at any node; ``OrgNode.owns`` scopes queries over these
    three columns.
    """

    org_kind: Mapped[str] = mapped_column(String(20), nullable=False)

    @declared_attr
    def partner_id(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=True, index=True)

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True, index=True)


def tenant_owned_tables() -> list[str]:
    """Names of every table whose rows carry a ``tenant_id`` (the RLS and isolation-test set)."""
    return sorted(t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c)


__all__ = ["Base", "OrgOwnedMixin", "RecordMixin", "TenantOwnedMixin", "tenant_owned_tables", "utcnow"]
