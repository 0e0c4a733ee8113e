"""All SQL of the engine. Every state change of a step is a compare-and-set on its status (and
attempt), so a message delivered twice, a timer and an event racing, or a worker that lost its lease
can never move a step twice."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Row,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers

from andon.platform.db.ids import new_id
from andon.platform.db.repository import TenantRepository, within_sites
from andon.platform.db.scope import enter_scheduler_mode, is_postgres
from andon.platform.db.types import UTCDateTime
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

# The step's hot path (claim, complete, queue the next step) runs these Core statements on the tables,
# built once: an ORM statement costs several times more Python per execution (entity compile state,
# result loading, identity map) than the round trip itself. Each carries the tenant as a parameter,
# which the methods below always bind from their context.
RUNS = cast(Table, WorkflowRun.__table__)
STEPS = cast(Table, StepRun.__table__)
EFFECTS = cast(Table, Effect.__table__)
# A run as a step reads it; its definition is read only when a worker has not compiled it yet (a
# workflow version never changes).
_RUN_COLUMNS = [c for c in RUNS.c if c.name != "definition"]
_NOW = bindparam("p_now", type_=UTCDateTime())
_CLAIMABLE = and_(
    STEPS.c.tenant_id == bindparam("p_tenant_id"),
    STEPS.c.run_id == bindparam("p_run_id"),
    STEPS.c.step_key == bindparam("p_step_key"),
    STEPS.c.attempt == bindparam("p_attempt"),
    or_(STEPS.c.status == QUEUED, and_(STEPS.c.status == RUNNING, STEPS.c.lease_until < _NOW)),
)
_CLAIM_VALUES: dict[str, Any] = {
    "status": RUNNING,
    "started_at": func.coalesce(STEPS.c.started_at, _NOW),
    "lease_until": bindparam("p_lease_until", type_=UTCDateTime()),
    "updated_at": _NOW,
}
_CLAIM = update(STEPS).where(_CLAIMABLE).values(**_CLAIM_VALUES).returning(*STEPS.c)
# PostgreSQL: the claim returns its run in the same round trip (UPDATE ... FROM); SQLite cannot
# return the columns of another table, so it reads the run with a second statement.
_CLAIM_WITH_RUN = (
    update(STEPS)
    .where(_CLAIMABLE, RUNS.c.id == STEPS.c.run_id, RUNS.c.tenant_id == STEPS.c.tenant_id)
    .values(**_CLAIM_VALUES)
    .returning(*STEPS.c, *[c.label(f"run__{c.name}") for c in _RUN_COLUMNS])
)
_THE_RUN = and_(RUNS.c.tenant_id == bindparam("p_tenant_id"), RUNS.c.id == bindparam("p_run_id"))
_RUN_ROW = select(*_RUN_COLUMNS).where(_THE_RUN)
# The run's row lock: whoever changes a run under way (a step completing, a person cancelling,
# retrying or skipping, a timer firing) holds it, so they take turns (a no-op on SQLite, where a
# write transaction excludes every other writer).
_RUN_LOCKED = _RUN_ROW.with_for_update()
_RUN_DEFINITION = select(RUNS.c.definition).where(_THE_RUN)
_STEP_STATE = select(STEPS.c.status, STEPS.c.attempt).where(
    STEPS.c.tenant_id == bindparam("p_tenant_id"),
    STEPS.c.run_id == bindparam("p_run_id"),
    STEPS.c.step_key == bindparam("p_step_key"),
)
_QUEUE_VALUES: dict[str, Any] = {
    "id": bindparam("p_id"),
    "tenant_id": bindparam("p_tenant_id"),
    "run_id": bindparam("p_run_id"),
    "partner_id": bindparam("p_partner_id"),
    "step_key": bindparam("p_step_key"),
    "kind": bindparam("p_kind"),
    "status": QUEUED,
    "attempt": 1,
    "queued_at": _NOW,
    "created_at": _NOW,
    "updated_at": _NOW,
}
_INSERTS: dict[str, Any] = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def _per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    """One prebuilt statement per dialect: their INSERT … ON CONFLICT constructs are distinct types."""
    return {name: build(insert) for name, insert in _INSERTS.items()}


def _step_insert(values: dict[str, Any]) -> dict[str, Any]:
    """A step row inserted unless the run already has that step; the keys of the rows inserted."""
    return _per_dialect(
        lambda insert: (
            insert(STEPS)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["run_id", "step_key"])
            .returning(STEPS.c.step_key)
        )
    )


_QUEUE = _step_insert(_QUEUE_VALUES)
_SETTLED_VALUES: dict[str, Any] = {
    **_QUEUE_VALUES,
    "status": bindparam("p_status"),
    "output": bindparam("p_output", type_=STEPS.c.output.type),
    "error": bindparam("p_error"),
    "error_kind": bindparam("p_error_kind"),
    "started_at": _NOW,
    "finished_at": _NOW,
}
_SETTLED = _step_insert(_SETTLED_VALUES)
_UNFINISHED = STEPS.c.status.not_in(sorted(STEP_DONE))
_BLOCKING = or_(STEPS.c.status == FAILED, and_(STEPS.c.status == CANCELLED, STEPS.c.error_kind == HELD))
_REMAINING = select(
    func.coalesce(func.sum(case((_UNFINISHED, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_BLOCKING, 1), else_=0)), 0),
).where(STEPS.c.tenant_id == bindparam("p_tenant_id"), STEPS.c.run_id == bindparam("p_run_id"))
_EFFECT_VALUES: dict[str, Any] = {
    "id": bindparam("p_id"),
    "tenant_id": bindparam("p_tenant_id"),
    "idempotency_key": bindparam("p_key"),
    "run_id": bindparam("p_run_id"),
    "step_key": bindparam("p_step_key"),
    "capability": bindparam("p_capability"),
    "status": "started",
    "calls": 1,
    "created_at": _NOW,
    "updated_at": _NOW,
}
_EFFECT_AGAIN: dict[str, Any] = {"calls": EFFECTS.c.calls + 1, "updated_at": _NOW}
_EFFECT_BEGIN = _per_dialect(
    lambda insert: (
        insert(EFFECTS)
        .values(**_EFFECT_VALUES)
        .on_conflict_do_update(index_elements=["tenant_id", "idempotency_key"], set_=_EFFECT_AGAIN)
        .returning(EFFECTS.c.status, EFFECTS.c.response)
    )
)
_EFFECT_COMPLETE = (
    update(EFFECTS)
    .where(EFFECTS.c.tenant_id == bindparam("p_tenant_id"), EFFECTS.c.idempotency_key == bindparam("p_key"))
    .values(status="completed", response=bindparam("p_response", type_=EFFECTS.c.response.type), completed_at=_NOW)
)
# PostgreSQL appends the new step outputs to the stored context (jsonb ||) instead of receiving the
# whole, growing document again at every step.
_CONTEXT = type_coerce(RUNS.c.context, JSONB)
_CONTEXT_WITH_OUTPUTS = _CONTEXT.op("||", return_type=JSONB)(
    func.jsonb_build_object(
        literal("steps"),
        func.coalesce(_CONTEXT.op("->", return_type=JSONB)(literal("steps")), literal({}, JSONB)).op(
            "||", return_type=JSONB
        )(bindparam("p_outputs", type_=JSONB)),
    )
)


def _params(**values: Any) -> dict[str, Any]:
    """Values for the statements above (their parameters are prefixed: a parameter may not take the
    name of a column an INSERT or UPDATE sets)."""
    return {f"p_{name}": value for name, value in values.items()}


def _detached(model: type[Any], values: dict[str, Any]) -> Any:
    """A detached instance of ``model`` holding ``values`` as loaded (the session never tracks it),
    filled the way the ORM fills what it loads: straight into its ``__dict__``, which costs a tenth
    of the constructor's attribute events."""
    mapper = model.__mapper__
    if not mapper.configured:
        configure_mappers()  # what constructing the first instance would do
    instance = mapper.class_manager.new_instance()
    instance.__dict__.update(values)
    return instance


