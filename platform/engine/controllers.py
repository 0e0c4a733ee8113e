"""Workflows, runs and human tasks of one customer, under ``/api/v1/customers/{customer_id}``. The app
factory mounts these with the tenants domain's ``tenant`` dependency, as it does for alerts."""

from __future__ import annotations

import uuid
from typing import Literal

from litestar import Controller, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.executor import Send
from andon.platform.engine.schemas import (
    Decide,
    DecisionRead,
    DefinitionCheck,
    DefinitionVerdict,
    RunAcknowledge,
    RunDetail,
    RunEscalations,
    RunRead,
    RunStart,
    SlaBreachRead,
    StepRead,
    StepSkip,
    TaskAssign,
    TaskComplete,
    TaskDelegate,
    TaskDetail,
    TaskRead,
    WorkflowCreate,
    WorkflowRead,
    WorkflowUpdate,
)
from andon.platform.engine.service import RunService, TaskService, WorkflowService, definition_problems
from andon.platform.engine.views import escalations_view
from andon.platform.http.params import DbSession, Limit, Offset, PathId, Tenant

BASE = "/api/v1/customers/{customer_id:uuid}"
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]


def _send(state: State) -> Send:
    return broker_sender(state.broker)


async def _task_detail(service: TaskService, task_id: uuid.UUID) -> TaskDetail:
    task, decisions = await service.detail(task_id)
    return TaskDetail(task=to_read(task, TaskRead), decisions=[to_read(d, DecisionRead) for d in decisions])


