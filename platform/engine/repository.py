"""All SQL of the engine. Every state change of a step is a compare-and-set on its status (and
attempt), so a message delivered twice, a timer and an event racing, or a worker that lost its lease
can never move a step twice."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.ids import new_id
from andon.platform.db.repository import TenantRepository, within_sites
from andon.platform.db.scope import enter_scheduler_mode, is_postgres
from andon.platform.engine.models import (
    ACTIVE,
    CANCELLED,
    FAILED,
    HELD,
    QUEUED,
    RUN_TIMERS,
    RUNNING,
    SCHEDULED,
    STEP_DONE,
    WAITING,
    ApprovalDecision,
    Effect,
    Escalation,
    EscalationPage,
    HumanTask,
    SlaBreach,
    StepRun,
    Timer,
    Workflow,
    WorkflowRun,
)
from andon.platform.identity.models import RoleGrant, User
from andon.platform.tenancy.context import TenantContext

# Acts on due run timers (rows of the Timer columns fire_due reads) inside the scheduler's transaction.
RunTimerHandler = Callable[[AsyncSession, Sequence[Any], datetime], Awaitable[None]]


class WorkflowRepository(TenantRepository[Workflow]):
    model = Workflow

    async def triggered_by(self, event_type: str) -> Sequence[Workflow]:
        rows = await self.session.execute(
            self.select()
            .where(Workflow.trigger_type == event_type, Workflow.enabled.is_(True))
            .order_by(Workflow.key, Workflow.version)
        )
        return rows.scalars().all()

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[Workflow], int]:
        rows = await self.session.execute(
            self.select().order_by(Workflow.key, Workflow.version.desc()).limit(limit).offset(offset)
        )
        return rows.scalars().all(), await self.count()


class RunRepository(TenantRepository[WorkflowRun]):
    model = WorkflowRun

    def scope(self) -> list[ColumnElement[bool]]:
        return super().scope() + within_sites(WorkflowRun.site_id, self.ctx.principal.site_ids)

    async def for_update(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """The run, read fresh (after the run's lock is held, so its context is current)."""
        stmt = self.select().where(WorkflowRun.id == run_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def search(
        self, *, limit: int, offset: int, status: str | None = None, workflow_key: str | None = None
    ) -> tuple[Sequence[WorkflowRun], int]:
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(WorkflowRun.status == status)
        if workflow_key:
            where.append(WorkflowRun.workflow_key == workflow_key)
        rows = await self.session.execute(
            self.select()
            .where(*where)
            .order_by(WorkflowRun.started_at.desc(), WorkflowRun.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return rows.scalars().all(), await self.count(*where)

    async def exists_for(self, workflow_id: uuid.UUID, event_id: uuid.UUID) -> bool:
        return await self.count(WorkflowRun.workflow_id == workflow_id, WorkflowRun.trigger_event_id == event_id) > 0


class StepRunRepository(TenantRepository[StepRun]):
    model = StepRun

    async def queue(
        self, run_id: uuid.UUID, partner_id: uuid.UUID, steps: Sequence[tuple[str, str]], now: datetime
    ) -> list[str]:
        """Creates each (key, kind) step queued, unless the run already has it (a join reached by
        its second branch); the keys created."""
        created: list[str] = []
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        for key, kind in steps:
            stmt = (
                insert(StepRun)
                .values(
                    id=new_id(),
                    tenant_id=self.ctx.tenant_id,
                    run_id=run_id,
                    partner_id=partner_id,
                    step_key=key,
                    kind=kind,
                    status=QUEUED,
                    attempt=1,
                    queued_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["run_id", "step_key"])
                .returning(StepRun.step_key)
            )
            if (await self.session.execute(stmt)).scalar_one_or_none() is not None:
                created.append(key)
        return created

    async def claim(
        self, run_id: uuid.UUID, step_key: str, attempt: int, now: datetime, lease_until: datetime
    ) -> StepRun | None:
        """The step, now running for this caller: it was queued (or its last worker's lease ran out)."""
        claimed = await self.session.execute(
            update(StepRun)
            .where(
                *self.scope(),
                StepRun.run_id == run_id,
                StepRun.step_key == step_key,
                StepRun.attempt == attempt,
                or_(StepRun.status == QUEUED, and_(StepRun.status == RUNNING, StepRun.lease_until < now)),
            )
            .values(status=RUNNING, started_at=func.coalesce(StepRun.started_at, now), lease_until=lease_until)
            .returning(StepRun.id)
            .execution_options(synchronize_session=False)
        )
        step_id = claimed.scalar_one_or_none()
        if step_id is None:
            return None
        stmt = self.select().where(StepRun.id == step_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one()

    async def move(
        self, step_id: uuid.UUID, expect: str | Sequence[str], at_attempt: int | None, **values: Any
    ) -> bool:
        """Compare-and-set: the step changes only if it is still in ``expect`` (and at ``at_attempt``)."""
        statuses = [expect] if isinstance(expect, str) else list(expect)
        where = [*self.scope(), StepRun.id == step_id, StepRun.status.in_(statuses)]
        if at_attempt is not None:
            where.append(StepRun.attempt == at_attempt)
        moved = await self.session.execute(
            update(StepRun).where(*where).values(**values).execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]

    async def settle_queued(self, run_id: uuid.UUID, step_key: str, now: datetime, **values: Any) -> bool:
        """A step queued in this very transaction, run inline: queued → its outcome in one statement."""
        settled = await self.session.execute(
            update(StepRun)
            .where(*self.scope(), StepRun.run_id == run_id, StepRun.step_key == step_key, StepRun.status == QUEUED)
            .values(started_at=now, finished_at=now, lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(settled.rowcount)  # type: ignore[attr-defined]

    async def of_run(self, run_id: uuid.UUID) -> Sequence[StepRun]:
        rows = await self.session.execute(
            self.select()
            .where(StepRun.run_id == run_id)
            .order_by(StepRun.queued_at, StepRun.id)
            .execution_options(populate_existing=True)
        )
        return rows.scalars().all()

    async def by_key(self, run_id: uuid.UUID, step_key: str) -> StepRun | None:
        stmt = (
            self.select()
            .where(StepRun.run_id == run_id, StepRun.step_key == step_key)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def waiting_for(self, event_type: str) -> Sequence[StepRun]:
        rows = await self.session.execute(
            self.select().where(StepRun.wait_type == event_type, StepRun.status == WAITING)
        )
        return rows.scalars().all()

    async def unfinished(self, run_id: uuid.UUID) -> int:
        return await self.count(StepRun.run_id == run_id, StepRun.status.not_in(STEP_DONE))

    async def blocking(self, run_id: uuid.UUID) -> int:
        """Steps that keep a run from succeeding: failed ones, and ones held when the run failed."""
        return await self.count(
            StepRun.run_id == run_id,
            or_(StepRun.status == FAILED, and_(StepRun.status == CANCELLED, StepRun.error_kind == HELD)),
        )

    async def held(self, run_id: uuid.UUID) -> Sequence[StepRun]:
        rows = await self.session.execute(
            self.select()
            .where(StepRun.run_id == run_id, StepRun.status == CANCELLED, StepRun.error_kind == HELD)
            .execution_options(populate_existing=True)
        )
        return rows.scalars().all()


class EffectRepository(TenantRepository[Effect]):
    model = Effect

    async def begin(self, key: str, values: dict[str, Any]) -> Effect:
        """The effect of this key: recorded now (committed before the call), or as an earlier
        attempt left it (completed: its response stands; started: call again with the same key)."""
        found = await self.find(Effect.idempotency_key == key)
        if found is not None:
            found.calls += 1
            await self.session.flush()
            return found
        return await self.add(Effect(idempotency_key=key, status="started", calls=1, **values))

    async def complete(self, key: str, response: Any, now: datetime) -> None:
        await self.session.execute(
            update(Effect)
            .where(*self.scope(), Effect.idempotency_key == key)
            .values(status="completed", response=response, completed_at=now)
            .execution_options(synchronize_session=False)
        )


class TimerRepository(TenantRepository[Timer]):
    model = Timer

    async def cancel_for_run(self, run_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(Timer)
            .where(*self.scope(), Timer.run_id == run_id, Timer.fired_at.is_(None))
            .values(fired_at=now)
            .execution_options(synchronize_session=False)
        )

    async def cancel_run_timers(
        self,
        run_id: uuid.UUID,
        kinds: Sequence[str],
        now: datetime,
        *,
        due_after: datetime | None = None,
        refs: Sequence[uuid.UUID] | None = None,
    ) -> None:
        """The run's unfired timers of these kinds (for these ``refs``) will not fire; with
        ``due_after`` only those due later (one already due still fires, and judges for itself)."""
        where = [*self.scope(), Timer.run_id == run_id, Timer.fired_at.is_(None), Timer.kind.in_(list(kinds))]
        if due_after is not None:
            where.append(Timer.fire_at > due_after)
        if refs is not None:
            where.append(Timer.ref_id.in_(list(refs)))
        await self.session.execute(
            update(Timer).where(*where).values(fired_at=now).execution_options(synchronize_session=False)
        )

    async def of_run(self, run_id: uuid.UUID, kinds: Sequence[str]) -> Sequence[Timer]:
        rows = await self.session.execute(
            self.select().where(Timer.run_id == run_id, Timer.kind.in_(list(kinds))).order_by(Timer.fire_at)
        )
        return rows.scalars().all()


class EscalationRepository(TenantRepository[Escalation]):
    model = Escalation

    async def of_run(self, run_id: uuid.UUID) -> Sequence[Escalation]:
        rows = await self.session.execute(
            self.select()
            .where(Escalation.run_id == run_id)
            .order_by(Escalation.started_at, Escalation.id)
            .execution_options(populate_existing=True)
        )
        return rows.scalars().all()

    async def take_page(self, escalation_id: uuid.UUID, number: int, **values: Any) -> bool:
        """Compare-and-set: page ``number`` is this caller's to send only if the ladder is still
        active and sent exactly the pages before it (an acknowledgement or a twin timer got there
        first otherwise)."""
        moved = await self.session.execute(
            update(Escalation)
            .where(
                *self.scope(),
                Escalation.id == escalation_id,
                Escalation.status == ACTIVE,
                Escalation.pages == number - 1,
            )
            .values(pages=number, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]

    async def stop(
        self, run_id: uuid.UUID, status: str, now: datetime, *, by: str | None, started_by: datetime | None = None
    ) -> list[uuid.UUID]:
        """The run's active ladders (those started by ``started_by``) stop with ``status``; the ones
        stopped."""
        where = [*self.scope(), Escalation.run_id == run_id, Escalation.status == ACTIVE]
        if started_by is not None:
            where.append(Escalation.started_at <= started_by)
        values: dict[str, Any] = {"status": status, "finished_at": now, "next_page_at": None}
        if by is not None:
            values.update(acknowledged_at=now, acknowledged_by=by)
        stopped = await self.session.execute(
            update(Escalation)
            .where(*where)
            .values(**values)
            .returning(Escalation.id)
            .execution_options(synchronize_session=False)
        )
        return list(stopped.scalars().all())


class EscalationPageRepository(TenantRepository[EscalationPage]):
    model = EscalationPage

    async def of_run(self, run_id: uuid.UUID) -> Sequence[EscalationPage]:
        rows = await self.session.execute(
            self.select()
            .where(EscalationPage.run_id == run_id)
            .order_by(EscalationPage.paged_at, EscalationPage.number)
        )
        return rows.scalars().all()


class SlaBreachRepository(TenantRepository[SlaBreach]):
    model = SlaBreach

    async def record(self, values: dict[str, Any]) -> SlaBreach | None:
        """The breach, unless this run's policy and kind were already found breached (insert-or-ignore
        on the unique run, policy and kind)."""
        if await self.find(
            SlaBreach.run_id == values["run_id"], SlaBreach.policy == values["policy"], SlaBreach.kind == values["kind"]
        ):
            return None
        return await self.add(SlaBreach(**values))

    async def search(
        self, *, limit: int, offset: int, run_id: uuid.UUID | None = None
    ) -> tuple[Sequence[SlaBreach], int]:
        where: list[ColumnElement[bool]] = []
        if run_id is not None:
            where.append(SlaBreach.run_id == run_id)
        rows = await self.session.execute(
            self.select().where(*where).order_by(SlaBreach.breached_at.desc(), SlaBreach.id).limit(limit).offset(offset)
        )
        return rows.scalars().all(), await self.count(*where)


class PeopleRepository:
    """The people a ladder pages: members of the customer, and its partner's support people."""

    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        self.session = session
        self.ctx = ctx

    async def members(self, refs: Sequence[str]) -> list[User]:
        """Users of the customer (not disabled) named by id or e-mail (any case), in the order named."""
        ids: list[uuid.UUID] = []
        emails: list[str] = []
        for ref in refs:
            try:
                ids.append(uuid.UUID(ref))
            except ValueError:
                emails.append(ref.lower())
        stmt = select(User).where(
            User.org_kind == "customer",
            User.tenant_id == self.ctx.tenant_id,
            User.status != "disabled",
            or_(User.id.in_(ids), func.lower(User.email).in_(emails)),
        )
        found = (await self.session.execute(stmt)).scalars().all()
        by_ref = {str(u.id): u for u in found} | {u.email.lower(): u for u in found}
        ordered: dict[uuid.UUID, User] = {}
        for ref in refs:
            user = by_ref.get(ref.lower())
            if user is not None:
                ordered.setdefault(user.id, user)
        return list(ordered.values())

    async def with_grants(
        self, user_ids: Sequence[uuid.UUID] | None = None, *, limit: int = 2000
    ) -> list[tuple[User, list[RoleGrant]]]:
        """Users of the customer (not disabled) with their role grants, by e-mail: these users, or
        (``None``) every one of them that holds a role (at most ``limit`` grants are read)."""
        where = [User.org_kind == "customer", User.tenant_id == self.ctx.tenant_id, User.status != "disabled"]
        if user_ids is not None:
            where.append(User.id.in_(list(user_ids)))
        stmt = (
            select(User, RoleGrant)
            .join(RoleGrant, RoleGrant.user_id == User.id)
            .where(*where)
            .order_by(User.email, RoleGrant.role)
            .limit(limit)
        )
        people: dict[uuid.UUID, tuple[User, list[RoleGrant]]] = {}
        for user, grant in (await self.session.execute(stmt)).all():
            people.setdefault(user.id, (user, []))[1].append(grant)
        return list(people.values())

    async def partner_support(self) -> list[tuple[User, str]]:
        """The partner's active users who hold its support role, then its administrators."""
        stmt = (
            select(User, RoleGrant.role)
            .join(RoleGrant, RoleGrant.user_id == User.id)
            .where(
                User.org_kind == "partner",
                User.partner_id == self.ctx.partner_id,
                User.status != "disabled",
                RoleGrant.role.in_(["partner_support", "partner_admin"]),
            )
            .order_by(RoleGrant.role.desc(), User.email)
        )
        seen: dict[uuid.UUID, tuple[User, str]] = {}
        for user, role in (await self.session.execute(stmt)).all():
            seen.setdefault(user.id, (user, role))
        return list(seen.values())


class TaskRepository(TenantRepository[HumanTask]):
    model = HumanTask

    def scope(self) -> list[ColumnElement[bool]]:
        return super().scope() + within_sites(HumanTask.site_id, self.ctx.principal.site_ids)

    async def search(
        self, *, limit: int, offset: int, status: str | None = None, run_id: uuid.UUID | None = None
    ) -> tuple[Sequence[HumanTask], int]:
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(HumanTask.status == status)
        if run_id:
            where.append(HumanTask.run_id == run_id)
        rows = await self.session.execute(
            self.select()
            .where(*where)
            .order_by(HumanTask.created_at.desc(), HumanTask.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return rows.scalars().all(), await self.count(*where)

    async def inbox(
        self, where: Sequence[ColumnElement[bool]], first: ColumnElement[bool], *, limit: int, offset: int
    ) -> Sequence[HumanTask]:
        """Tasks matching ``where``: those matching ``first`` before the rest, each part oldest first."""
        rows = await self.session.execute(
            self.select()
            .where(*where)
            .order_by(case((first, 0), else_=1), HumanTask.id)
            .limit(limit)
            .offset(offset)
            .execution_options(populate_existing=True)
        )
        return rows.scalars().all()

    async def cancel_for_step(self, run_id: uuid.UUID, step_key: str, now: datetime) -> None:
        await self.close_for_step(run_id, step_key, "cancelled", now)

    async def close_for_step(self, run_id: uuid.UUID, step_key: str, status: str, now: datetime) -> None:
        await self.session.execute(
            update(HumanTask)
            .where(
                *self.scope(), HumanTask.run_id == run_id, HumanTask.step_key == step_key, HumanTask.status == "open"
            )
            .values(status=status, completed_at=now)
            .execution_options(synchronize_session=False)
        )

    async def cancel_for_run(self, run_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(HumanTask)
            .where(*self.scope(), HumanTask.run_id == run_id, HumanTask.status == "open")
            .values(status="cancelled", completed_at=now)
            .execution_options(synchronize_session=False)
        )


class DecisionRepository(TenantRepository[ApprovalDecision]):
    model = ApprovalDecision

    async def of_task(self, task_id: uuid.UUID) -> Sequence[ApprovalDecision]:
        rows = await self.session.execute(
            self.select().where(ApprovalDecision.task_id == task_id).order_by(ApprovalDecision.signed_at)
        )
        return rows.scalars().all()


class SchedulerRepository:
    """A scheduler's view across tenants, in the scheduler mode: due timers and stalled steps."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enter(self) -> None:
        await enter_scheduler_mode(self.session)

    async def fire_due(
        self, now: datetime, limit: int, *, run_timers: RunTimerHandler | None = None
    ) -> tuple[int, list[StepRun]]:
        """Fires up to ``limit`` due timers at once: marks them fired and queues the steps they wake
        (each only if it still waits for that timer). The number fired, and the steps woken.

        Timers of a run rather than a step (a ladder's page, an SLA's due time) are fired only with
        a ``run_timers`` handler, which acts on them in this same transaction."""
        stmt = (
            select(
                Timer.id,
                Timer.tenant_id,
                Timer.partner_id,
                Timer.run_id,
                Timer.step_key,
                Timer.attempt,
                Timer.kind,
                Timer.fire_at,
                Timer.ref_id,
            )  # andon: unscoped-ok (scheduler mode)
            .where(Timer.fired_at.is_(None), Timer.fire_at <= now)
            .order_by(Timer.fire_at)
            .limit(limit)
        )
        if run_timers is None:
            stmt = stmt.where(Timer.kind.not_in(sorted(RUN_TIMERS)))
        if is_postgres(self.session):
            # Several schedulers at once: each takes the timers no other has locked.
            stmt = stmt.with_for_update(skip_locked=True)
        due = (await self.session.execute(stmt)).all()
        if not due:
            return 0, []
        await self.session.execute(
            update(Timer)  # andon: unscoped-ok (scheduler mode)
            .where(Timer.id.in_([row.id for row in due]))
            .values(fired_at=now)
            .execution_options(synchronize_session=False)
        )
        woken: list[StepRun] = []
        reminded = [(row.run_id, row.step_key) for row in due if row.kind == "remind"]
        if reminded:
            # A reminder wakes no step: it counts on the open task, for the inbox and notifications.
            await self.session.execute(
                update(HumanTask)  # andon: unscoped-ok (scheduler mode)
                .where(tuple_(HumanTask.run_id, HumanTask.step_key).in_(reminded), HumanTask.status == "open")
                .values(reminders=HumanTask.reminders + 1, last_reminded_at=now)
                .execution_options(synchronize_session=False)
            )
        for kind in sorted({row.kind for row in due} - {"remind"} - RUN_TIMERS):
            keys = [(row.run_id, row.step_key, row.attempt) for row in due if row.kind == kind]
            result = await self.session.execute(
                update(StepRun)  # andon: unscoped-ok (scheduler mode)
                .where(
                    tuple_(StepRun.run_id, StepRun.step_key, StepRun.attempt).in_(keys),
                    StepRun.status == (SCHEDULED if kind == "retry" else WAITING),
                )
                .values(status=QUEUED, wake=kind, queued_at=now)
                .returning(StepRun)
                .execution_options(synchronize_session=False)
            )
            woken += result.scalars().all()
        of_runs = [row for row in due if row.kind in RUN_TIMERS]
        if of_runs and run_timers is not None:
            await run_timers(self.session, of_runs, now)
        return len(due), woken

    async def rearm(self, timer_id: uuid.UUID, fire_at: datetime) -> None:
        """A run timer whose handling failed fires again later instead of being lost."""
        await self.session.execute(
            update(Timer)  # andon: unscoped-ok (scheduler mode)
            .where(Timer.id == timer_id)
            .values(fired_at=None, fire_at=fire_at)
            .execution_options(synchronize_session=False)
        )

    async def stalled(self, now: datetime, queued_before: datetime, limit: int) -> Sequence[StepRun]:
        """Steps whose message was lost (queued too long) or whose worker died (lease over)."""
        stmt = (
            select(StepRun)  # andon: unscoped-ok (scheduler mode)
            .where(
                or_(
                    and_(StepRun.status == QUEUED, StepRun.queued_at < queued_before),
                    and_(StepRun.status == RUNNING, StepRun.lease_until < now),
                )
            )
            .order_by(StepRun.queued_at)
            .limit(limit)
        )
        if is_postgres(self.session):
            stmt = stmt.with_for_update(skip_locked=True)
        return (await self.session.execute(stmt)).scalars().all()

    async def requeue(self, step: StepRun, now: datetime) -> bool:
        """A stalled step back in the queue (compare-and-set: unless it moved meanwhile)."""
        moved = await self.session.execute(
            update(StepRun)  # andon: unscoped-ok (scheduler mode)
            .where(StepRun.id == step.id, StepRun.status == step.status, StepRun.attempt == step.attempt)
            .values(status=QUEUED, queued_at=now, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]
