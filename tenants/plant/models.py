"""The plant hierarchy below a customer, after ISA-95: site -> area -> line (work centre) -> asset.

Every table is tenant-owned. ``external_id`` is the customer's own identifier (MES/CMMS), unique per
tenant and table, and is what imports and inbound events refer to.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType


class Site(TenantOwnedMixin, Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class Area(TenantOwnedMixin, Base):
    __tablename__ = "areas"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sites.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Line(TenantOwnedMixin, Base):
    __tablename__ = "lines"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sites.id"), nullable=False, index=True)
    area_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("areas.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Asset(TenantOwnedMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sites.id"), nullable=False, index=True)
    line_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("lines.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    asset_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    manufacturer: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    serial_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    criticality: Mapped[str | None] = mapped_column(String(1), nullable=True)


class ShiftCalendar(TenantOwnedMixin, Base):
    """Named shifts of a site in its local time; the engine asks it who is on duty."""

    __tablename__ = "shift_calendars"
    __table_args__ = (UniqueConstraint("tenant_id", "site_id", "name"), UniqueConstraint("tenant_id", "external_id"))

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sites.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The calendar's id in the customer's workforce or MES system, if it has one.
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    # [{"name": "Early", "start": "06:00", "end": "14:00", "days": [1, 2, 3, 4, 5]}]
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
