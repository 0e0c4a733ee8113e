"""Workflows, runs and tasks as people manage them: every change is audited, and the step messages
a change produces are sent once its transaction has committed."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.api.schemas import apply_update
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.db.after_commit import after_commit
from andon.platform.db.types import utcnow
from andon.platform.engine.assignment import Assignments, Change, may_complete, standing
from andon.platform.engine.definition import Compiled, compile_definition, ladder_targets
from andon.platform.engine.executor import Send, StepMessage
from andon.platform.engine.expressions import ExpressionError, compile_cel
from andon.platform.engine.models import (
    SLA_TIMERS,
    ApprovalDecision,
    Escalation,
    EscalationPage,
    HumanTask,
    SlaBreach,
    StepRun,
    Timer,
    Workflow,
    WorkflowRun,
)
from andon.platform.engine.page_delivery import channel_problems
from andon.platform.engine.repository import (
    DecisionRepository,
    EscalationPageRepository,
    EscalationRepository,
    PeopleRepository,
    RunRepository,
    SlaBreachRepository,
    StepRunRepository,
    TaskRepository,
    TimerRepository,
    WorkflowRepository,
)
from andon.platform.engine.runs import RunControl, Signature, start_run
from andon.platform.engine.schemas import WorkflowCreate, WorkflowUpdate
from andon.platform.engine.subflows import subflow_problems
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.http.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
    field_error,
)
from andon.platform.identity.models import User
from andon.platform.identity.passwords import verify_password
from andon.platform.identity.repository import SessionRepository, UserRepository
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import SubjectKind

# How recent a sign-in through the organisation's provider must be to stand as a signature.
RECENT_SIGN_IN = timedelta(minutes=5)
# Sends still in flight after their commit; kept so none is collected before it finishes.
_SENDING: set[asyncio.Task[None]] = set()


def send_after_commit(session: AsyncSession, send: Send, messages: Sequence[StepMessage]) -> None:
    if not messages:
        return

    def go() -> None:
        task = asyncio.get_running_loop().create_task(send(list(messages)))
        _SENDING.add(task)
        task.add_done_callback(_SENDING.discard)

    after_commit(session, go)


def definition_problems(definition: dict[str, Any]) -> list[dict[str, str]]:
    try:
        compile_definition(definition)
    except ValidationFailedError as refusal:
        return [{"field": str(e["field"]), "message": str(e["message"])} for e in refusal.extra["errors"]]
    return []


class WorkflowService:
    def __init__(self, session: AsyncSession, tenant: TenantContext, send: Send) -> None:
        self.session = session
        self.tenant = tenant
        self.send = send
        self.repo = WorkflowRepository(session, tenant)

    async def _audit(self, action: str, workflow: Workflow, before: dict[str, Any] | None = None) -> None:
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="workflow",
            target_id=workflow.id,
            before=before,
            after=snapshot(workflow),
            tenant=self.tenant,
        )

    async def get(self, workflow_id: uuid.UUID) -> Workflow:
        workflow = await self.repo.get(workflow_id)
        if workflow is None:
            raise NotFoundError(f"workflow {workflow_id} not found")
        return workflow

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[Workflow], int]:
        return await self.repo.page(limit=limit, offset=offset)

    async def latest(self, key: str) -> Workflow | None:
        """The newest version of the workflow ``key``, if the tenant has one."""
        versions = await self.repo.list(Workflow.key == key, limit=1000)
        return max(versions, key=lambda w: w.version, default=None)

    @staticmethod
    def _check_trigger(trigger_type: str | None, trigger_filter: str | None) -> None:
        if trigger_type is not None and trigger_type not in CATALOGUE:
            raise field_error(
                "trigger_type", f"unknown event type; see GET /api/v1/event-types ({len(CATALOGUE)} types)"
            )
        if trigger_filter:
            try:
                compile_cel(trigger_filter)
            except ExpressionError as exc:
                raise field_error("trigger_filter", f"not a CEL expression: {exc}") from None

    async def _check_people(self, compiled: Compiled) -> None:
        """Every person a ladder names is a member of this customer (by e-mail or id)."""
        people = PeopleRepository(self.session, self.tenant)
        for field, target in ladder_targets(compiled.definition):
            if target.user is not None and not await people.members([target.user]):
                raise field_error(f"{field}.user", f"no user '{target.user}' in this customer")

    async def _check_subflows(self, key: str, compiled: Compiled) -> None:
        """Every subflow names a workflow of this customer, and none leads back to this one."""
        problems = await subflow_problems(self.session, self.tenant, key, compiled.definition)
        if problems:
            raise ValidationFailedError(
                "The workflow is not valid: " + "; ".join(f"{f}: {m}" for f, m in problems),
                extra={"errors": [{"field": f, "message": m} for f, m in problems]},
            )

    async def _check_channels(self, compiled: Compiled) -> None:
        """Every channel a ladder pages through is a notify capability of this customer's connections."""
        problems = await channel_problems(self.session, self.tenant, compiled.definition)
        if problems:
            raise ValidationFailedError(
                "The workflow is not valid: " + "; ".join(f"{f}: {m}" for f, m in problems),
                extra={"errors": [{"field": f, "message": m} for f, m in problems]},
            )

    async def create(self, data: WorkflowCreate) -> Workflow:
        self._check_trigger(data.trigger_type, data.trigger_filter)
        for index, more in enumerate(data.also_triggered_by):
            if data.trigger_type is None:
                raise field_error("also_triggered_by", "a workflow without a trigger_type has no other triggers")
            if more not in CATALOGUE:
                raise field_error(f"also_triggered_by[{index}]", "unknown event type; see GET /api/v1/event-types")
        compiled = compile_definition(data.definition)
        await self._check_people(compiled)
        await self._check_subflows(data.key, compiled)
        await self._check_channels(compiled)
        versions = await self.repo.list(Workflow.key == data.key, limit=1000)
        workflow = await self.repo.add(
            Workflow(
                key=data.key,
                version=max((w.version for w in versions), default=0) + 1,
                name=data.name,
                trigger_type=data.trigger_type,
                trigger_filter=data.trigger_filter,
                more_trigger_types=",".join(["", *data.also_triggered_by, ""]) if data.also_triggered_by else None,
                definition=compiled.to_builtins(),
                params=data.params,
                enabled=data.enabled,
            )
        )
        await self._audit("workflow.created", workflow)
        return workflow

    async def update(self, workflow_id: uuid.UUID, data: WorkflowUpdate) -> Workflow:
        workflow = await self.get(workflow_id)
        before = snapshot(workflow)
        if data.trigger_filter is not msgspec.UNSET:
            self._check_trigger(None, data.trigger_filter)
        apply_update(workflow, data)
        await self.session.flush()
        await self._audit("workflow.updated", workflow, before)
        return workflow

    async def start(
        self, workflow_id: uuid.UUID, event: dict[str, Any], *, site_id: uuid.UUID | None = None
    ) -> WorkflowRun:
        workflow = await self.get(workflow_id)
        principal = self.tenant.principal
        if site_id is not None and principal.site_ids is not None and site_id not in principal.site_ids:
            raise field_error("site_id", "not a site you may start runs for")
        run, messages = await start_run(
            self.session,
            self.tenant,
            workflow,
            {"event": event, "alert": None},
            utcnow(),
            started_by=str(principal.subject_id) if principal.subject_id else None,
            site_id=site_id,
        )
        await record(
            self.session,
            self.tenant.principal,
            "run.started",
            target_type="workflow_run",
            target_id=run.id,
            after={"workflow": workflow.key, "version": workflow.version},
            tenant=self.tenant,
        )
        send_after_commit(self.session, self.send, messages)
        return run


