"""A partner's brand: what its customers see instead of Andon."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin, TenantOwnedMixin
from andon.platform.db.types import JSONType


class PartnerBrand(RecordMixin, Base):
    __tablename__ = "partner_brands"

    partner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    product_name: Mapped[str] = mapped_column(String(100), nullable=False)
    # Both carry white text (header and buttons), so both must reach WCAG AA against white.
    primary_colour: Mapped[str] = mapped_column(String(7), nullable=False, default="#1f4e79")
    accent_colour: Mapped[str] = mapped_column(String(7), nullable=False, default="#0b6e4f")
    support_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    support_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Host names of the partner's own portal (custom domains): requests there wear this brand.
    hosts: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    logo_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    logo_version: Mapped[int] = mapped_column(default=0, nullable=False)
    favicon_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    favicon_version: Mapped[int] = mapped_column(default=0, server_default="0", nullable=False)
    # Already reduced to the safe subset (see custom_css.py) when stored.
    custom_css: Mapped[str | None] = mapped_column(Text, nullable=True)
    css_version: Mapped[int] = mapped_column(default=0, server_default="0", nullable=False)


class CustomerBrand(TenantOwnedMixin, Base):
    """A customer's own logo, shown beside the partner's brand inside the partner's shell."""

    __tablename__ = "customer_brands"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    logo_png: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    logo_version: Mapped[int] = mapped_column(default=1, nullable=False)
