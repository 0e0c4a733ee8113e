"""The tenant-scoped repository every tenant-owned query goes through.

There is no way to build one without a ``TenantContext``, and every statement it issues carries the
tenant filter, so a forgotten ``WHERE`` cannot happen in request or task code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.base import TenantOwnedMixin
from andon.platform.tenancy.context import TenantContext

M = TypeVar("M", bound=TenantOwnedMixin)


class TenantRepository(Generic[M]):
    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        self.session = session
        self.ctx = ctx

    def scope(self) -> list[ColumnElement[bool]]:
        """The conditions every statement carries; subclasses may narrow (never widen) them."""
        return [self.model.tenant_id == self.ctx.tenant_id]

    def select(self) -> Select[M]:
        return select(self.model).where(*self.scope())

    async def get(self, id_: uuid.UUID) -> M | None:
        result = await self.session.execute(self.select().where(self.model.id == id_))
        return result.scalar_one_or_none()

    async def find(self, *where: ColumnElement[bool]) -> M | None:
        result = await self.session.execute(self.select().where(*where).limit(1))
        return result.scalar_one_or_none()

    async def list(self, *where: ColumnElement[bool], limit: int = 100, offset: int = 0) -> Sequence[M]:
        stmt = self.select().where(*where).order_by(self.model.id).limit(limit).offset(offset)
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self, *where: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(self.model).where(*self.scope(), *where)
        return int((await self.session.execute(stmt)).scalar_one())

    async def add(self, obj: M) -> M:
        obj.tenant_id = self.ctx.tenant_id
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def add_many(self, objs: Sequence[M]) -> None:
        """Insert many rows with one flush (bulk imports); ids must already be set."""
        for obj in objs:
            obj.tenant_id = self.ctx.tenant_id
        self.session.add_all(objs)
        await self.session.flush()

    async def delete(self, obj: M) -> None:
        if obj.tenant_id != self.ctx.tenant_id:  # pragma: no cover - defence in depth
            raise LookupError("object outside the tenant scope")
        await self.session.delete(obj)
        await self.session.flush()


def within_sites(column: Any, site_ids: frozenset[uuid.UUID] | None) -> list[ColumnElement[bool]]:
    """Someone granted only some sites sees what belongs to those sites (and nothing unplaced)."""
    return [] if site_ids is None else [column.in_(sorted(site_ids))]
