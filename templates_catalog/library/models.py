"""A partner's template library: its own templates (often forks of the catalog's) and their versions.

A version is a draft (editable, at most one per template) until it is published; a published
version never changes (deployments pin it), and may later be deprecated (no new deployments).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin
from andon.platform.db.types import UTCDateTime

DRAFT = "draft"
PUBLISHED = "published"
DEPRECATED = "deprecated"


class PartnerTemplate(RecordMixin, Base):
    __tablename__ = "partner_templates"
    __table_args__ = (UniqueConstraint("partner_id", "key"),)

    partner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    # The catalog template it was forked from, and at which version (None: written from scratch).
    upstream_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upstream_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class TemplateVersion(RecordMixin, Base):
    __tablename__ = "template_versions"
    __table_args__ = (
        UniqueConstraint("template_id", "version"),
        Index("ix_template_versions_partner_status", "partner_id", "status"),
    )

    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False)
    template_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partner_templates.id", ondelete="CASCADE"), nullable=False, index=True
    )
    version: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=DRAFT)
    yaml: Mapped[str] = mapped_column(Text, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    published_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deprecated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
