"""All SQL of source connections and webhook deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.connectors.sources.models import SourceConnection, WebhookDelivery
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import allow_auth_lookup


@dataclass(frozen=True, slots=True)
class ConnectionFound:
    """What the hook needs of a connection, read before any tenant is known and carried, detached,
    into the tenant's own transaction."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    enabled: bool
    source: str
    event_type: str | None
    verifier: str
    signature_header: str | None
    signature_prefix: str
    digest_encoding: str
    tolerance_seconds: int
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None


class ConnectionLookup:
    """The hook's one unscoped read: a delivery names its connection, and nothing else, so the tenant
    is learnt from the connection (as an API key's is from the key)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, connection_id: uuid.UUID) -> ConnectionFound | None:
        await allow_auth_lookup(self.session)
        stmt = select(SourceConnection).where(SourceConnection.id == connection_id)  # andon: unscoped-ok (auth)
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            return None
        return ConnectionFound(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            enabled=row.enabled,
            source=row.source,
            event_type=row.event_type,
            verifier=row.verifier,
            signature_header=row.signature_header,
            signature_prefix=row.signature_prefix,
            digest_encoding=row.digest_encoding,
            tolerance_seconds=row.tolerance_seconds,
            secret_sealed=row.secret_sealed,
            previous_secret_sealed=row.previous_secret_sealed,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )


class SourceConnectionRepository(TenantRepository[SourceConnection]):
    model = SourceConnection

    async def name_taken(self, name: str, other_than: uuid.UUID | None = None) -> bool:
        where = [SourceConnection.name == name]
        if other_than is not None:
            where.append(SourceConnection.id != other_than)
        return await self.count(*where) > 0

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[SourceConnection], int]:
        rows = await self.session.execute(
            self.select().order_by(SourceConnection.name, SourceConnection.id).limit(limit).offset(offset)
        )
        return rows.scalars().all(), await self.count()

    async def remove(self, connection: SourceConnection) -> None:
        # Deliveries go with their connection; said here rather than left to the foreign key, which
        # SQLite enforces only when its pragma is on.
        await self.session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.tenant_id == self.ctx.tenant_id, WebhookDelivery.connection_id == connection.id
            )
        )
        await self.delete(connection)

    async def count_delivery(self, connection_id: uuid.UUID, outcome: str, at: datetime) -> None:
        """One more delivery on the connection's counters, in SQL so concurrent deliveries add up."""
        counter = getattr(SourceConnection, f"deliveries_{outcome}")
        await self.session.execute(
            update(SourceConnection)
            .where(*self.scope(), SourceConnection.id == connection_id)
            .values(
                {
                    counter.key: counter + 1,
                    "last_delivery_at": at,
                    "last_delivery_outcome": outcome,
                    # Traffic is not an edit: updated_at keeps saying when the settings last changed.
                    "updated_at": SourceConnection.updated_at,
                }
            )
            .execution_options(synchronize_session=False)
        )


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery

    async def for_connection(
        self, connection_id: uuid.UUID, *, limit: int, offset: int, outcome: str | None = None
    ) -> tuple[Sequence[WebhookDelivery], int]:
        where: list[ColumnElement[bool]] = [WebhookDelivery.connection_id == connection_id]
        if outcome:
            where.append(WebhookDelivery.outcome == outcome)
        rows = await self.session.execute(
            self.select()
            .where(*where)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(WebhookDelivery).where(*self.scope(), *where)
        )
        return rows.scalars().all(), int(total.scalar_one())