def _entity(model: type[Any], row: Row[Any], prefix: str = "") -> Any:
    """A detached instance of ``model`` from a Core row."""
    values = row._mapping
    return _detached(
        model, {c.name: values[f"{prefix}{c.name}"] for c in model.__table__.c if f"{prefix}{c.name}" in values}
    )


# PostgreSQL: the hot path's statements, hand-written and run on the transaction's own asyncpg
# connection (the names they interpolate are this module's constants and the tables' own columns:
# hence the ``noqa: S608``). Even a prebuilt Core statement costs a few hundred microseconds of Python per execution
# (greenlet bridge, cache key, parameter and result processing), several times asyncpg's own cost;
# the step path runs a dozen of them. The transaction is still SQLAlchemy's (begun by its first
# statement, committed by the session), so these run inside it, after ``bind_tenant``, under RLS.
_DRIVER = "andon.engine.driver"
_JSON_COLUMNS = frozenset(c.name for t in (RUNS, STEPS, EFFECTS) for c in t.c if isinstance(c.type, JSON))


def _list(columns: Sequence[Any], alias: str = "", prefix: str = "") -> str:
    qualified = f"{alias}." if alias else ""
    return ", ".join(f"{qualified}{c.name}" + (f" AS {prefix}{c.name}" if prefix else "") for c in columns)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


