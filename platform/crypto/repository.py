"""The SQL of key rotation: pages of one sealed column across every tenant, and their rewrite.

This is the one place that reads sealed values of all tenants, and only in the key-rotation scope
(``enter_key_rotation_mode``), which the row-level-security policies open to these tables alone.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.scope import enter_key_rotation_mode


class SealedValues:
    def __init__(self, session: AsyncSession, column: Column[Any]) -> None:
        self.session = session
        self.column = column
        self.id = column.table.c.id

    async def enter(self) -> None:
        await enter_key_rotation_mode(self.session)

    async def page(self, after: uuid.UUID | None, limit: int, *, lock: bool) -> list[tuple[uuid.UUID, Any]]:
        """The next ``limit`` rows with a value, by id; locked against other writers when ``lock``."""
        query = select(self.id, self.column).where(self.column.is_not(None)).order_by(self.id).limit(limit)
        if after is not None:
            query = query.where(self.id > after)
        if lock:
            query = query.with_for_update()
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def replace(self, id_: uuid.UUID, value: Any) -> None:
        await self.session.execute(update(self.column.table).where(self.id == id_).values({self.column.name: value}))
