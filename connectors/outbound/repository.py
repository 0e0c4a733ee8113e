"""All SQL of outbound connections and their call records (tenant-scoped)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from andon.connectors.outbound.models import ConnectorCall, OutboundConnection
from andon.platform.db.repository import TenantRepository


class OutboundConnectionRepository(TenantRepository[OutboundConnection]):
    model = OutboundConnection

    async def by_key(self, key: str) -> OutboundConnection | None:
        return await self.find(OutboundConnection.key == key)

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[OutboundConnection], int]:
        rows = await self.session.execute(self.select().order_by(OutboundConnection.key).limit(limit).offset(offset))
        return rows.scalars().all(), await self.count()

    async def record_call(self, call: ConnectorCall) -> None:
        call.tenant_id = self.ctx.tenant_id
        self.session.add(call)
        await self.session.flush()


class ConnectorCallRepository(TenantRepository[ConnectorCall]):
    model = ConnectorCall

    async def recent(self, connection_id: uuid.UUID, *, limit: int) -> Sequence[ConnectorCall]:
        stmt = (
            self.select()
            .where(ConnectorCall.connection_id == connection_id)
            .order_by(ConnectorCall.created_at.desc(), ConnectorCall.id.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def outcomes(self, connection_id: uuid.UUID) -> dict[str, int]:
        stmt = (
            select(ConnectorCall.outcome, func.count())
            .where(*self.scope(), ConnectorCall.connection_id == connection_id)
            .group_by(ConnectorCall.outcome)
        )
        return {str(outcome): int(n) for outcome, n in (await self.session.execute(stmt)).all()}
