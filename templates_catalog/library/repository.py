"""All SQL of partner template libraries; every statement is scoped to one partner by construction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from andon.templates_catalog.library.models import DRAFT, PUBLISHED, PartnerTemplate, TemplateVersion


class LibraryRepository:
    def __init__(self, session: AsyncSession, partner_id: uuid.UUID) -> None:
        """``partner_id`` comes from a partner fetched within the caller's reach (or the caller's own)."""
        self.session = session
        self.partner_id = partner_id

    async def templates(self) -> Sequence[PartnerTemplate]:
        stmt = (
            select(PartnerTemplate).where(PartnerTemplate.partner_id == self.partner_id).order_by(PartnerTemplate.key)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def template(self, template_id: uuid.UUID, *, lock: bool = False) -> PartnerTemplate | None:
        stmt = select(PartnerTemplate).where(
            PartnerTemplate.partner_id == self.partner_id, PartnerTemplate.id == template_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_key(self, key: str) -> PartnerTemplate | None:
        stmt = select(PartnerTemplate).where(PartnerTemplate.partner_id == self.partner_id, PartnerTemplate.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def versions(self, template_id: uuid.UUID) -> Sequence[TemplateVersion]:
        stmt = (
            select(TemplateVersion)
            .where(TemplateVersion.partner_id == self.partner_id, TemplateVersion.template_id == template_id)
            .order_by(TemplateVersion.created_at)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def version(self, template_id: uuid.UUID, version: str) -> TemplateVersion | None:
        stmt = select(TemplateVersion).where(
            TemplateVersion.partner_id == self.partner_id,
            TemplateVersion.template_id == template_id,
            TemplateVersion.version == version,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def draft(self, template_id: uuid.UUID) -> TemplateVersion | None:
        stmt = select(TemplateVersion).where(
            TemplateVersion.partner_id == self.partner_id,
            TemplateVersion.template_id == template_id,
            TemplateVersion.status == DRAFT,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def published(self) -> Sequence[tuple[PartnerTemplate, TemplateVersion]]:
        """Every published version of the library (deprecated ones are not offered)."""
        stmt = (
            select(PartnerTemplate, TemplateVersion)
            .join(TemplateVersion, TemplateVersion.template_id == PartnerTemplate.id)
            .where(PartnerTemplate.partner_id == self.partner_id, TemplateVersion.status == PUBLISHED)
        )
        return [(t, v) for t, v in (await self.session.execute(stmt)).all()]

    async def add(self, row: PartnerTemplate | TemplateVersion) -> None:
        if row.partner_id != self.partner_id:
            raise ValueError("a library row belongs to the repository's partner")
        self.session.add(row)
        await self.session.flush()
