"""All SQL for API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.models import ApiKey
from andon.platform.db.scope import allow_auth_lookup


class ApiKeyLookup:
    """Authentication's one unscoped read: find a key by its prefix before any tenant is known."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        await allow_auth_lookup(self.session)
        stmt = select(ApiKey).where(ApiKey.prefix == prefix)  # andon: unscoped-ok (authentication)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


class ApiKeyRepository:
    """Keys owned by one org node: the platform, a partner, or a customer."""

    def __init__(self, session: AsyncSession, owner: ColumnElement[bool]) -> None:
        self.session = session
        self.owner = owner

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        stmt = select(ApiKey).where(self.owner, ApiKey.id == key_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[ApiKey], int]:
        rows = await self.session.execute(
            select(ApiKey).where(self.owner).order_by(ApiKey.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(ApiKey).where(self.owner))
        return rows.scalars().all(), int(total.scalar_one())

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key