_PG_CLAIM = (
    f"UPDATE step_runs AS s SET status = '{RUNNING}', started_at = coalesce(s.started_at, $5), lease_until = $6, "  # noqa: S608
    "updated_at = $5 FROM workflow_runs AS r WHERE s.tenant_id = $1 AND s.run_id = $2 AND s.step_key = $3 "
    f"AND s.attempt = $4 AND (s.status = '{QUEUED}' OR (s.status = '{RUNNING}' AND s.lease_until < $5)) "
    f"AND r.id = s.run_id AND r.tenant_id = s.tenant_id RETURNING {_list(list(STEPS.c), 's')}, "
    f"{_list(_RUN_COLUMNS, 'r', 'run__')}"
)
_PG_LOCKED = f"SELECT {_list(_RUN_COLUMNS)} FROM workflow_runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE"  # noqa: S608
_PG_EFFECT_START = (
    "INSERT INTO effects (id, tenant_id, idempotency_key, run_id, step_key, capability, status, calls, created_at, "
    "updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'started', 1, $7, $7) ON CONFLICT (tenant_id, idempotency_key) "
    "DO UPDATE SET calls = effects.calls + 1, updated_at = $7 RETURNING status, response"
)
_PG_EFFECT_COMPLETE = (
    "UPDATE effects SET status = 'completed', response = $3, completed_at = $4, updated_at = $4 "
    "WHERE tenant_id = $1 AND idempotency_key = $2"
)
_PG_QUEUE = (
    "INSERT INTO step_runs (id, tenant_id, run_id, partner_id, step_key, kind, status, attempt, queued_at, "  # noqa: S608
    f"created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, '{QUEUED}', 1, $7, $7, $7) "
    "ON CONFLICT (run_id, step_key) DO NOTHING RETURNING step_key"
)
_PG_SETTLED = (
    "INSERT INTO step_runs (id, tenant_id, run_id, partner_id, step_key, kind, attempt, queued_at, created_at, "
    "updated_at, started_at, finished_at, status, output, error, error_kind) "
    "VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $7, $7, $7, $8, $9, $10, $11) "
    "ON CONFLICT (run_id, step_key) DO NOTHING RETURNING step_key"
)
_DONE_LIST = ", ".join(f"'{status}'" for status in sorted(STEP_DONE))
_PG_REMAINING = (
    f"SELECT count(*) FILTER (WHERE status NOT IN ({_DONE_LIST})), count(*) FILTER (WHERE status = '{FAILED}' "  # noqa: S608
    f"OR (status = '{CANCELLED}' AND error_kind = '{HELD}')) FROM step_runs WHERE tenant_id = $1 AND run_id = $2"
)
_PG_SAVE = "UPDATE workflow_runs SET status = $3, finished_at = $4, error = $5, updated_at = $6"
_PG_SAVE_WHERE = " WHERE tenant_id = $1 AND id = $2"
_PG_SAVE_OUTPUTS = (
    f"{_PG_SAVE}, context = context || jsonb_build_object('steps', coalesce(context -> 'steps', '{{}}'::jsonb) "
    f"|| $7::jsonb){_PG_SAVE_WHERE}"
)
_PG_MOVES: dict[tuple[str, ...], str] = {}


def _pg_move(columns: tuple[str, ...]) -> str:
    """The compare-and-set of a step by its key, setting these columns ($6 on)."""
    sql = _PG_MOVES.get(columns)
    if sql is None:
        unknown = set(columns) - set(STEPS.c.keys())
        if unknown:
            raise ValueError(f"step_runs has no column {sorted(unknown)}")
        sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, 6))
        sql = (
            f"UPDATE step_runs SET {sets} WHERE tenant_id = $1 AND run_id = $2 AND step_key = $3 AND status = $4 "  # noqa: S608
            "AND attempt = $5"
        )
        _PG_MOVES[columns] = sql
    return sql


