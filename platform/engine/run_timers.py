"""What the scheduler does with a run's own timers (a ladder's next page, a page's delivery retry, an
SLA's due time), inside the transaction that claimed them with ``FOR UPDATE SKIP LOCKED``.

Each timer is handled in its tenant's scope (row-level security: the tenant, and its partner so the
partner's support people can be paged) and in a savepoint: one that fails is put back a minute
later instead of taking the whole batch of timers down with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.scope import apply_principal_scope
from andon.platform.engine.duty import OnDuty, nobody_on_duty
from andon.platform.engine.escalation import PENDING, send_page
from andon.platform.engine.models import ESCALATION_TIMER, PAGE_TIMER, SLA_TIMERS
from andon.platform.engine.repository import EscalationPageRepository, RunRepository, SchedulerRepository
from andon.platform.engine.sla import judge
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind

log = structlog.get_logger("andon.scheduler")
RETRY_AFTER = timedelta(seconds=60)
_SLA_KIND = {timer: kind for kind, timer in SLA_TIMERS.items()}


@dataclass(frozen=True, slots=True)
class SentPage:
    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    page_id: uuid.UUID


# The delivery hook: called with the pages of a batch once it committed (new pages, and pending
# ones whose delivery timer fired); ``page_delivery.page_sender`` enqueues one message per page for a
# worker. Without it, a page is only recorded.
DeliverPages = Callable[[Sequence[SentPage]], Awaitable[None]]


def ladder_context(tenant_id: uuid.UUID, partner_id: uuid.UUID) -> TenantContext:
    principal = Principal(
        subject_kind=SubjectKind.SYSTEM,
        subject_id=None,
        label="escalation ladder",
        org_kind=OrgKind.PARTNER,
        partner_id=partner_id,
        customer_id=tenant_id,
    )
    return TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=principal)


class RunTimers:
    """The scheduler's handler for run timers (``SchedulerRepository.fire_due(run_timers=...)``)."""

    def __init__(self, on_duty: OnDuty = nobody_on_duty, deliver: DeliverPages | None = None) -> None:
        self.on_duty = on_duty
        self.deliver = deliver
        self.pages = 0
        self.breaches = 0
        self.redeliveries = 0
        # Pages of the batch in hand, delivered only once its transaction committed.
        self._sent: list[SentPage] = []

    def begin_batch(self) -> None:
        self._sent = []

    async def after_commit(self) -> None:
        sent, self._sent = self._sent, []
        if sent and self.deliver is not None:
            await self.deliver(sent)

    async def __call__(self, session: AsyncSession, rows: Sequence[Any], now: datetime) -> None:
        for row in rows:
            tenant = ladder_context(row.tenant_id, row.partner_id)
            await apply_principal_scope(session, tenant.principal)
            try:
                async with session.begin_nested():
                    await self._fire(session, tenant, row, now)
            except Exception as exc:  # one bad timer must not stop every tenant's timers
                log.warning(
                    "run_timer_failed", kind=row.kind, run_id=str(row.run_id), error=f"{type(exc).__name__}: {exc}"
                )
                await SchedulerRepository(session).rearm(row.id, now + RETRY_AFTER)

    async def _fire(self, session: AsyncSession, tenant: TenantContext, row: Any, now: datetime) -> None:
        if row.kind == PAGE_TIMER:
            # A page whose worker's message (or worker) was lost, or whose failed channels are due
            # another try: handed to a worker again, which takes it only if it is still pending.
            page = await EscalationPageRepository(session, tenant).get(row.ref_id) if row.ref_id else None
            if page is not None and page.delivery == PENDING:
                self.redeliveries += 1
                self._sent.append(SentPage(row.tenant_id, row.partner_id, page.id))
            return
        run = await RunRepository(session, tenant).for_update(row.run_id)
        if run is None:
            return
        if row.kind == ESCALATION_TIMER:
            page = (
                await send_page(session, tenant, run, row.ref_id, row.attempt, now, self.on_duty)
                if row.ref_id is not None
                else None
            )
            if page is not None:
                self.pages += 1
                if page.delivery == PENDING:  # a page of a level without channels is only recorded
                    self._sent.append(SentPage(row.tenant_id, row.partner_id, page.id))
        elif row.kind in _SLA_KIND and await judge(
            session, tenant, run, policy=row.step_key, kind=_SLA_KIND[row.kind], due_at=row.fire_at, now=now
        ):
            self.breaches += 1
