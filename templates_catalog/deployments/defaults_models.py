"""Parameter values inherited by deployments: a partner's for all its customers, a customer's, and a
site's. A deployment takes the template's defaults, then the partner's, the customer's, the site's
(when it runs for one site) and last its own, and shows where each value came from."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin, TenantOwnedMixin
from andon.platform.db.types import JSONType


class PartnerParameterDefaults(RecordMixin, Base):
    __tablename__ = "partner_parameter_defaults"
    __table_args__ = (UniqueConstraint("partner_id", "template_key"),)

    partner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False, index=True
    )
    template_key: Mapped[str] = mapped_column(String(64), nullable=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CustomerParameterDefaults(TenantOwnedMixin, Base):
    __tablename__ = "customer_parameter_defaults"
    # One row per template for the customer (site_id empty) and one per site; the uniqueness of the
    # customer-wide row is kept by the service, since NULLs never collide in a unique constraint.
    __table_args__ = (UniqueConstraint("tenant_id", "template_key", "site_id"),)

    template_key: Mapped[str] = mapped_column(String(64), nullable=False)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("sites.id", ondelete="CASCADE"), nullable=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
