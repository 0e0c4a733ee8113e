"""All SQL for API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.models import ApiKey
from andon.platform.db.scope import allow_auth_lookup, lookup_window
from andon.platform.db.types import utcnow
from andon.platform.tenancy.principal import Principal


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

    async def list(
        self, *, limit: int, offset: int, q: str | None = None, state: str | None = None, now: datetime | None = None
    ) -> tuple[Sequence[ApiKey], int]:
        """``q``: in the name or the prefix; ``state``: active, revoked or expired (as of ``now``)."""
        where: list[ColumnElement[bool]] = [self.owner]
        if q:
            where.append(or_(ApiKey.name.ilike(f"%{q}%"), ApiKey.prefix.ilike(f"%{q}%")))
        moment = now or utcnow()
        live = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > moment)
        if state == "revoked":
            where.append(ApiKey.revoked_at.is_not(None))
        elif state == "expired":
            where += [ApiKey.revoked_at.is_(None), ApiKey.expires_at <= moment]
        elif state == "active":
            where += [ApiKey.revoked_at.is_(None), live]
        rows = await self.session.execute(
            select(ApiKey).where(*where).order_by(ApiKey.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(ApiKey).where(*where))
        return rows.scalars().all(), int(total.scalar_one())

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key


async def count_usable_keys(session: AsyncSession, principal: Principal, now: datetime) -> int:
    """Keys that still authenticate (neither revoked nor expired) in every organisation, for the
    operator's platform health page: a number that names no key and no owner. It runs in a lookup
    window (rolled back with its savepoint), so the request's own scope stays narrow."""
    if not principal.is_operator:
        raise PermissionError("only the platform operator counts keys across organisations")
    async with lookup_window(session):
        stmt = (
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
        )  # andon: unscoped-ok (operator's platform-wide count)
        return int((await session.execute(stmt)).scalar_one())
