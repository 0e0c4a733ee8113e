"""Price books and plans (each owner edits its own; a changed plan is a new version), and
subscriptions as segments in time (start, change of plan at a moment, cancellation at a moment).

Two price books meet here: a customer subscribes to a plan of its partner's retail book; a partner
subscribes to one plan of the operator's wholesale book, which is rated for each of its customers
(the simplest model that still gives a wholesale cost per customer: nothing to assign per customer,
and the partner's margin is known customer by customer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.plans.models import (
    OPERATOR_BOOK,
    PARTNER_BOOK,
    PartnerSubscription,
    PlanVersion,
    PriceBook,
    SegmentMixin,
    Subscription,
)
from andon.billing.plans.repository import (
    PartnerSubscriptionRepository,
    PriceBookRepository,
    SubscriptionRepository,
    WholesalePartnersRepository,
    owner_key,
)
from andon.billing.plans.schemas import (
    PlanVersionRead,
    PriceBookCreate,
    PriceBookRead,
    SegmentRead,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionRead,
)
from andon.billing.pricing.money import CurrencyError, exponent
from andon.billing.pricing.prices import Plan
from andon.billing.stripe.repository import SyncQueueRepository
from andon.billing.usage.meters import METERS
from andon.platform.audit.service import record
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError, field_error
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.service import PartnerService


def plan_of(row: PlanVersion) -> Plan:
    """The stored document as a ``Plan`` (it was validated before it was stored)."""
    return msgspec.convert(row.document, Plan)


def version_read(row: PlanVersion) -> PlanVersionRead:
    return PlanVersionRead(
        id=row.id,
        key=row.key,
        version=row.version,
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        document=row.document,
    )


def check_plan(plan: Plan, book: PriceBook) -> None:
    if plan.currency != book.currency:
        raise field_error("currency", f"the price book '{book.key}' is in {book.currency}, not {plan.currency}")
    for index, item in enumerate(plan.items):
        if item.meter and item.meter not in METERS:
            raise field_error(f"items[{index}].meter", f"no meter '{item.meter}' (one of {', '.join(sorted(METERS))})")


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time under one plan version."""

    id: uuid.UUID
    plan: Plan
    version: PlanVersion
    starts_at: datetime
    ends_at: datetime | None
    trial_ends_at: datetime | None

    def paid_seconds(self, start: datetime, end: datetime) -> int:
        """Seconds of [start, end) this segment covers after its trial."""
        begin = max(start, self.starts_at, self.trial_ends_at or self.starts_at)
        finish = min(end, self.ends_at or end)
        return max(0, int((finish - begin).total_seconds()))

    def covered_seconds(self, start: datetime, end: datetime) -> int:
        begin = max(start, self.starts_at)
        finish = min(end, self.ends_at or end)
        return max(0, int((finish - begin).total_seconds()))


def _segment_read(row: SegmentMixin, version: PlanVersion) -> SegmentRead:
    assert isinstance(row, Subscription | PartnerSubscription)
    return SegmentRead(
        id=row.id,
        plan_version_id=version.id,
        plan=version.key,
        plan_name=version.name,
        version=version.version,
        currency=str(version.document["currency"]),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        trial_ends_at=row.trial_ends_at,
    )


def _read(
    rows: Sequence[Subscription] | Sequence[PartnerSubscription], versions: dict[uuid.UUID, PlanVersion], now: datetime
) -> SubscriptionRead:
    history = [_segment_read(r, versions[r.plan_version_id]) for r in rows]
    current = next((s for s in history if s.starts_at <= now and (s.ends_at is None or s.ends_at > now)), None)
    return SubscriptionRead(current=current, history=history)


def _segments(
    rows: Sequence[Subscription] | Sequence[PartnerSubscription], versions: dict[uuid.UUID, PlanVersion]
) -> list[Segment]:
    return [
        Segment(
            r.id,
            plan_of(versions[r.plan_version_id]),
            versions[r.plan_version_id],
            r.starts_at,
            r.ends_at,
            r.trial_ends_at,
        )
        for r in rows
    ]


