"""All SQL of alerts, incidents, their timelines and alarm rates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from andon.platform.alerts.models import AlarmRate, Alert, Incident, IncidentEntry
from andon.platform.db.ids import new_id
from andon.platform.db.repository import TenantRepository, within_sites
from andon.platform.db.scope import is_postgres
from andon.platform.db.types import utcnow

OPEN_ALERT = ("triggered", "acknowledged")
OPEN_INCIDENT = ("open", "acknowledged")


class AlertRepository(TenantRepository[Alert]):
    model = Alert

    def scope(self) -> list[ColumnElement[bool]]:
        return super().scope() + within_sites(Alert.site_id, self.ctx.principal.site_ids)

    async def open_by_dedup(self, key: str) -> Alert | None:
        return await self.find(Alert.dedup_key == key, Alert.status.in_(OPEN_ALERT))

    async def active_shelf(self, key: str, now: datetime) -> Alert | None:
        """The latest alert of this key still on a shelf: a shelf outlives the alert it was put on."""
        stmt = (
            self.select()
            .where(Alert.dedup_key == key, Alert.shelved_until > now)
            .order_by(Alert.shelved_until.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def search(
        self,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        incident_id: uuid.UUID | None = None,
        severity: str | None = None,
        shelved: bool | None = None,
    ) -> tuple[Sequence[Alert], int]:
        """Newest first; ``shelved``: only alerts on a shelf now (True) or only those not (False)."""
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(Alert.status == status)
        if incident_id:
            where.append(Alert.incident_id == incident_id)
        if severity:
            where.append(Alert.severity == severity)
        if shelved is not None:
            on_shelf = Alert.shelved_until > utcnow()
            where.append(on_shelf if shelved else or_(Alert.shelved_until.is_(None), ~on_shelf))
        rows = await self.session.execute(
            self.select().where(*where).order_by(Alert.last_event_at.desc()).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(Alert).where(*self.scope(), *where))
        return rows.scalars().all(), int(total.scalar_one())

    async def move(self, from_incidents: Sequence[uuid.UUID], to_incident: uuid.UUID) -> None:
        await self.session.execute(
            update(Alert).where(*self.scope(), Alert.incident_id.in_(from_incidents)).values(incident_id=to_incident)
        )


class IncidentRepository(TenantRepository[Incident]):
    model = Incident

    def scope(self) -> list[ColumnElement[bool]]:
        return super().scope() + within_sites(Incident.site_id, self.ctx.principal.site_ids)

    async def open_for_asset(self, asset_id: uuid.UUID, since: datetime) -> Incident | None:
        return await self.find(
            Incident.kind == "alert",
            Incident.asset_id == asset_id,
            Incident.status.in_(OPEN_INCIDENT),
            Incident.opened_at >= since,
        )

    async def open_for_group(self, group_key: str) -> Incident | None:
        return await self.find(
            Incident.kind == "alert", Incident.group_key == group_key, Incident.status.in_(OPEN_INCIDENT)
        )

    async def open_flood(self, site_key: str) -> Incident | None:
        return await self.find(
            Incident.kind == "flood", Incident.site_key == site_key, Incident.status.in_(OPEN_INCIDENT)
        )

    async def recent_alert_incidents(self, site_key: str, since: datetime) -> Sequence[Incident]:
        stmt = self.select().where(
            Incident.kind == "alert",
            Incident.site_key == site_key,
            Incident.status.in_(OPEN_INCIDENT),
            Incident.opened_at >= since,
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def search(
        self,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        kind: str | None = None,
        severity: str | None = None,
        site_id: uuid.UUID | None = None,
    ) -> tuple[Sequence[Incident], int]:
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(Incident.status == status)
        if kind:
            where.append(Incident.kind == kind)
        if severity:
            where.append(Incident.severity == severity)
        if site_id:
            where.append(Incident.site_id == site_id)
        rows = await self.session.execute(
            self.select().where(*where).order_by(Incident.opened_at.desc()).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(Incident).where(*self.scope(), *where))
        return rows.scalars().all(), int(total.scalar_one())


class IncidentEntryRepository(TenantRepository[IncidentEntry]):
    model = IncidentEntry

    async def timeline(self, incident_id: uuid.UUID) -> Sequence[IncidentEntry]:
        stmt = (
            self.select().where(IncidentEntry.incident_id == incident_id).order_by(IncidentEntry.at, IncidentEntry.id)
        )
        return (await self.session.execute(stmt)).scalars().all()


class AlarmRateRepository(TenantRepository[AlarmRate]):
    model = AlarmRate

    async def bump(self, site_key: str, minute: int) -> int:
        """Count one alarm at ``site_key`` in ``minute``; the minute's total so far."""
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        now = utcnow()
        stmt = insert(AlarmRate).values(
            id=new_id(),
            tenant_id=self.ctx.tenant_id,
            site_key=site_key,
            minute=minute,
            count=1,
            created_at=now,
            updated_at=now,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "site_key", "minute"], set_={"count": AlarmRate.count + 1}
        ).returning(AlarmRate.count)
        return int((await self.session.execute(upsert)).scalar_one())
