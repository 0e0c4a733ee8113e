"""Starting runs (from an event, or by hand) and the things people and events do to a run under
way: an awaited event arrives, a task is done, a run is cancelled, a failed step retried or skipped.

Each returns the step messages to send once its transaction has committed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.models import Alert
from andon.platform.engine.definition import Compiled
from andon.platform.engine.escalation import RUN_LADDER, acknowledge_run, start_ladder
from andon.platform.engine.executor import (
    StepMessage,
    advance,
    compiled_workflow,
    definition_of,
    kind_of,
    run_ended,
)
from andon.platform.engine.expressions import ExpressionError, evaluate
from andon.platform.engine.models import (
    CANCELLED,
    FAILED,
    QUEUED,
    SCHEDULED,
    SKIPPED,
    WAITING,
    ApprovalDecision,
    HumanTask,
    StepRun,
    Workflow,
    WorkflowRun,
)
from andon.platform.engine.repository import (
    DecisionRepository,
    RunRepository,
    StepRunRepository,
    TaskRepository,
    WorkflowRepository,
)
from andon.platform.engine.sla import policy_for, start_clocks
from andon.platform.engine.subflows import SUBFLOW, cancel_children, halt
from andon.platform.events.models import Event
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError
from andon.platform.tenancy.context import TenantContext

_EVENT_FIELDS = ("id", "source", "event_id", "type", "subject", "severity", "dedup_key", "site_ref", "asset_ref")


def event_view(event: Event) -> dict[str, Any]:
    """What a workflow sees of its event (CEL and templates read it as ``event``)."""
    view: dict[str, Any] = {name: getattr(event, name) for name in _EVENT_FIELDS}
    view["id"] = str(event.id)
    view["time"] = event.time.isoformat() if event.time else None
    for name in ("site_id", "line_id", "asset_id"):
        value = getattr(event, name)
        view[name] = str(value) if value else None
    view["data"] = event.data
    view["extensions"] = event.extensions or {}
    return view


def alert_view(alert: Alert | None) -> dict[str, Any] | None:
    if alert is None:
        return None
    return {
        "id": str(alert.id),
        "title": alert.title,
        "severity": alert.severity,
        "status": alert.status,
        "count": alert.count,
        "incident_id": str(alert.incident_id) if alert.incident_id else None,
    }


async def start_run(
    session: AsyncSession,
    tenant: TenantContext,
    workflow: Workflow,
    context: dict[str, Any],
    now: datetime,
    *,
    event: Event | None = None,
    alert: Alert | None = None,
    started_by: str | None = None,
    site_id: uuid.UUID | None = None,
) -> tuple[WorkflowRun, list[StepMessage]]:
    """A run of the workflow, its first step queued, its SLA clocks and run-wide ladder started.
    ``site_id`` places a run started by hand (an event's run takes the event's site)."""
    compiled, stored = compiled_workflow(workflow.id, workflow.version, workflow.definition)
    run = await RunRepository(session, tenant).add(
        WorkflowRun(
            workflow_id=workflow.id,
            workflow_key=workflow.key,
            version=workflow.version,
            definition=stored,
            status="running",
            context={**context, "params": workflow.params, "steps": {}},
            trigger_event_id=event.id if event else None,
            alert_id=alert.id if alert else None,
            incident_id=alert.incident_id if alert else None,
            site_id=event.site_id if event else site_id,
            started_at=now,
            started_by=started_by,
        )
    )
    partner = tenant.partner_id
    assert partner is not None
    first = compiled.step(compiled.start)
    await StepRunRepository(session, tenant).queue(run.id, partner, [(first.key, kind_of(first))], now)
    await _start_policies(session, tenant, run, compiled, {**context, "params": workflow.params}, now)
    return run, [StepMessage(tenant.tenant_id, partner, run.id, first.key, 1)]


async def _start_policies(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    compiled: Compiled,
    context: dict[str, Any],
    now: datetime,
) -> None:
    policy = policy_for(compiled, context)
    if policy is not None:
        await start_clocks(session, tenant, run, policy, now)
    ladder = compiled.definition.escalation
    if ladder is None:
        return
    if ladder.when is not None:
        try:
            if not evaluate(ladder.when, context):
                return
        except ExpressionError:
            return  # a condition that cannot read this event does not hold for it
    await start_ladder(session, tenant, run, RUN_LADDER, ladder.levels, now)


async def start_runs_for_event(
    session: AsyncSession, tenant: TenantContext, event: Event, alert: Alert | None, now: datetime
) -> list[StepMessage]:
    """Runs of every enabled workflow the event triggers. An alarm starts runs only when it opens a
    new alert that tells people (a repeat, a chattering, shelved or flooded alarm starts nothing)."""
    if alert is not None and (alert.last_event_id != event.id or alert.count != 1 or alert.notifications == 0):
        return []
    workflows = await WorkflowRepository(session, tenant).triggered_by(event.type)
    if not workflows:
        return []
    context = {"event": event_view(event), "alert": alert_view(alert)}
    runs = RunRepository(session, tenant)
    messages: list[StepMessage] = []
    for workflow in workflows:
        if workflow.trigger_filter:
            try:
                if not evaluate(workflow.trigger_filter, {**context, "params": workflow.params}):
                    continue
            except ExpressionError:
                continue  # a filter that cannot read this event does not match it
        if await runs.exists_for(workflow.id, event.id):
            continue
        _, sent = await start_run(session, tenant, workflow, context, now, event=event, alert=alert)
        messages += sent
    return messages


async def deliver_event_to_waits(
    session: AsyncSession, tenant: TenantContext, event: Event, now: datetime
) -> list[StepMessage]:
    """Wakes every step waiting for this kind of event whose correlation the event matches."""
    waiting = await StepRunRepository(session, tenant).waiting_for(event.type)
    if not waiting:
        return []
    view = {"event": event_view(event)}
    runs = RunRepository(session, tenant)
    messages: list[StepMessage] = []
    for step_run in waiting:
        if step_run.kind == SUBFLOW:
            continue  # waits for its child run, which no event may stand in for
        run = await runs.get(step_run.run_id)
        if run is None:
            continue
        step = definition_of(run).step(step_run.step_key)
        try:
            value = str(evaluate(getattr(step, "correlation_of", "event.subject"), view))
        except ExpressionError:
            continue
        if value != step_run.correlation:
            continue
        if await StepRunRepository(session, tenant).move(
            step_run.id, WAITING, step_run.attempt, status=QUEUED, wake="event", output=view["event"], queued_at=now
        ):
            messages.append(_message(tenant, step_run))
    return messages


def _message(tenant: TenantContext, step_run: StepRun) -> StepMessage:
    return StepMessage(tenant.tenant_id, step_run.partner_id, step_run.run_id, step_run.step_key, step_run.attempt)


class RunControl:
    """What people do to runs: each change is a compare-and-set under the run's lock."""

    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.runs = RunRepository(session, tenant)
        self.steps = StepRunRepository(session, tenant)
        self.tasks = TaskRepository(session, tenant)
        # Messages of steps a cancel woke (a parent run's step waiting for the cancelled run).
        self.woken: list[StepMessage] = []

    async def _run(self, run_id: uuid.UUID) -> WorkflowRun:
        # The run's row lock, which a completing step and a task's assignment take too.
        await self.runs.lock(run_id)
        run = await self.runs.for_update(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run

    async def _step(self, run: WorkflowRun, step_key: str) -> StepRun:
        step_run = await self.steps.by_key(run.id, step_key)
        if step_run is None:
            raise NotFoundError(f"run {run.id} has no step '{step_key}' (yet)")
        return step_run

    async def cancel(self, run_id: uuid.UUID, now: datetime) -> WorkflowRun:
        """The run, cancelled with its running child runs (subflows) and theirs, each saying why.
        The children go first: a child ending meanwhile (under its own lock) may still wake a step of
        this run, which is then cancelled with the others. A cancelled run wakes a parent waiting
        for it."""
        run = await self._run(run_id)
        if run.status != "running":
            raise ConflictError(f"the run is {run.status}; only a running run can be cancelled")
        reason = f"cancelled because its parent run {run.id} was cancelled"
        await cancel_children(self.session, self.tenant, run, now, reason)
        run.status, run.finished_at, run.error = "cancelled", now, "cancelled by a person"
        await halt(self.session, self.tenant, run, now)
        self.woken += await run_ended(self.session, self.tenant, run, now)
        return run

    async def acknowledge(self, run_id: uuid.UUID, by: str, now: datetime) -> tuple[WorkflowRun, list[uuid.UUID]]:
        """Someone owns the run's problem: the ladders running now stop (a page already being sent
        commits first or not at all: both sides compare-and-set the ladder). The ladders stopped."""
        run = await self._run(run_id)
        if run.status == "cancelled":
            raise ConflictError("the run was cancelled; there is nothing to acknowledge")
        stopped = await acknowledge_run(self.session, self.tenant, run, by, now)
        return run, stopped

    async def retry(self, run_id: uuid.UUID, step_key: str, now: datetime) -> tuple[WorkflowRun, list[StepMessage]]:
        """A failed step runs again (a fresh attempt, the same idempotency key); the run resumes, and
        the steps held when it failed run again with it."""
        run = await self._run(run_id)
        if run.status == "cancelled":
            raise ConflictError("the run was cancelled; start a new one")
        step_run = await self._step(run, step_key)
        if step_run.status != FAILED:
            raise ConflictError(f"step '{step_key}' is {step_run.status}; only a failed step can be retried")
        attempt = step_run.attempt + 1
        if not await self.steps.move(
            step_run.id,
            FAILED,
            step_run.attempt,
            status=QUEUED,
            attempt=attempt,
            wake=None,
            queued_at=now,
            error=None,
            error_kind=None,
            finished_at=None,
        ):
            raise ConflictError(f"step '{step_key}' changed meanwhile; reload and try again")
        run.status, run.finished_at, run.error = "running", None, None
        step_run.attempt = attempt
        messages = [_message(self.tenant, step_run)]
        return run, messages + await self._release_held(run, now)

    async def _release_held(self, run: WorkflowRun, now: datetime) -> list[StepMessage]:
        """The steps held when the run failed go back in the queue now that it runs again."""
        released = []
        for held in await self.steps.held(run.id):
            if await self.steps.move(
                held.id, CANCELLED, held.attempt, status=QUEUED, error=None, error_kind=None, queued_at=now
            ):
                released.append(_message(self.tenant, held))
        return released

    async def skip(
        self, run_id: uuid.UUID, step_key: str, reason: str, now: datetime
    ) -> tuple[WorkflowRun, list[StepMessage]]:
        """A failed or waiting step is passed over (with its reason); the run goes on from it."""
        run = await self._run(run_id)
        if run.status == "cancelled":
            raise ConflictError("the run was cancelled; start a new one")
        step_run = await self._step(run, step_key)
        if step_run.status not in (FAILED, WAITING, SCHEDULED):
            raise ConflictError(f"step '{step_key}' is {step_run.status}; only a failed or waiting step can be skipped")
        if not await self.steps.move(
            step_run.id,
            step_run.status,
            step_run.attempt,
            status=SKIPPED,
            skip_reason=reason,
            finished_at=now,
            lease_until=None,
        ):
            # A timer, an event or a person moved it first: skipping now would run it twice.
            raise ConflictError(f"step '{step_key}' changed meanwhile; reload and try again")
        await self.tasks.cancel_for_step(run.id, step_key, now)
        run.status, run.finished_at, run.error = "running", None, None
        step = definition_of(run).step(step_key)
        # A skipped condition takes no branch: the run goes on only along plain next steps.
        chosen: list[str] | None = None if step.next else []
        messages = await advance(self.session, self.tenant, run, step, {"skipped": reason}, chosen, now)
        return run, messages + await self._release_held(run, now)

    async def complete_task(
        self,
        task_id: uuid.UUID,
        outcome: dict[str, Any],
        note: str | None,
        by: str,
        now: datetime,
        *,
        may: Callable[[HumanTask], None] | None = None,
    ) -> tuple[HumanTask, list[StepMessage]]:
        """``may`` refuses a caller who may not complete the task as it stands under the run's lock
        (it was assigned to someone else meanwhile)."""
        task = await self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        run = await self._run(task.run_id)
        await self.session.refresh(task)
        if task.status != "open":
            raise ConflictError(f"the task is {task.status}")
        if may is not None:
            may(task)
        if task.kind == "approval":
            raise ConflictError("an approval is signed, not completed: POST …/tasks/{id}/decide")
        task.status, task.outcome, task.note = "done", outcome, note
        task.completed_by, task.completed_at = by, now
        step_run = await self._step(run, task.step_key)
        output = {"outcome": outcome, "note": note, "by": by, "by_hand": task.kind == "fallback"}
        if not await self.steps.move(
            step_run.id, WAITING, step_run.attempt, status=QUEUED, wake="task", output=output, queued_at=now
        ):
            raise ConflictError(f"step '{task.step_key}' no longer waits for this task")
        return task, [_message(self.tenant, step_run)]

    async def decide(
        self, task_id: uuid.UUID, signature: Signature, now: datetime
    ) -> tuple[HumanTask, list[StepMessage]]:
        """Records one signature on an approval; the step goes on once enough approved, or one rejected."""
        task = await self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        if task.kind != "approval":
            raise ConflictError("only an approval is signed; complete a task instead")
        run = await self._run(task.run_id)
        await self.session.refresh(task)  # as it stands now that the run's lock is held
        if task.status != "open":
            raise ConflictError(f"the approval is {task.status}")
        if task.due_at is not None and now >= task.due_at:
            raise ConflictError("the approval has expired")
        if task.requester and task.requester == str(signature.user_id):
            raise PermissionDeniedError("separation of duties: whoever asked for this approval cannot approve it")
        if task.assignee is not None and task.assignee != signature.user_id:
            raise PermissionDeniedError("this approval is assigned to someone else: only they sign it")
        decisions = DecisionRepository(self.session, self.tenant)
        earlier = await decisions.of_task(task.id)
        if any(d.user_id == signature.user_id for d in earlier):
            raise ConflictError("you have already signed this approval")
        shown = {
            "title": task.title,
            "instructions": task.instructions,
            "meaning": task.meaning,
            "required_approvals": task.required_approvals,
            "run": {"id": str(run.id), "workflow": run.workflow_key, "version": run.version},
            "event": run.context.get("event"),
        }
        decision = await decisions.add(
            ApprovalDecision(
                task_id=task.id,
                run_id=run.id,
                user_id=signature.user_id,
                signer=signature.signer,
                decision=signature.decision,
                meaning=task.meaning or "Approved" if signature.decision == "approve" else "Rejected",
                reason=signature.reason,
                method=signature.method,
                signed_at=now,
                shown=shown,
                shown_digest=hashlib.sha256(msgspec.json.encode(shown, order="sorted")).hexdigest(),
            )
        )
        signatures = [*earlier, decision]
        approved = [d for d in signatures if d.decision == "approve"]
        if signature.decision == "reject":
            verdict = "rejected"
        elif len(approved) >= task.required_approvals:
            verdict = "approved"
        else:
            return task, []  # more signatures to come
        task.status, task.completed_by, task.completed_at = "done", signature.signer, now
        task.outcome = {"decision": verdict, "reason": signature.reason, "signers": [d.signer for d in signatures]}
        step_run = await self._step(run, task.step_key)
        output = {**task.outcome, "approvals": len(approved)}
        if not await self.steps.move(
            step_run.id, WAITING, step_run.attempt, status=QUEUED, wake="task", output=output, queued_at=now
        ):
            raise ConflictError(f"step '{task.step_key}' no longer waits for this approval")
        return task, [_message(self.tenant, step_run)]


@dataclass(frozen=True, slots=True)
class Signature:
    """A person's electronic signature on an approval, after they proved again who they are."""

    user_id: uuid.UUID
    signer: str
    decision: str
    reason: str
    method: str