def _next_segment(last: SegmentMixin | None, version: PlanVersion, at: datetime) -> tuple[datetime | None, bool]:
    """Checks a start or change at ``at`` against the last segment; the trial end the new segment
    carries, and whether the last segment must be ended at ``at`` (a change) or not (a start)."""
    if last is None or (last.ends_at is not None and last.ends_at <= at):
        trial_days = int(version.document.get("trial_days", 0))
        # A trial comes with the first subscription only, not with a return after cancelling.
        trial = at + timedelta(days=trial_days) if trial_days and last is None else None
        return trial, False
    if at <= last.starts_at:
        raise ConflictError(
            f"a change must take effect after the current plan started ({last.starts_at.isoformat()})",
            extra={"errors": [{"field": "at", "message": "before the current plan started"}]},
        )
    assert isinstance(last, Subscription | PartnerSubscription)
    if last.plan_version_id == version.id:
        raise ConflictError("the subscription is already on this plan version")
    return last.trial_ends_at, True


def _same_currency(current: PlanVersion | None, version: PlanVersion) -> None:
    if current is not None and current.document["currency"] != version.document["currency"]:
        raise field_error(
            "plan",
            f"the plan is in {version.document['currency']}; the subscription is in {current.document['currency']} "
            "(cancel, then start in the other currency from the next period)",
        )


