"""All SQL of price books, plan versions and subscriptions.

Books and plans are scoped to one owner (a partner, or the operator) by construction; customer
subscriptions go through the tenant-scoped repository; a partner's wholesale subscription through a
repository scoped to that partner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.plans.models import OPERATOR_BOOK, PartnerSubscription, PlanVersion, PriceBook, Subscription
from andon.platform.db.repository import TenantRepository


def owner_key(partner_id: uuid.UUID | None) -> str:
    return OPERATOR_BOOK if partner_id is None else str(partner_id)


class PriceBookRepository:
    def __init__(self, session: AsyncSession, partner_id: uuid.UUID | None) -> None:
        """``partner_id`` comes from a partner fetched within the caller's reach; None is the operator."""
        self.session = session
        self.partner_id = partner_id
        self.owner_key = owner_key(partner_id)

    def _books(self) -> Select[PriceBook]:
        return select(PriceBook).where(PriceBook.owner_key == self.owner_key)

    def _versions(self) -> Select[PlanVersion]:
        owned = (
            PlanVersion.partner_id.is_(None) if self.partner_id is None else PlanVersion.partner_id == self.partner_id
        )
        return select(PlanVersion).where(owned)

    async def books(self) -> Sequence[PriceBook]:
        return (await self.session.execute(self._books().order_by(PriceBook.key))).scalars().all()

    async def book(self, book_id: uuid.UUID) -> PriceBook | None:
        stmt = self._books().where(PriceBook.id == book_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def book_by_key(self, key: str) -> PriceBook | None:
        stmt = self._books().where(PriceBook.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, row: PriceBook | PlanVersion) -> None:
        if row.partner_id != self.partner_id:
            raise ValueError("a price book row belongs to the repository's owner")
        self.session.add(row)
        await self.session.flush()

    async def versions(self, book_id: uuid.UUID, key: str | None = None) -> Sequence[PlanVersion]:
        """Every version in the book (of one plan when ``key`` is given), by key then version."""
        where: list[ColumnElement[bool]] = [PlanVersion.price_book_id == book_id]
        if key is not None:
            where.append(PlanVersion.key == key)
        stmt = self._versions().where(*where).order_by(PlanVersion.key, PlanVersion.version)
        return (await self.session.execute(stmt)).scalars().all()

    async def latest(self, book_id: uuid.UUID, key: str) -> PlanVersion | None:
        stmt = (
            self._versions()
            .where(PlanVersion.price_book_id == book_id, PlanVersion.key == key)
            .order_by(PlanVersion.version.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def version(self, version_id: uuid.UUID) -> PlanVersion | None:
        stmt = self._versions().where(PlanVersion.id == version_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def versions_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PlanVersion]:
        if not ids:
            return {}
        stmt = self._versions().where(PlanVersion.id.in_(sorted(set(ids))))
        return {v.id: v for v in (await self.session.execute(stmt)).scalars().all()}


def _overlapping(
    model: type[Subscription] | type[PartnerSubscription], start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    return [model.starts_at < end, or_(model.ends_at.is_(None), model.ends_at > start)]


class SubscriptionRepository(TenantRepository[Subscription]):
    model = Subscription

    async def between(self, start: datetime, end: datetime) -> Sequence[Subscription]:
        """The segments that cover any part of [start, end), oldest first."""
        stmt = self.select().where(*_overlapping(Subscription, start, end)).order_by(Subscription.starts_at)
        return (await self.session.execute(stmt)).scalars().all()

    async def history(self) -> Sequence[Subscription]:
        stmt = self.select().order_by(Subscription.starts_at)
        return (await self.session.execute(stmt)).scalars().all()

    async def last(self, *, lock: bool = False) -> Subscription | None:
        stmt = self.select().order_by(Subscription.starts_at.desc()).limit(1)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()


class PartnerSubscriptionRepository:
    def __init__(self, session: AsyncSession, partner_id: uuid.UUID) -> None:
        """``partner_id`` comes from a partner fetched within the caller's reach."""
        self.session = session
        self.partner_id = partner_id

    def _select(self) -> Select[PartnerSubscription]:
        return select(PartnerSubscription).where(PartnerSubscription.partner_id == self.partner_id)

    async def between(self, start: datetime, end: datetime) -> Sequence[PartnerSubscription]:
        stmt = (
            self._select().where(*_overlapping(PartnerSubscription, start, end)).order_by(PartnerSubscription.starts_at)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def history(self) -> Sequence[PartnerSubscription]:
        stmt = self._select().order_by(PartnerSubscription.starts_at)
        return (await self.session.execute(stmt)).scalars().all()

    async def last(self, *, lock: bool = False) -> PartnerSubscription | None:
        stmt = self._select().order_by(PartnerSubscription.starts_at.desc()).limit(1)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, row: PartnerSubscription) -> None:
        if row.partner_id != self.partner_id:
            raise ValueError("a wholesale subscription belongs to the repository's partner")
        self.session.add(row)
        await self.session.flush()


class WholesalePartnersRepository:
    """The operator's view: which partners have a wholesale plan in a period."""

    def __init__(self, session: AsyncSession) -> None:
        """Only the operator reaches this (row-level security shows nobody else every partner's rows)."""
        self.session = session

    async def partners_between(self, start: datetime, end: datetime) -> list[uuid.UUID]:
        stmt = (
            select(PartnerSubscription.partner_id)  # andon: unscoped-ok (operator-only, see docstring)
            .where(*_overlapping(PartnerSubscription, start, end))
            .distinct()
        )
        return sorted((await self.session.execute(stmt)).scalars().all())
