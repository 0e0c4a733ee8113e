"""A template deployed for one customer: which template and version, for which sites, with which
parameter values, connections and messages, and the workflow it runs as."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType

ACTIVE = "active"
PAUSED = "paused"
CATALOG = "catalog"
PARTNER = "partner"


class Deployment(TenantOwnedMixin, Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    # The workflow key it runs as (runs, the inbox and the audit trail name it).
    key: Mapped[str] = mapped_column(String(100), nullable=False)
    template_key: Mapped[str] = mapped_column(String(64), nullable=False)
    # "catalog" (shipped with Andon) or "partner" (the customer's partner's library).
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    library_template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("partner_templates.id", ondelete="SET NULL"), nullable=True
    )
    version: Mapped[str] = mapped_column(String(20), nullable=False)
    # The sites whose events start it; empty: every site.
    site_ids: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    # The values set for this deployment itself.
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # Every value the workflow runs with, and where it came from (template, partner, customer, site,
    # deployment), as resolved when it was deployed or upgraded: {name: [value, level]}.
    resolved: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    previous_resolved: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Sites whose own values resolve differently run as workflows of their own:
    # [{"site_ids": [...], "workflow_id": "...", "resolved": {name: [value, level]}}].
    site_variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    previous_site_variants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    # {binding: the customer's outbound connection key}
    bindings: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    messages: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=ACTIVE)
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("workflows.id", ondelete="SET NULL"), nullable=True
    )
    # What an upgrade replaced, so it can be rolled back.
    previous_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    previous_workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("workflows.id", ondelete="SET NULL"), nullable=True
    )
    deployed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