class PriceBookService:
    """A partner's retail books (``partner_id``), or the operator's wholesale books (None)."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    async def _repo(self, partner_id: uuid.UUID | None, *, write: bool = False) -> PriceBookRepository:
        if partner_id is None:
            # The operator's books: its own to write, every partner's cost to read.
            if write and not self.principal.is_operator:
                raise PermissionDeniedError("only the platform operator sets wholesale prices")
            if not (self.principal.is_operator or self.principal.org_kind is OrgKind.PARTNER):
                raise PermissionDeniedError("wholesale prices are for partners and the operator")
            return PriceBookRepository(self.session, None)
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if self.principal.org_kind is OrgKind.CUSTOMER:
            raise NotFoundError(f"partner {partner_id} not found")
        if self.principal.is_operator:
            raise PermissionDeniedError("a partner's retail prices are its own business")
        if write and not (self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id == partner.id):
            raise PermissionDeniedError("a partner sets its own retail prices")
        return PriceBookRepository(self.session, partner.id)

    async def _book(self, repo: PriceBookRepository, book_id: uuid.UUID) -> PriceBook:
        book = await repo.book(book_id)
        if book is None:
            raise NotFoundError(f"price book {book_id} not found")
        return book

    async def _book_read(self, repo: PriceBookRepository, book: PriceBook) -> PriceBookRead:
        latest: dict[str, PlanVersion] = {}
        for row in await repo.versions(book.id):
            latest[row.key] = row  # ordered by version: the last one wins
        return PriceBookRead(
            id=book.id,
            key=book.key,
            name=book.name,
            currency=book.currency,
            owner=OPERATOR_BOOK if book.partner_id is None else PARTNER_BOOK,
            partner_id=book.partner_id,
            plans=[version_read(v) for v in latest.values()],
        )

    async def list_books(self, partner_id: uuid.UUID | None) -> list[PriceBookRead]:
        repo = await self._repo(partner_id)
        return [await self._book_read(repo, b) for b in await repo.books()]

    async def get(self, partner_id: uuid.UUID | None, book_id: uuid.UUID) -> PriceBookRead:
        repo = await self._repo(partner_id)
        return await self._book_read(repo, await self._book(repo, book_id))

    async def create(self, partner_id: uuid.UUID | None, data: PriceBookCreate) -> PriceBookRead:
        repo = await self._repo(partner_id, write=True)
        try:
            exponent(data.currency)
        except CurrencyError as exc:
            raise field_error("currency", str(exc)) from None
        if await repo.book_by_key(data.key) is not None:
            raise ConflictError(
                f"there is already a price book '{data.key}'",
                extra={"errors": [{"field": "key", "message": "already in use"}]},
            )
        book = PriceBook(
            partner_id=repo.partner_id,
            owner_key=owner_key(repo.partner_id),
            key=data.key,
            name=data.name,
            currency=data.currency,
        )
        await repo.add(book)
        await record(
            self.session,
            self.principal,
            "billing.price_book_created",
            target_type="price_book",
            target_id=book.id,
            after={"key": book.key, "name": book.name, "currency": book.currency},
            partner_id=repo.partner_id,
        )
        return await self._book_read(repo, book)

    async def put_plan(self, partner_id: uuid.UUID | None, book_id: uuid.UUID, plan: Plan) -> PlanVersionRead:
        """Stores ``plan`` as the newest version of its key (an unchanged plan stores nothing)."""
        repo = await self._repo(partner_id, write=True)
        book = await self._book(repo, book_id)
        check_plan(plan, book)
        document = msgspec.to_builtins(plan)
        latest = await repo.latest(book.id, plan.key)
        if latest is not None and latest.document == document:
            return version_read(latest)
        row = PlanVersion(
            price_book_id=book.id,
            partner_id=repo.partner_id,
            key=plan.key,
            version=(latest.version + 1) if latest else 1,
            name=plan.name,
            document=document,
            created_by=self.principal.label,
        )
        await repo.add(row)
        await record(
            self.session,
            self.principal,
            "billing.plan_versioned",
            target_type="plan_version",
            target_id=row.id,
            after={"book": book.key, "plan": row.key, "version": row.version},
            partner_id=repo.partner_id,
        )
        return version_read(row)

    async def versions(self, partner_id: uuid.UUID | None, book_id: uuid.UUID, key: str) -> list[PlanVersionRead]:
        repo = await self._repo(partner_id)
        book = await self._book(repo, book_id)
        rows = await repo.versions(book.id, key)
        if not rows:
            raise NotFoundError(f"plan '{key}' not found")
        return [version_read(r) for r in rows]


async def pick_version(repo: PriceBookRepository, data: SubscriptionChange) -> PlanVersion:
    book = await repo.book(data.price_book_id)
    if book is None:
        raise field_error("price_book_id", "no such price book for this subscription")
    if data.version is None:
        found = await repo.latest(book.id, data.plan)
    else:
        found = next((v for v in await repo.versions(book.id, data.plan) if v.version == data.version), None)
    if found is None:
        raise field_error(
            "plan", f"no plan '{data.plan}'{f' version {data.version}' if data.version else ''} in '{book.key}'"
        )
    return found


class SubscriptionService:
    """A customer's retail subscription (to a plan of its partner's retail book)."""

    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.repo = SubscriptionRepository(session, tenant)
        self.books = PriceBookRepository(session, tenant.partner_id)

    async def _versions(self, rows: Sequence[Subscription]) -> dict[uuid.UUID, PlanVersion]:
        return await self.books.versions_by_id([r.plan_version_id for r in rows])

    async def read(self, *, now: datetime | None = None) -> SubscriptionRead:
        rows = await self.repo.history()
        return _read(rows, await self._versions(rows), now or utcnow())

    async def segments(self, start: datetime, end: datetime) -> list[Segment]:
        """The plan segments that cover any part of [start, end), oldest first."""
        rows = await self.repo.between(start, end)
        return _segments(rows, await self._versions(rows))

    async def coverage(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The stretches of [start, end) the customer was subscribed, whatever the plan (no prices are
        read: the operator rates wholesale fees on them without seeing the partner's retail plans)."""
        return [(max(start, r.starts_at), min(end, r.ends_at or end)) for r in await self.repo.between(start, end)]

    async def change(self, data: SubscriptionChange, *, now: datetime | None = None) -> SubscriptionRead:
        """Starts the subscription, or moves it to another plan at ``data.at`` (the period is then
        rated in two parts, each with its share of the fees)."""
        at = data.at or now or utcnow()
        version = await pick_version(self.books, data)
        last = await self.repo.last(lock=True)
        trial, ends_last = _next_segment(last, version, at)
        if ends_last:
            assert last is not None
            _same_currency((await self._versions([last]))[last.plan_version_id], version)
            last.ends_at = at
        row = Subscription(
            partner_id=self.tenant.partner_id, plan_version_id=version.id, starts_at=at, trial_ends_at=trial
        )
        await self.repo.add(row)
        # Stripe hears of it after this commits (billing/stripe/pending.py), never inside the request.
        reason = "subscription_changed" if ends_last else "subscription_started"
        await SyncQueueRepository(self.session, self.tenant).enqueue(reason, now or utcnow())
        await record(
            self.session,
            self.tenant.principal,
            "billing.subscription_changed" if ends_last else "billing.subscription_started",
            target_type="subscription",
            target_id=row.id,
            after={"plan": version.key, "version": version.version, "at": at.isoformat()},
            tenant=self.tenant,
        )
        return await self.read(now=now)

    async def cancel(self, data: SubscriptionCancel, *, now: datetime | None = None) -> SubscriptionRead:
        at = data.at or now or utcnow()
        last = await self.repo.last(lock=True)
        if last is None or (last.ends_at is not None and last.ends_at <= at):
            raise ConflictError("there is no subscription running at that moment to cancel")
        if at < last.starts_at:
            raise ConflictError(
                f"a cancellation takes effect after the plan started ({last.starts_at.isoformat()})",
                extra={"errors": [{"field": "at", "message": "before the current plan started"}]},
            )
        last.ends_at = at
        await self.session.flush()
        await SyncQueueRepository(self.session, self.tenant).enqueue("subscription_cancelled", now or utcnow())
        await record(
            self.session,
            self.tenant.principal,
            "billing.subscription_cancelled",
            target_type="subscription",
            target_id=last.id,
            after={"at": at.isoformat()},
            tenant=self.tenant,
        )
        return await self.read(now=now)