class RunService:
    def __init__(self, session: AsyncSession, tenant: TenantContext, send: Send) -> None:
        self.session = session
        self.tenant = tenant
        self.send = send
        self.runs = RunRepository(session, tenant)
        self.control = RunControl(session, tenant)

    async def get(self, run_id: uuid.UUID) -> WorkflowRun:
        run = await self.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run

    async def detail(self, run_id: uuid.UUID) -> tuple[WorkflowRun, Sequence[StepRun], Sequence[HumanTask]]:
        run = await self.get(run_id)
        steps = await StepRunRepository(self.session, self.tenant).of_run(run.id)
        tasks, _ = await TaskRepository(self.session, self.tenant).search(limit=200, offset=0, run_id=run.id)
        return run, steps, tasks

    async def _audit(self, action: str, run: WorkflowRun, after: dict[str, Any]) -> None:
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="workflow_run",
            target_id=run.id,
            after=after,
            tenant=self.tenant,
        )

    async def cancel(self, run_id: uuid.UUID) -> WorkflowRun:
        await self.get(run_id)  # a run outside the caller's sites is not found, not cancelled
        run = await self.control.cancel(run_id, utcnow())
        await self._audit("run.cancelled", run, {"status": run.status})
        send_after_commit(self.session, self.send, self.control.woken)
        return run

    async def retry(self, run_id: uuid.UUID, step_key: str) -> WorkflowRun:
        await self.get(run_id)
        run, messages = await self.control.retry(run_id, step_key, utcnow())
        await self._audit("run.step_retried", run, {"step": step_key})
        send_after_commit(self.session, self.send, messages)
        return run

    async def acknowledge(self, run_id: uuid.UUID, note: str | None = None) -> WorkflowRun:
        """The caller owns the run's problem: its running ladders stop paging."""
        await self.get(run_id)
        who = self.tenant.principal.label
        run, stopped = await self.control.acknowledge(run_id, who, utcnow())
        await self._audit("run.acknowledged", run, {"by": who, "note": note, "ladders_stopped": len(stopped)})
        return run

    async def escalations(
        self, run_id: uuid.UUID
    ) -> tuple[WorkflowRun, Sequence[Timer], Sequence[SlaBreach], Sequence[Escalation], Sequence[EscalationPage]]:
        run = await self.get(run_id)
        dues = await TimerRepository(self.session, self.tenant).of_run(run.id, sorted(SLA_TIMERS.values()))
        breaches, _ = await SlaBreachRepository(self.session, self.tenant).search(limit=100, offset=0, run_id=run.id)
        ladders = await EscalationRepository(self.session, self.tenant).of_run(run.id)
        pages = await EscalationPageRepository(self.session, self.tenant).of_run(run.id)
        return run, dues, breaches, ladders, pages

    async def breaches(self, *, limit: int, offset: int) -> tuple[Sequence[SlaBreach], int]:
        return await SlaBreachRepository(self.session, self.tenant).search(limit=limit, offset=offset)

    async def skip(self, run_id: uuid.UUID, step_key: str, reason: str) -> WorkflowRun:
        await self.get(run_id)
        run, messages = await self.control.skip(run_id, step_key, reason, utcnow())
        await self._audit("run.step_skipped", run, {"step": step_key, "reason": reason})
        send_after_commit(self.session, self.send, messages)
        return run