async def _driver(session: AsyncSession, ctx: TenantContext) -> Any | None:
    """The transaction's asyncpg connection; None on SQLite, for a principal limited to some sites
    (the SQLAlchemy statements narrow to them), or before the transaction has begun."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and cached[0] is transaction:
        return cached[1]
    if transaction is None or ctx.principal.site_ids is not None or not is_postgres(session):
        return None
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():
        return None  # SQLAlchemy begins it with its first statement: the caller uses its statements
    session.info[_DRIVER] = (transaction, driver)
    return driver


def _record(model: type[Any], record: Any, prefix: str = "") -> Any:
    """A detached instance of ``model`` from an asyncpg record."""
    values = dict(record.items())
    if not prefix:
        return _detached(model, values)
    return _detached(
        model, {c.name: values[f"{prefix}{c.name}"] for c in model.__table__.c if f"{prefix}{c.name}" in values}
    )


class WorkflowRepository(TenantRepository[Workflow]):
    model = Workflow

    async def triggered_by(self, event_type: str) -> Sequence[Workflow]:
        rows = await self.session.execute(
            self.select()
            .where(
                or_(
                    Workflow.trigger_type == event_type,
                    Workflow.more_trigger_types.contains(f",{event_type},", autoescape=True),
                ),
                Workflow.enabled.is_(True),
            )
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
        """The run, read fresh (after the run's lock is held: ``lock``, so its context is current)."""
        stmt = self.select().where(WorkflowRun.id == run_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock(self, run_id: uuid.UUID) -> bool:
        """The run's row lock (see ``_RUN_LOCKED``) until the transaction ends; False: no such run."""
        found = await self.session.execute(
            self._core(select(RUNS.c.id).where(_THE_RUN).with_for_update()),
            _params(tenant_id=self.ctx.tenant_id, run_id=run_id),
        )
        return found.first() is not None

    def _core(self, stmt: Any) -> Any:
        # The prebuilt statements bind the tenant; a principal limited to some sites narrows them.
        if self.ctx.principal.site_ids is None:
            return stmt
        return stmt.where(RUNS.c.site_id.in_(sorted(self.ctx.principal.site_ids)))

    async def locked(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """The run under its row lock, read with Core: a detached object, without its definition
        (``definition`` loads it). Changes to it are written with ``save``."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            record = await driver.fetchrow(_PG_LOCKED, self.ctx.tenant_id, run_id)
            return None if record is None else _record(WorkflowRun, record)
        row = (
            await self.session.execute(self._core(_RUN_LOCKED), _params(tenant_id=self.ctx.tenant_id, run_id=run_id))
        ).first()
        return None if row is None else _entity(WorkflowRun, row)

    async def read(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """``locked`` without the lock."""
        row = (
            await self.session.execute(self._core(_RUN_ROW), _params(tenant_id=self.ctx.tenant_id, run_id=run_id))
        ).first()
        return None if row is None else _entity(WorkflowRun, row)

    async def definition(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        found = await self.session.execute(
            self._core(_RUN_DEFINITION), _params(tenant_id=self.ctx.tenant_id, run_id=run_id)
        )
        return cast(dict[str, Any] | None, found.scalar_one_or_none())

    async def save(self, run: WorkflowRun, outputs: dict[str, Any], now: datetime) -> None:
        """A detached run's status, error and context written back (under its lock); ``outputs``: the
        step outputs it gained, which PostgreSQL appends to the stored context."""
        values: dict[str, Any] = {
            "status": run.status,
            "finished_at": run.finished_at,
            "error": run.error,
            "updated_at": now,
        }
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            args = (self.ctx.tenant_id, run.id, run.status, run.finished_at, run.error, now)
            if outputs:
                await driver.execute(_PG_SAVE_OUTPUTS, *args, json.dumps(outputs))
            else:
                await driver.execute(_PG_SAVE + _PG_SAVE_WHERE, *args)
            return
        params: dict[str, Any] = {}
        if is_postgres(self.session):
            if outputs:
                values["context"] = _CONTEXT_WITH_OUTPUTS
                params["p_outputs"] = outputs
        else:
            values["context"] = run.context
        stmt = update(RUNS).where(RUNS.c.tenant_id == self.ctx.tenant_id, RUNS.c.id == run.id).values(**values)
        await self.session.execute(self._core(stmt), params)

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
        driver = await _driver(self.session, self.ctx) if steps else None
        if driver is not None:
            for key, kind in steps:
                if await driver.fetchval(_PG_QUEUE, new_id(), self.ctx.tenant_id, run_id, partner_id, key, kind, now):
                    created.append(key)
            return created
        stmt = _QUEUE["postgresql" if is_postgres(self.session) else "sqlite"]
        for key, kind in steps:
            params = _params(
                id=new_id(),
                tenant_id=self.ctx.tenant_id,
                run_id=run_id,
                partner_id=partner_id,
                step_key=key,
                kind=kind,
                now=now,
            )
            if (await self.session.execute(stmt, params)).scalar_one_or_none() is not None:
                created.append(key)
        return created

    async def settled(
        self,
        run_id: uuid.UUID,
        partner_id: uuid.UUID,
        step_key: str,
        kind: str,
        now: datetime,
        *,
        status: str,
        output: Any,
        error: str | None,
        error_kind: str | None,
    ) -> bool:
        """A step run inline, created with its outcome (queued and finished at ``now``), unless the
        run already has it; whether it was created."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            created = await driver.fetchval(
                _PG_SETTLED,
                new_id(),
                self.ctx.tenant_id,
                run_id,
                partner_id,
                step_key,
                kind,
                now,
                status,
                _json(output),
                error,
                error_kind,
            )
            return created is not None
        stmt = _SETTLED["postgresql" if is_postgres(self.session) else "sqlite"]
        params = _params(
            id=new_id(),
            tenant_id=self.ctx.tenant_id,
            run_id=run_id,
            partner_id=partner_id,
            step_key=step_key,
            kind=kind,
            now=now,
            status=status,
            output=output,
            error=error,
            error_kind=error_kind,
        )
        return (await self.session.execute(stmt, params)).scalar_one_or_none() is not None

    async def claim_with_run(
        self, run_id: uuid.UUID, step_key: str, attempt: int, now: datetime, lease_until: datetime
    ) -> tuple[StepRun, WorkflowRun | None] | None:
        """The step, now running for this caller (it was queued, or its last worker's lease ran out),
        and its run as ``RunRepository.locked`` reads it but without the lock (None: gone). Both
        detached. One round trip on PostgreSQL, where a step's rows go with its run (ON DELETE
        CASCADE): no row is nothing to claim."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            record = await driver.fetchrow(_PG_CLAIM, self.ctx.tenant_id, run_id, step_key, attempt, now, lease_until)
            return None if record is None else (_record(StepRun, record), _record(WorkflowRun, record, "run__"))
        params = _params(
            tenant_id=self.ctx.tenant_id,
            run_id=run_id,
            step_key=step_key,
            attempt=attempt,
            now=now,
            lease_until=lease_until,
        )
        if is_postgres(self.session) and self.ctx.principal.site_ids is None:
            row = (await self.session.execute(_CLAIM_WITH_RUN, params)).first()
            return None if row is None else (_entity(StepRun, row), _entity(WorkflowRun, row, "run__"))
        row = (await self.session.execute(_CLAIM, params)).first()
        if row is None:
            return None
        return _entity(StepRun, row), await RunRepository(self.session, self.ctx).read(run_id)

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

    async def move_key(self, run_id: uuid.UUID, step_key: str, expect: str, at_attempt: int, **values: Any) -> bool:
        """``move`` by the step's key (unique in its run) rather than its id, with Core."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            columns = tuple(values)
            args = [_json(v) if k in _JSON_COLUMNS else v for k, v in values.items()]
            done = await driver.execute(
                _pg_move(columns), self.ctx.tenant_id, run_id, step_key, expect, at_attempt, *args
            )
            return bool(done != "UPDATE 0")
        moved = await self.session.execute(
            update(STEPS)
            .where(
                STEPS.c.tenant_id == self.ctx.tenant_id,
                STEPS.c.run_id == run_id,
                STEPS.c.step_key == step_key,
                STEPS.c.status == expect,
                STEPS.c.attempt == at_attempt,
            )
            .values(**values)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]

    async def state(self, run_id: uuid.UUID, step_key: str) -> tuple[str, int] | None:
        """The step's status and attempt, as they stand now."""
        found = await self.session.execute(
            _STEP_STATE, _params(tenant_id=self.ctx.tenant_id, run_id=run_id, step_key=step_key)
        )
        row = found.first()
        return None if row is None else (str(row[0]), int(row[1]))

    async def remaining(self, run_id: uuid.UUID) -> tuple[int, int]:
        """``unfinished`` and ``blocking`` in one round trip."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            record = await driver.fetchrow(_PG_REMAINING, self.ctx.tenant_id, run_id)
            return int(record[0]), int(record[1])
        found = await self.session.execute(_REMAINING, _params(tenant_id=self.ctx.tenant_id, run_id=run_id))
        unfinished, blocking = found.one()
        return int(unfinished), int(blocking)

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

    async def held(self, run_id: uuid.UUID) -> Sequence[StepRun]:
        rows = await self.session.execute(
            self.select()
            .where(StepRun.run_id == run_id, StepRun.status == CANCELLED, StepRun.error_kind == HELD)
            .execution_options(populate_existing=True)
        )
        return rows.scalars().all()


class EffectRepository(TenantRepository[Effect]):
    model = Effect

    async def start(
        self, key: str, run_id: uuid.UUID, step_key: str, capability: str, now: datetime
    ) -> tuple[str, Any]:
        """``begin`` in one statement (insert, or count one more call): the effect's status and
        response."""
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            record = await driver.fetchrow(
                _PG_EFFECT_START, new_id(), self.ctx.tenant_id, key, run_id, step_key, capability, now
            )
            return str(record[0]), record[1]
        stmt = _EFFECT_BEGIN["postgresql" if is_postgres(self.session) else "sqlite"]
        params = _params(
            id=new_id(),
            tenant_id=self.ctx.tenant_id,
            key=key,
            run_id=run_id,
            step_key=step_key,
            capability=capability,
            now=now,
        )
        status, response = (await self.session.execute(stmt, params)).one()
        return str(status), response

    async def complete(self, key: str, response: Any, now: datetime) -> None:
        driver = await _driver(self.session, self.ctx)
        if driver is not None:
            await driver.execute(_PG_EFFECT_COMPLETE, self.ctx.tenant_id, key, json.dumps(response), now)
            return
        await self.session.execute(
            _EFFECT_COMPLETE, _params(tenant_id=self.ctx.tenant_id, key=key, response=response, now=now)
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

    async def cancel_for_step(self, run_id: uuid.UUID, step_key: str, now: datetime) -> None:
        """The step's unfired timers will not fire (it stopped waiting and may wait again at the same
        attempt)."""
        await self.session.execute(
            update(Timer)
            .where(*self.scope(), Timer.run_id == run_id, Timer.step_key == step_key, Timer.fired_at.is_(None))
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
        self,
        run_id: uuid.UUID,
        status: str,
        now: datetime,
        *,
        by: str | None,
        started_by: datetime | None = None,
        key: str | None = None,
    ) -> list[uuid.UUID]:
        """The run's active ladders (those started by ``started_by``, the one named ``key``) stop with
        ``status``; the ones stopped."""
        where = [*self.scope(), Escalation.run_id == run_id, Escalation.status == ACTIVE]
        if started_by is not None:
            where.append(Escalation.started_at <= started_by)
        if key is not None:
            where.append(Escalation.key == key)
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

    async def claim_delivery(self, page_id: uuid.UUID, now: datetime, lease_until: datetime) -> EscalationPage | None:
        """Compare-and-set: the page is this worker's to deliver if it is still pending and no other
        worker holds it (its lease is over); its delivery attempt counts up."""
        moved = await self.session.execute(
            update(EscalationPage)
            .where(
                *self.scope(),
                EscalationPage.id == page_id,
                EscalationPage.delivery == "pending",
                or_(EscalationPage.delivery_lease_until.is_(None), EscalationPage.delivery_lease_until < now),
            )
            .values(delivery_attempts=EscalationPage.delivery_attempts + 1, delivery_lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return None
        found = await self.session.execute(
            self.select().where(EscalationPage.id == page_id).execution_options(populate_existing=True)
        )
        return found.scalar_one_or_none()

    async def settle_delivery(self, page_id: uuid.UUID, attempt: int, **values: Any) -> bool:
        """The outcome of delivery ``attempt``, unless another worker took the page over since."""
        moved = await self.session.execute(
            update(EscalationPage)
            .where(*self.scope(), EscalationPage.id == page_id, EscalationPage.delivery_attempts == attempt)
            .values(delivery_lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


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