class WholesaleSubscriptionService:
    """A partner's wholesale subscription (to a plan of the operator's book): the operator sets it,
    the partner reads it."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.books = PriceBookRepository(session, None)

    async def _repo(self, partner_id: uuid.UUID, *, write: bool = False) -> PartnerSubscriptionRepository:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if self.principal.org_kind is OrgKind.CUSTOMER:
            raise NotFoundError(f"partner {partner_id} not found")
        if write and not self.principal.is_operator:
            raise PermissionDeniedError("only the platform operator sets a partner's wholesale plan")
        return PartnerSubscriptionRepository(self.session, partner.id)

    async def _versions(self, rows: Sequence[PartnerSubscription]) -> dict[uuid.UUID, PlanVersion]:
        return await self.books.versions_by_id([r.plan_version_id for r in rows])

    async def read(self, partner_id: uuid.UUID, *, now: datetime | None = None) -> SubscriptionRead:
        repo = await self._repo(partner_id)
        rows = await repo.history()
        return _read(rows, await self._versions(rows), now or utcnow())

    async def segments(self, partner_id: uuid.UUID, start: datetime, end: datetime) -> list[Segment]:
        repo = await self._repo(partner_id)
        rows = await repo.between(start, end)
        return _segments(rows, await self._versions(rows))

    async def partners_between(self, start: datetime, end: datetime) -> list[uuid.UUID]:
        """The partners with a wholesale plan in [start, end) (the operator's period close)."""
        if not self.principal.is_operator:
            raise PermissionDeniedError("only the platform operator closes wholesale periods")
        return await WholesalePartnersRepository(self.session).partners_between(start, end)

    async def change(
        self, partner_id: uuid.UUID, data: SubscriptionChange, *, now: datetime | None = None
    ) -> SubscriptionRead:
        repo = await self._repo(partner_id, write=True)
        at = data.at or now or utcnow()
        version = await pick_version(self.books, data)
        last = await repo.last(lock=True)
        trial, ends_last = _next_segment(last, version, at)
        if ends_last:
            assert last is not None
            _same_currency((await self._versions([last]))[last.plan_version_id], version)
            last.ends_at = at
        row = PartnerSubscription(
            partner_id=repo.partner_id, plan_version_id=version.id, starts_at=at, trial_ends_at=trial
        )
        await repo.add(row)
        await record(
            self.session,
            self.principal,
            "billing.wholesale_changed" if ends_last else "billing.wholesale_started",
            target_type="partner_subscription",
            target_id=row.id,
            after={"plan": version.key, "version": version.version, "at": at.isoformat()},
            partner_id=repo.partner_id,
        )
        return await self.read(partner_id, now=now)

    async def cancel(
        self, partner_id: uuid.UUID, data: SubscriptionCancel, *, now: datetime | None = None
    ) -> SubscriptionRead:
        repo = await self._repo(partner_id, write=True)
        at = data.at or now or utcnow()
        last = await repo.last(lock=True)
        if last is None or (last.ends_at is not None and last.ends_at <= at) or at < last.starts_at:
            raise ConflictError("there is no wholesale plan running at that moment to cancel")
        last.ends_at = at
        await self.session.flush()
        await record(
            self.session,
            self.principal,
            "billing.wholesale_cancelled",
            target_type="partner_subscription",
            target_id=last.id,
            after={"at": at.isoformat()},
            partner_id=repo.partner_id,
        )
        return await self.read(partner_id, now=now)