class TaskService:
    def __init__(self, session: AsyncSession, tenant: TenantContext, send: Send) -> None:
        self.session = session
        self.tenant = tenant
        self.send = send
        self.tasks = TaskRepository(session, tenant)

    async def search(self, *, limit: int, offset: int, status: str | None) -> tuple[builtins.list[HumanTask], int]:
        rows, total = await self.tasks.search(limit=limit, offset=offset, status=status)
        return list(rows), total

    async def detail(self, task_id: uuid.UUID) -> tuple[HumanTask, Sequence[ApprovalDecision]]:
        task = await self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        return task, await DecisionRepository(self.session, self.tenant).of_task(task.id)

    async def decide(self, task_id: uuid.UUID, decision: str, reason: str, password: str | None) -> HumanTask:
        """Signs an approval as the caller, once they proved again who they are."""
        if await self.tasks.get(task_id) is None:
            raise NotFoundError(f"task {task_id} not found")
        signature = await self._signature(decision, reason, password)
        task, messages = await RunControl(self.session, self.tenant).decide(task_id, signature, utcnow())
        await record(
            self.session,
            self.tenant.principal,
            "approval.signed",
            target_type="human_task",
            target_id=task.id,
            after={"decision": decision, "reason": reason, "method": signature.method, "status": task.status},
            tenant=self.tenant,
        )
        send_after_commit(self.session, self.send, messages)
        return task

    async def _signature(self, decision: str, reason: str, password: str | None) -> Signature:
        principal = self.tenant.principal
        if principal.subject_kind is not SubjectKind.USER or principal.subject_id is None:
            raise PermissionDeniedError("an electronic signature is a person's: sign in to sign")
        owner = (User.org_kind == "customer") & (User.tenant_id == self.tenant.tenant_id)
        user = await UserRepository(self.session, owner).get(principal.subject_id)
        if user is None:
            raise PermissionDeniedError("approvals are signed by the customer's own people")
        if user.password_hash is not None:
            if not password or not verify_password(user.password_hash, password):
                raise AuthenticationError("the password does not match: the signature is not recorded")
            method = "password"
        else:
            # Signed in through the organisation's provider: a sign-in moments ago proves it is them.
            login = (
                await SessionRepository(self.session, user.id).get(principal.session_id)
                if principal.session_id
                else None
            )
            if login is None or utcnow() - login.created_at > RECENT_SIGN_IN:
                raise AuthenticationError("sign in again (within the last 5 minutes) to sign an approval")
            method = "recent_sign_in"
        return Signature(user.id, f"{user.display_name} <{user.email}>", decision, reason, method)

    async def complete(self, task_id: uuid.UUID, outcome: dict[str, Any], note: str | None) -> HumanTask:
        """Done by its assignee; an unassigned task by someone holding its role (see ``may_complete``)."""
        if await self.tasks.get(task_id) is None:
            raise NotFoundError(f"task {task_id} not found")
        who = self.tenant.principal.label
        caller = await standing(self.session, self.tenant)
        task, messages = await RunControl(self.session, self.tenant).complete_task(
            task_id, outcome, note, who, utcnow(), may=lambda t: may_complete(caller, t)
        )
        await record(
            self.session,
            self.tenant.principal,
            "task.completed",
            target_type="human_task",
            target_id=task.id,
            after={"outcome": outcome, "note": note, "run_id": str(task.run_id), "step": task.step_key},
            tenant=self.tenant,
        )
        send_after_commit(self.session, self.send, messages)
        return task

    async def _audit_change(self, action: str, change: Change, extra: dict[str, Any]) -> None:
        task = change.task
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="human_task",
            target_id=task.id,
            before={"assignee": str(change.before) if change.before else None},
            after={
                "assignee": str(task.assignee) if task.assignee else None,
                "assignee_email": change.to.email if change.to else None,
                "run_id": str(task.run_id),
                "step": task.step_key,
                **extra,
            },
            tenant=self.tenant,
        )

    async def assign(self, task_id: uuid.UUID, assignee: str | None) -> HumanTask:
        """The open task to one person holding its role (by e-mail or id), or back to the role (None).
        Someone holding the role, or an administrator, assigns it."""
        change = await Assignments(self.session, self.tenant).assign(task_id, assignee, utcnow())
        await self._audit_change("task.assigned", change, {})
        return change.task

    async def delegate(self, task_id: uuid.UUID, to: str, note: str | None) -> HumanTask:
        """Its assignee hands the open task on to another person holding its role."""
        change = await Assignments(self.session, self.tenant).delegate(task_id, to, utcnow())
        await self._audit_change("task.delegated", change, {"note": note})
        return change.task
