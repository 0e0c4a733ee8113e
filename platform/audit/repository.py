"""All SQL of the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.chain import GENESIS
from andon.platform.audit.models import AuditChainHead, AuditEntry


class AuditRepository:
    """Appends lock the chain's head row, so concurrent writers of one chain queue up in order."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_head(
        self, chain: str, *, tenant_id: uuid.UUID | None, partner_id: uuid.UUID | None
    ) -> AuditChainHead:
        # Insert-or-ignore first so two writers starting a new chain do not race on its creation.
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await self.session.execute(
            insert(AuditChainHead)
            .values(chain=chain, tenant_id=tenant_id, partner_id=partner_id, seq=0, hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
        stmt = select(AuditChainHead).where(AuditChainHead.chain == chain).with_for_update()
        return (await self.session.execute(stmt)).scalar_one()

    async def append(self, entry: AuditEntry, head: AuditChainHead) -> None:
        head.seq = entry.seq
        head.hash = entry.hash
        self.session.add(entry)
        await self.session.flush()

    async def list_chain(
        self, chain: str, *, limit: int, offset: int, target_type: str | None = None, action: str | None = None
    ) -> Sequence[AuditEntry]:
        stmt = select(AuditEntry).where(AuditEntry.chain == chain)
        if target_type:
            stmt = stmt.where(AuditEntry.target_type == target_type)
        if action:
            stmt = stmt.where(AuditEntry.action.ilike(f"%{action}%"))
        stmt = stmt.order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
        return (await self.session.execute(stmt)).scalars().all()

    async def target_types(self, chain: str) -> list[str]:
        stmt = (
            select(AuditEntry.target_type).where(AuditEntry.chain == chain).distinct().order_by(AuditEntry.target_type)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def heads(self) -> Sequence[AuditChainHead]:
        return (await self.session.execute(select(AuditChainHead))).scalars().all()

    async def chains_with_entries(self) -> list[str]:
        stmt = select(AuditEntry.chain).distinct()
        return list((await self.session.execute(stmt)).scalars().all())

    async def stream_chain(self, chain: str, batch: int = 1000) -> AsyncIterator[AuditEntry]:
        last = 0
        while True:
            stmt = (
                select(AuditEntry)
                .where(AuditEntry.chain == chain, AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            rows = (await self.session.execute(stmt)).scalars().all()
            if not rows:
                return
            for row in rows:
                yield row
            last = rows[-1].seq
