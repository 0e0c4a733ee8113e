"""All SQL of rollouts; every statement is scoped to one partner by construction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from andon.templates_catalog.rollouts.models import Rollout


class RolloutRepository:
    def __init__(self, session: AsyncSession, partner_id: uuid.UUID) -> None:
        """``partner_id`` comes from a partner fetched within the caller's reach."""
        self.session = session
        self.partner_id = partner_id

    async def get(self, rollout_id: uuid.UUID, *, lock: bool = False) -> Rollout | None:
        stmt = select(Rollout).where(Rollout.partner_id == self.partner_id, Rollout.id == rollout_id)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def every(self) -> Sequence[Rollout]:
        stmt = select(Rollout).where(Rollout.partner_id == self.partner_id).order_by(Rollout.created_at.desc())
        return (await self.session.execute(stmt)).scalars().all()

    async def add(self, rollout: Rollout) -> None:
        if rollout.partner_id != self.partner_id:
            raise ValueError("a rollout belongs to the repository's partner")
        self.session.add(rollout)
        await self.session.flush()