class WorkflowController(Controller):
    path = f"{BASE}/workflows"
    tags = ["Workflows"]

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def list_workflows(
        self, db_session: DbSession, tenant: Tenant, state: State, limit: Limit = 50, offset: Offset = 0
    ) -> Page[WorkflowRead]:
        rows, total = await WorkflowService(db_session, tenant, _send(state)).list(limit=limit, offset=offset)
        return Page(items=[to_read(r, WorkflowRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.WORKFLOWS_WRITE})
    async def create_workflow(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[WorkflowCreate]
    ) -> WorkflowRead:
        """A workflow, or the next version of the one with this key. The definition is checked as a
        whole; a refusal lists every problem by field (``definition.steps[2].when``)."""
        return to_read(await WorkflowService(db_session, tenant, _send(state)).create(data), WorkflowRead)

    @post("/check", opt={"permission": P.WORKFLOWS_READ}, status_code=200)
    async def check_definition(self, data: JSONBody[DefinitionCheck]) -> DefinitionVerdict:
        """What is wrong with a definition being written, if anything; nothing is saved."""
        problems = definition_problems(data.definition)
        steps = data.definition.get("steps")
        return DefinitionVerdict(ok=not problems, errors=problems, steps=len(steps) if isinstance(steps, list) else 0)

    @get("/{workflow_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def get_workflow(
        self, db_session: DbSession, tenant: Tenant, state: State, workflow_id: PathId
    ) -> WorkflowRead:
        return to_read(await WorkflowService(db_session, tenant, _send(state)).get(workflow_id), WorkflowRead)

    @patch("/{workflow_id:uuid}", opt={"permission": P.WORKFLOWS_WRITE})
    async def update_workflow(
        self, db_session: DbSession, tenant: Tenant, state: State, workflow_id: PathId, data: JSONBody[WorkflowUpdate]
    ) -> WorkflowRead:
        return to_read(await WorkflowService(db_session, tenant, _send(state)).update(workflow_id, data), WorkflowRead)

    @post("/{workflow_id:uuid}/runs", opt={"permission": P.RUNS_WRITE})
    async def start_run(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        workflow_id: PathId,
        data: JSONBody[RunStart | None] = None,
    ) -> RunRead:
        """A run started by hand (a test, or a drill); ``event`` is what its steps see as the event."""
        start = data or RunStart()
        run = await WorkflowService(db_session, tenant, _send(state)).start(
            workflow_id, start.event, site_id=start.site_id
        )
        return to_read(run, RunRead)


class RunController(Controller):
    path = f"{BASE}/runs"
    tags = ["Workflows"]

    @get("/", opt={"permission": P.RUNS_READ})
    async def list_runs(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[RunStatus | None] = None,
        workflow_key: FromQuery[str | None] = None,
    ) -> Page[RunRead]:
        service = RunService(db_session, tenant, _send(state))
        rows, total = await service.runs.search(limit=limit, offset=offset, status=status, workflow_key=workflow_key)
        return Page(items=[to_read(r, RunRead) for r in rows], total=total, limit=limit, offset=offset)

    @get("/{run_id:uuid}", opt={"permission": P.RUNS_READ})
    async def get_run(self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId) -> RunDetail:
        """The run as it stands: each step's status, attempts, inputs, output and error, and its tasks."""
        run, steps, tasks = await RunService(db_session, tenant, _send(state)).detail(run_id)
        return RunDetail(
            run=to_read(run, RunRead),
            context=run.context,
            definition=run.definition,
            steps=[to_read(s, StepRead) for s in steps],
            tasks=[to_read(t, TaskRead) for t in tasks],
        )

    @get("/{run_id:uuid}/escalations", opt={"permission": P.RUNS_READ})
    async def get_escalations(
        self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId
    ) -> RunEscalations:
        """The run's SLA due times and breaches, and its escalation ladders with who each page went to."""
        run, dues, breaches, ladders, pages = await RunService(db_session, tenant, _send(state)).escalations(run_id)
        return escalations_view(run, dues, breaches, ladders, pages)

    @post("/{run_id:uuid}/acknowledge", opt={"permission": P.RUNS_WRITE}, status_code=200)
    async def acknowledge_run(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        run_id: PathId,
        data: JSONBody[RunAcknowledge | None] = None,
    ) -> RunRead:
        """The caller owns the run's problem: its escalation ladders stop (no page after this) and its
        acknowledge SLA is met. Acknowledging the run's alert or incident does the same."""
        note = data.note if data else None
        return to_read(await RunService(db_session, tenant, _send(state)).acknowledge(run_id, note), RunRead)

    @post("/{run_id:uuid}/cancel", opt={"permission": P.RUNS_WRITE}, status_code=200)
    async def cancel_run(self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId) -> RunRead:
        return to_read(await RunService(db_session, tenant, _send(state)).cancel(run_id), RunRead)

    @post("/{run_id:uuid}/steps/{step_key:str}/retry", opt={"permission": P.RUNS_WRITE}, status_code=200)
    async def retry_step(
        self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId, step_key: FromPath[str]
    ) -> RunRead:
        """A failed step runs again (with the same idempotency key); the run resumes from it."""
        return to_read(await RunService(db_session, tenant, _send(state)).retry(run_id, step_key), RunRead)

    @post("/{run_id:uuid}/steps/{step_key:str}/skip", opt={"permission": P.RUNS_WRITE}, status_code=200)
    async def skip_step(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        run_id: PathId,
        step_key: FromPath[str],
        data: JSONBody[StepSkip],
    ) -> RunRead:
        """A failed or waiting step is passed over, with the reason recorded; the run goes on."""
        return to_read(await RunService(db_session, tenant, _send(state)).skip(run_id, step_key, data.reason), RunRead)


class TaskController(Controller):
    path = f"{BASE}/tasks"
    tags = ["Workflows"]

    @get("/", opt={"permission": P.RUNS_READ})
    async def list_tasks(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[Literal["open", "done", "cancelled"] | None] = None,
    ) -> Page[TaskRead]:
        rows, total = await TaskService(db_session, tenant, _send(state)).search(
            limit=limit, offset=offset, status=status
        )
        return Page(items=[to_read(r, TaskRead) for r in rows], total=total, limit=limit, offset=offset)

    @get("/{task_id:uuid}", opt={"permission": P.RUNS_READ})
    async def get_task(self, db_session: DbSession, tenant: Tenant, state: State, task_id: PathId) -> TaskDetail:
        """The task, and for an approval every signature with what the signer was shown."""
        return await _task_detail(TaskService(db_session, tenant, _send(state)), task_id)

    @post("/{task_id:uuid}/decide", opt={"permission": P.APPROVALS_SIGN}, status_code=200)
    async def decide(
        self, db_session: DbSession, tenant: Tenant, state: State, task_id: PathId, data: JSONBody[Decide]
    ) -> TaskDetail:
        """Signs an approval: approve or reject, with a reason and the signer's password. The requester
        cannot approve; nobody signs twice; the step goes on once enough approved, or one rejected."""
        service = TaskService(db_session, tenant, _send(state))
        await service.decide(task_id, data.decision, data.reason, data.password)
        return await _task_detail(service, task_id)

    @post("/{task_id:uuid}/complete", opt={"permission": P.TASKS_WRITE}, status_code=200)
    async def complete_task(
        self, db_session: DbSession, tenant: Tenant, state: State, task_id: PathId, data: JSONBody[TaskComplete]
    ) -> TaskRead:
        """The task is done; its outcome becomes the step's output and the run goes on from it."""
        task = await TaskService(db_session, tenant, _send(state)).complete(task_id, data.outcome, data.note)
        return to_read(task, TaskRead)

    @post("/{task_id:uuid}/assign", opt={"permission": P.TASKS_WRITE}, status_code=200)
    async def assign_task(
        self, db_session: DbSession, tenant: Tenant, state: State, task_id: PathId, data: JSONBody[TaskAssign]
    ) -> TaskRead:
        """The open task to one person (``assignee``: their e-mail or user id), who must hold its role,
        or back to its role (``null``). Someone holding the task's role, or an administrator, assigns
        it; only the assignee then completes (or signs) it. 403 to others, 409 once it is closed, 422
        for a person the customer does not have or who does not hold the role."""
        task = await TaskService(db_session, tenant, _send(state)).assign(task_id, data.assignee)
        return to_read(task, TaskRead)

    @post("/{task_id:uuid}/delegate", opt={"permission": P.TASKS_WRITE}, status_code=200)
    async def delegate_task(
        self, db_session: DbSession, tenant: Tenant, state: State, task_id: PathId, data: JSONBody[TaskDelegate]
    ) -> TaskRead:
        """The assignee hands the open task on (``to``: e-mail or user id of another person holding its
        role, ``note``: why); ``delegated_from`` keeps who handed it on. 403 to anyone but the assignee,
        409 for an unassigned or closed task."""
        task = await TaskService(db_session, tenant, _send(state)).delegate(task_id, data.to, data.note)
        return to_read(task, TaskRead)


class SlaBreachController(Controller):
    path = f"{BASE}/sla-breaches"
    tags = ["Workflows"]

    @get("/", opt={"permission": P.RUNS_READ})
    async def list_breaches(
        self, db_session: DbSession, tenant: Tenant, state: State, limit: Limit = 50, offset: Offset = 0
    ) -> Page[SlaBreachRead]:
        """Every SLA due time the customer's runs missed, newest first."""
        rows, total = await RunService(db_session, tenant, _send(state)).breaches(limit=limit, offset=offset)
        return Page(items=[to_read(r, SlaBreachRead) for r in rows], total=total, limit=limit, offset=offset)


ENGINE_CONTROLLERS = [WorkflowController, RunController, TaskController, SlaBreachController]
