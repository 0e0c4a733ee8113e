"""Executing one step: claim it, do its work, record the outcome and start what follows.

1. **Claim** (one transaction): the step moves queued → running with a lease, by compare-and-set on
   its status and attempt, so a message delivered twice does nothing the second time. An action
   records its effect (with the idempotency key) in the same transaction, before any call.
2. **Work**, outside any transaction: evaluate, render, call the capability.
3. **Complete** (one transaction, holding the run's lock): running → the outcome, by
   compare-and-set again (a worker that lost its lease loses the race and writes nothing); the
   output joins the run context; the steps that follow are created queued; the run ends when no
   step is left. Messages for the new steps are sent after the commit; a message lost between the
   two is found by the scheduler's sweep (the step stays queued too long) and sent again.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import jmespath
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.alerts.raised import raise_step_alert
from andon.platform.db.ids import new_id
from andon.platform.db.scope import bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.engine.assignment import assign_from_definition
from andon.platform.engine.capabilities import NOT_FOUND, UNAVAILABLE, Call, Capabilities, CapabilityError
from andon.platform.engine.definition import (
    ActionStep,
    ApprovalStep,
    Compiled,
    ConditionStep,
    Definition,
    EscalateStep,
    JoinStep,
    LookupStep,
    ParallelStep,
    RetryPolicy,
    SetStep,
    Step,
    SubflowStep,
    TaskStep,
    TimerStep,
    WaitForEventStep,
    compile_definition,
)
from andon.platform.engine.escalation import end_run_ladder, start_ladder
from andon.platform.engine.expressions import ExpressionError, evaluate, render
from andon.platform.engine.models import (
    CANCELLED,
    FAILED,
    HELD,
    RUNNING,
    SCHEDULED,
    STEP_PASSED,
    SUCCEEDED,
    WAITING,
    HumanTask,
    StepRun,
    Timer,
    WorkflowRun,
)
from andon.platform.engine.repository import (
    EffectRepository,
    RunRepository,
    StepRunRepository,
    TaskRepository,
    TimerRepository,
)
from andon.platform.engine.subflows import (
    MAX_DEPTH,
    SUBFLOW,
    cancel_children,
    child_context,
    depth_of,
    latest_workflow,
    outcome_of,
    stop_waiting,
    wake_parent,
)
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

ENGINE = system_principal(frozenset(), label="workflow engine")
STEP_ACTOR = "run_step"
STEP_QUEUE = "steps"
# Seconds a claimed action's lease outlasts its call timeout.
LEASE_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class StepMessage:
    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    run_id: uuid.UUID
    step_key: str
    attempt: int

    def args(self) -> list[Any]:
        return [str(self.tenant_id), str(self.partner_id), str(self.run_id), self.step_key, self.attempt]


Send = Callable[[Sequence[StepMessage]], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class Outcome:
    status: Literal["succeeded", "waiting", "scheduled", "failed"]
    output: Any = None
    # The paths taken, when the step chooses (a condition, a fallback, a timeout); None: its ``next``.
    next: list[str] | None = None
    error: str | None = None
    error_kind: str | None = None
    timer: tuple[str, datetime] | None = None
    # More timers the step waits on beside ``timer`` (an approval's reminder).
    also: list[tuple[str, datetime]] = field(default_factory=list)
    # The step's open tasks end with this status (an approval that expired).
    close_tasks: str | None = None
    task: HumanTask | None = None
    wait: tuple[str, str] | None = None
    effect_response: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A subflow's child run to start when the step completes, with its rendered inputs.
    child: tuple[SubflowStep, Any] | None = None
    # The child run a subflow step stopped waiting for (its timeout), and whether to cancel it.
    stop_child: tuple[uuid.UUID, bool] | None = None


# Steps that only compute from the run's context: no call, no person, no clock. They run inline, in
# the transaction that completes the step before them (as an engine runs everything up to the next
# wait state in one transaction), instead of a message and two transactions each.
PURE = (SetStep, ConditionStep, ParallelStep, JoinStep)
# A guard on one transaction's length; definitions are acyclic, so only a very long chain reaches it
# (the rest then goes by message, as any step would).
INLINE_LIMIT = 200


def pure_outcome(step: Step, context: dict[str, Any]) -> Outcome:
    try:
        if isinstance(step, SetStep):
            return Outcome("succeeded", {k: evaluate(v, context) for k, v in step.values.items()})
        if isinstance(step, ConditionStep):
            result = bool(evaluate(step.when, context))
            chosen = step.then if result else step.otherwise
            return Outcome("succeeded", {"result": result}, next=[chosen] if chosen else [])
        if isinstance(step, ParallelStep):
            return Outcome("succeeded", {}, next=list(step.branches))
        if isinstance(step, JoinStep):
            return Outcome("succeeded", {})
    except ExpressionError as exc:
        return Outcome("failed", error=str(exc), error_kind="invalid")
    except Exception as exc:  # a bug or a bad input the checks missed: fail the step, never wedge it
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}"[:2000], error_kind="internal")
    raise AssertionError(f"{type(step).__name__} is not a pure step")  # pragma: no cover


def retry_delay(policy: RetryPolicy, attempt: int, exc: CapabilityError) -> float:
    """The policy's backoff, but never sooner than the system asked (capped at the policy's longest)."""
    delay = policy.delay(attempt, random.random())  # noqa: S311 (jitter, not secrecy)
    if exc.retry_after:
        delay = max(delay, min(exc.retry_after, policy.max_seconds))
    return delay


def tenant_context(tenant_id: uuid.UUID, partner_id: uuid.UUID) -> TenantContext:
    return TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=ENGINE)


def idempotency_key(run_id: uuid.UUID, step_key: str) -> str:
    return f"andon:{run_id}:{step_key}"


# Compiled definitions by (workflow, version), with the stored form they came from: a version never
# changes once saved, and every step of every run of it would otherwise read, convert and compile the
# same definition again (twice a step).
_COMPILED: dict[tuple[uuid.UUID, int], tuple[Compiled, dict[str, Any]]] = {}
_COMPILED_MAX = 512


def definition_of(run: WorkflowRun) -> Compiled:
    # Checked when the workflow was saved; the run keeps that definition as it was.
    key = (run.workflow_id, run.version)
    cached = _COMPILED.get(key)
    if cached is None:
        assert run.definition is not None, "a run read without its definition: load it first (with_definition)"
        cached = (Compiled(msgspec.convert(run.definition, Definition)), run.definition)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = cached
    return cached[0]


def compiled_workflow(
    workflow_id: uuid.UUID, version: int, definition: dict[str, Any]
) -> tuple[Compiled, dict[str, Any]]:
    """A workflow version's compiled definition and the form its runs store, compiled once per
    process (the same cache as ``definition_of``: a run's key is its workflow's)."""
    key = (workflow_id, version)
    cached = _COMPILED.get(key)
    if cached is None:
        compiled = compile_definition(definition)
        cached = (compiled, compiled.to_builtins())
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = cached
    return cached


async def with_definition(runs: RunRepository, run: WorkflowRun) -> Compiled:
    """The compiled definition of a run read without it (``RunRepository.locked``): from this
    process's cache, or read once. The run carries it from then on."""
    cached = _COMPILED.get((run.workflow_id, run.version))
    if cached is not None:
        run.definition = cached[1]
        return cached[0]
    definition = await runs.definition(run.id)
    assert definition is not None  # the caller holds the run (its row was just read)
    run.definition = definition
    return definition_of(run)


def step_context(run: WorkflowRun) -> dict[str, Any]:
    context = dict(run.context)
    context.setdefault("steps", {})
    context["run"] = {
        "id": str(run.id),
        "workflow": run.workflow_key,
        "started_at": run.started_at.isoformat(),
        "started_by": run.started_by or "",
    }
    return context


class Executor:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        capabilities: Capabilities,
        send: Send,
        *,
        lease_seconds: float = 60.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.capabilities = capabilities
        self.send = send
        self.lease = timedelta(seconds=lease_seconds)

    async def run_step(self, message: StepMessage) -> None:
        tenant = tenant_context(message.tenant_id, message.partner_id)
        claimed = await self._claim(tenant, message)
        if claimed is None:
            return
        run, step_run, step, effect_key, effect_done = claimed
        outcome = await self._work(tenant, run, step_run, step, effect_key, effect_done)
        queued = await self._complete(tenant, message, step, outcome)
        if queued:
            await self.send(queued)

    async def _claim(
        self, tenant: TenantContext, message: StepMessage
    ) -> tuple[WorkflowRun, StepRun, Step, str | None, Any] | None:
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            await bind_tenant(session, tenant.tenant_id, ENGINE)
            steps = StepRunRepository(session, tenant)
            claimed = await steps.claim_with_run(
                message.run_id, message.step_key, message.attempt, now, now + self.lease
            )
            if claimed is None:
                return None  # a repeat message, or a step another worker holds
            step_run, run = claimed
            if run is None or run.status != "running":
                await steps.move(step_run.id, RUNNING, message.attempt, **stopped_by(run, now))
                return None
            step = (await with_definition(RunRepository(session, tenant), run)).step(step_run.step_key)
            if (
                isinstance(step, ActionStep | LookupStep)
                and step.timeout_seconds + LEASE_MARGIN > self.lease.total_seconds()
            ):
                # The lease outlives the call, or another worker would take the step over mid-call.
                lease = now + timedelta(seconds=step.timeout_seconds + LEASE_MARGIN)
                await steps.move(step_run.id, RUNNING, message.attempt, lease_until=lease)
            effect_key: str | None = None
            effect_done: Any = None
            if isinstance(step, ActionStep) and step_run.wake != "task":
                effect_key = idempotency_key(run.id, step.key)
                status, response = await EffectRepository(session, tenant).start(
                    effect_key, run.id, step.key, step.capability, now
                )
                if status == "completed":
                    effect_done = response if response is not None else {}
            return run, step_run, step, effect_key, effect_done

    async def _work(
        self,
        tenant: TenantContext,
        run: WorkflowRun,
        step_run: StepRun,
        step: Step,
        effect_key: str | None,
        effect_done: Any,
    ) -> Outcome:
        context = step_context(run)
        now = utcnow()
        if isinstance(step, PURE):
            return pure_outcome(step, context)
        try:
            if isinstance(step, TimerStep):
                if step_run.wake == "timer":
                    return Outcome("succeeded", {"waited_seconds": step.seconds})
                return Outcome("waiting", timer=("timer", now + timedelta(seconds=step.seconds)))
            if isinstance(step, WaitForEventStep):
                return self._wait_for_event(step, step_run, context, now)
            if isinstance(step, TaskStep):
                if step_run.wake == "task":
                    return Outcome("succeeded", step_run.output)
                return Outcome("waiting", task=self._task(run, step, context, now, kind="task"))
            if isinstance(step, ApprovalStep):
                return self._approval(run, step, step_run, context, now)
            if isinstance(step, EscalateStep):
                # The ladder itself starts when the step completes, in that transaction.
                return Outcome("succeeded", {"escalation_id": str(new_id())})
            if isinstance(step, LookupStep):
                return await self._lookup(tenant, run, step_run, step, context, now)
            if isinstance(step, SubflowStep):
                return self._subflow(run, step, step_run, context)
            if isinstance(step, ActionStep):
                if step_run.wake == "task":  # a person did it by hand and recorded the outcome
                    return Outcome("succeeded", step_run.output)
                if effect_done is not None:
                    return Outcome("succeeded", effect_done)
                assert effect_key is not None
                return await self._act(tenant, run, step_run, step, context, effect_key, now)
        except ExpressionError as exc:
            return Outcome("failed", error=str(exc), error_kind="invalid")
        except Exception as exc:  # a bug or a bad input the checks missed: fail the step, never wedge it
            return Outcome("failed", error=f"{type(exc).__name__}: {exc}"[:2000], error_kind="internal")
        raise AssertionError(f"unknown step kind {type(step).__name__}")  # pragma: no cover

    def _wait_for_event(
        self, step: WaitForEventStep, step_run: StepRun, context: dict[str, Any], now: datetime
    ) -> Outcome:
        if step_run.wake == "event":
            return Outcome("succeeded", step_run.output)
        if step_run.wake == "timeout":
            if step.on_timeout:
                return Outcome("succeeded", {"timed_out": True}, next=[step.on_timeout])
            return Outcome(
                "failed", error=f"no {step.event_type} arrived in {step.timeout_seconds:g} s", error_kind="timeout"
            )
        correlation = str(render(step.correlation, context))[:500]
        return Outcome(
            "waiting",
            wait=(step.event_type, correlation),
            timer=("timeout", now + timedelta(seconds=step.timeout_seconds)),
        )

    async def _lookup(
        self,
        tenant: TenantContext,
        run: WorkflowRun,
        step_run: StepRun,
        step: LookupStep,
        context: dict[str, Any],
        now: datetime,
    ) -> Outcome:
        """A read: the same capability path as an action, retried the same way, but with no effect
        record (reading again is harmless). Missing or empty takes ``on_empty`` when declared."""
        call = Call(
            step.capability,
            render(step.inputs, context),
            idempotency_key(run.id, step.key),
            step.timeout_seconds,
            tenant.tenant_id,
            run.id,
            partner_id=tenant.partner_id,
            step_key=step.key,
        )
        try:
            response = await self.capabilities.call(call)
        except CapabilityError as exc:
            if exc.kind == NOT_FOUND and step.on_empty:
                return Outcome("succeeded", None, next=[step.on_empty])
            if exc.kind not in step.retry.non_retryable and step_run.attempt < step.retry.max_attempts:
                delay = retry_delay(step.retry, step_run.attempt, exc)
                return Outcome(
                    "scheduled", error=str(exc), error_kind=exc.kind, timer=("retry", now + timedelta(seconds=delay))
                )
            return Outcome("failed", error=str(exc), error_kind=exc.kind)
        selected = jmespath.search(step.select, response) if step.select is not None else response
        if step.on_empty and selected in (None, "", [], {}):
            return Outcome("succeeded", selected, next=[step.on_empty])
        return Outcome("succeeded", selected)

    def _subflow(self, run: WorkflowRun, step: SubflowStep, step_run: StepRun, context: dict[str, Any]) -> Outcome:
        if step_run.wake == SUBFLOW:  # the awaited child ended
            return child_ended(step, step_run.output if isinstance(step_run.output, dict) else {})
        if step_run.wake == "timeout" and step_run.correlation:
            # The child is stopped (or found ended after all) when the step completes, in that
            # transaction: ``_settle``.
            child_id = uuid.UUID(step_run.correlation)
            stop = (child_id, step.cancel_child_on_timeout)
            if step.on_timeout:
                output = {"timed_out": True, "run_id": str(child_id), "workflow": step.workflow}
                return Outcome("succeeded", output, next=[step.on_timeout], stop_child=stop)
            return Outcome(
                "failed",
                error=f"the child run {child_id} did not finish within {step.timeout_seconds:g} s",
                error_kind="timeout",
                stop_child=stop,
            )
        depth = depth_of(run) + 1
        if depth > MAX_DEPTH:
            return Outcome(
                "failed",
                error=(
                    f"subflows nest at most {MAX_DEPTH} deep; '{step.workflow}' would run at depth {depth} "
                    "(does a chain of subflows lead back to itself?)"
                ),
                error_kind="too_deep",
            )
        # The child run starts when this step completes, in that transaction.
        return Outcome("waiting", child=(step, render(step.inputs, context)))

    def _approval(
        self, run: WorkflowRun, step: ApprovalStep, step_run: StepRun, context: dict[str, Any], now: datetime
    ) -> Outcome:
        if step_run.wake == "task":
            output = step_run.output or {}
            if output.get("decision") != "rejected":
                return Outcome("succeeded", output)
            if step.on_reject:
                return Outcome("succeeded", output, next=[step.on_reject])
            return Outcome("failed", output, error=f"rejected: {output.get('reason', '')}", error_kind="rejected")
        if step_run.wake == "timeout":
            if step.on_expired:
                return Outcome("succeeded", {"decision": "expired"}, next=[step.on_expired], close_tasks="expired")
            return Outcome(
                "failed", error="no decision before the approval expired", error_kind="expired", close_tasks="expired"
            )
        due = now + timedelta(seconds=step.expires_seconds) if step.expires_seconds else None
        task = HumanTask(
            run_id=run.id,
            step_key=step.key,
            kind="approval",
            title=str(render(step.title or step.key, context))[:300],
            instructions=str(render(step.instructions, context)),
            role=step.role,
            site_id=run.site_id,
            due_at=due,
            required_approvals=step.approvals,
            meaning=step.meaning,
            requester=str(render(step.requester, context))[:200] or None,
        )
        reminder = [("remind", now + timedelta(seconds=step.remind_seconds))] if step.remind_seconds else []
        return Outcome("waiting", task=task, timer=("timeout", due) if due else None, also=reminder)

    def _task(
        self, run: WorkflowRun, step: TaskStep, context: dict[str, Any], now: datetime, *, kind: str
    ) -> HumanTask:
        return HumanTask(
            run_id=run.id,
            step_key=step.key,
            kind=kind,
            title=str(render(step.title or step.key, context))[:300],
            instructions=str(render(step.instructions, context)),
            role=step.role,
            site_id=run.site_id,
            due_at=now + timedelta(seconds=step.due_seconds) if step.due_seconds else None,
        )

    async def _act(
        self,
        tenant: TenantContext,
        run: WorkflowRun,
        step_run: StepRun,
        step: ActionStep,
        context: dict[str, Any],
        effect_key: str,
        now: datetime,
    ) -> Outcome:
        inputs = render(step.inputs, context)
        call = Call(
            step.capability,
            inputs,
            effect_key,
            step.timeout_seconds,
            tenant.tenant_id,
            run.id,
            partner_id=tenant.partner_id,
            step_key=step.key,
        )
        try:
            response = await self.capabilities.call(call)
        except CapabilityError as exc:
            if exc.kind == UNAVAILABLE and step.fallback:
                return Outcome("succeeded", {"fallback": True, "error": str(exc)}, next=[step.fallback])
            retryable = exc.kind not in step.retry.non_retryable
            if retryable and step_run.attempt < step.retry.max_attempts:
                delay = retry_delay(step.retry, step_run.attempt, exc)
                return Outcome(
                    "scheduled", error=str(exc), error_kind=exc.kind, timer=("retry", now + timedelta(seconds=delay))
                )
            if step.on_exhausted == "task":
                task = HumanTask(
                    run_id=run.id,
                    step_key=step.key,
                    kind="fallback",
                    title=f"Do by hand: {step.title or step.key}"[:300],
                    instructions=(
                        f"The automatic step failed after {step_run.attempt} attempt(s): {exc}. "
                        f"Do it by hand ({step.capability} with {msgspec.json.encode(inputs).decode()[:1500]}) "
                        "and record the outcome; the workflow continues from it."
                    ),
                    role="supervisor",
                    site_id=run.site_id,
                )
                return Outcome("waiting", error=str(exc), error_kind=exc.kind, task=task)
            return Outcome("failed", error=str(exc), error_kind=exc.kind)
        return Outcome("succeeded", response, effect_response=response if response is not None else {})

    async def _complete(
        self, tenant: TenantContext, message: StepMessage, step: Step, outcome: Outcome
    ) -> list[StepMessage]:
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            await bind_tenant(session, tenant.tenant_id, ENGINE)
            runs = RunRepository(session, tenant)
            steps = StepRunRepository(session, tenant)
            # The run's row lock, and the run as it stands under it (its context is current).
            run = await runs.locked(message.run_id)
            if run is None:
                return []  # deleted with its workflow meanwhile
            await with_definition(runs, run)
            if run.status != "running":
                # The run failed (another branch) or was cancelled while this step worked: the step's
                # outcome does not move the run; a held step runs again if the run is retried.
                if await steps.move_key(run.id, step.key, RUNNING, message.attempt, **stopped_by(run, now)):
                    await self._effect_completed(session, tenant, run.id, step.key, outcome, now)
                return []
            gained = set(run.context.get("steps", {}))
            state = (run.status, run.finished_at, run.error)
            messages = await self._settle(session, tenant, message, run, step, outcome, now)
            if messages is None:
                return []  # the lease ran out and another worker took the step over
            outputs = {k: v for k, v in run.context.get("steps", {}).items() if k not in gained}
            if outputs or (run.status, run.finished_at, run.error) != state:
                await runs.save(run, outputs, now)
            return messages

    async def _settle(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        message: StepMessage,
        run: WorkflowRun,
        step: Step,
        outcome: Outcome,
        now: datetime,
    ) -> list[StepMessage] | None:
        """The step moved to its outcome (compare-and-set), and what follows from it, under the run's
        lock; None when the step is no longer this worker's. Changes ``run`` (status, context) for the
        caller to write."""
        steps = StepRunRepository(session, tenant)
        values: dict[str, Any] = {"lease_until": None, "error": outcome.error, "error_kind": outcome.error_kind}
        started: list[StepMessage] = []
        # These write more than the step (a child run, a task's assignment) before it moves: only for
        # a step that is still this worker's.
        if (
            outcome.child is not None or outcome.task is not None or outcome.stop_child is not None
        ) and await steps.state(run.id, step.key) != (RUNNING, message.attempt):
            return None
        if outcome.stop_child is not None:
            assert isinstance(step, SubflowStep)
            outcome = await self._stop_child(session, tenant, run, step, outcome, now)
            values.update(error=outcome.error, error_kind=outcome.error_kind)
        if outcome.child is not None:
            outcome, started = await start_child(session, tenant, run, *outcome.child, now)
            values.update(error=outcome.error, error_kind=outcome.error_kind)
        if outcome.status == "succeeded":
            values.update(status=SUCCEEDED, output=outcome.output, finished_at=now)
        elif outcome.status == "failed":
            values.update(status=FAILED, finished_at=now)
        elif outcome.status == "scheduled":
            values.update(status=SCHEDULED, attempt=message.attempt + 1)
        else:
            values.update(status=WAITING)
            if outcome.wait:
                values.update(wait_type=outcome.wait[0], correlation=outcome.wait[1])
            if outcome.task is not None:
                # Its step may name the assignee: nobody who can do it leaves a note, not a failure.
                note = await assign_from_definition(session, tenant, outcome.task, step, step_context(run), now)
                if note is not None:
                    values.update(error=note, error_kind="unassigned")
        if not await steps.move_key(run.id, step.key, RUNNING, message.attempt, **values):
            return None
        # Recorded whatever becomes of the run: the call was made, and a retry must not repeat it.
        await self._effect_completed(session, tenant, run.id, step.key, outcome, now)
        attempt = message.attempt + 1 if outcome.status == "scheduled" else message.attempt
        for kind, fire_at in ([outcome.timer] if outcome.timer else []) + outcome.also:
            await TimerRepository(session, tenant).add(
                Timer(
                    run_id=run.id,
                    partner_id=tenant.partner_id,
                    step_key=step.key,
                    kind=kind,
                    attempt=attempt,
                    fire_at=fire_at,
                )
            )
        if outcome.close_tasks:
            await TaskRepository(session, tenant).close_for_step(run.id, step.key, outcome.close_tasks, now)
        if outcome.task is not None:
            await TaskRepository(session, tenant).add(outcome.task)
            if outcome.task.kind == "fallback":
                await raise_step_alert(
                    session,
                    tenant,
                    run_id=run.id,
                    step_key=step.key,
                    title=f"{run.workflow_key}: {step.title or step.key} failed ({outcome.error}); by hand now",
                    site_id=run.site_id,
                    incident_id=run.incident_id,
                    now=now,
                )
        if outcome.status == "failed":
            run.status, run.finished_at = "failed", now
            run.error = f"{step.key}: {outcome.error}"
            return await run_ended(session, tenant, run, now)
        if outcome.status != "succeeded":
            return started
        if isinstance(step, EscalateStep):
            ladder_id = uuid.UUID(outcome.output["escalation_id"])
            await start_ladder(session, tenant, run, step.key, step.levels, now, escalation_id=ladder_id)
        return started + await advance(session, tenant, run, step, outcome.output, outcome.next, now)

    async def _stop_child(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        run: WorkflowRun,
        step: SubflowStep,
        outcome: Outcome,
        now: datetime,
    ) -> Outcome:
        """A timed-out subflow step's child cancelled (unless the step keeps it), or, when it ended
        meanwhile, the step's outcome the child's after all."""
        assert outcome.stop_child is not None
        child_id, cancel = outcome.stop_child
        reason = f"cancelled because its parent run {run.id} stopped waiting for it after {step.timeout_seconds:g} s"
        ended = await stop_waiting(session, tenant, child_id, now, cancel=cancel, reason=reason)
        return outcome if ended is None else child_ended(step, outcome_of(ended))

    async def _effect_completed(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        run_id: uuid.UUID,
        step_key: str,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        if outcome.effect_response is not None:
            await EffectRepository(session, tenant).complete(
                idempotency_key(run_id, step_key), outcome.effect_response, now
            )


def stopped_by(run: WorkflowRun | None, now: datetime) -> dict[str, Any]:
    """What becomes of a step whose run stopped under it: cancelled with a cancelled run; held (to
    run again if the run is retried) when the run failed."""
    if run is not None and run.status == "failed":
        return {"status": CANCELLED, "error_kind": HELD, "error": "held: the run failed", "lease_until": None}
    return {"status": CANCELLED, "finished_at": now, "lease_until": None}


async def start_child(
    session: AsyncSession, tenant: TenantContext, run: WorkflowRun, step: SubflowStep, inputs: Any, now: datetime
) -> tuple[Outcome, list[StepMessage]]:
    """A subflow step's child run, started (in the transaction completing the step): the step then
    waits for it (``wait``) or passes with its id. The child's first message, to send after commit."""
    # runs imports this module (advance, StepMessage): its start_run is looked up when first needed.
    from andon.platform.engine.runs import start_run

    workflow = await latest_workflow(session, tenant, step.workflow)
    if workflow is None:
        return Outcome("failed", error=f"no workflow '{step.workflow}' in this customer", error_kind=NOT_FOUND), []
    if not workflow.enabled:
        return Outcome("failed", error=f"the workflow '{step.workflow}' is turned off", error_kind="invalid"), []
    child, messages = await start_run(
        session,
        tenant,
        workflow,
        child_context(run, step, inputs),
        now,
        started_by=run.started_by,
        site_id=run.site_id,
    )
    if step.wait:
        # A timeout is the same timer a wait_for_event's is; the scheduler wakes the step with it.
        timeout = ("timeout", now + timedelta(seconds=step.timeout_seconds)) if step.timeout_seconds else None
        return Outcome("waiting", wait=(SUBFLOW, str(child.id)), timer=timeout), messages
    return Outcome("succeeded", {"run_id": str(child.id), "workflow": workflow.key}), messages


def child_ended(step: SubflowStep, result: dict[str, Any]) -> Outcome:
    """A waiting subflow step's outcome from its child's (``outcome_of``)."""
    if result.get("status") == "succeeded":
        return Outcome("succeeded", result)
    if step.on_failure:
        return Outcome("succeeded", result, next=[step.on_failure])
    return Outcome(
        "failed",
        error=f"the child run of '{step.workflow}' {result.get('status')}: {result.get('error')}"[:2000],
        error_kind="subflow",
    )


def has_subflows(compiled: Compiled) -> bool:
    return any(isinstance(step, SubflowStep) for step in compiled.steps.values())


async def run_ended(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, now: datetime) -> list[StepMessage]:
    """After ``run`` ended (succeeded, failed or cancelled), in that transaction: a failed run's
    running children are cancelled (a cancelled run's were, by ``RunControl.cancel``, before it
    ended; a succeeded run leaves its ``wait: false`` children running, as they were started to);
    a parent step waiting for it as a subflow is queued again with its outcome; that step's message."""
    if run.status == SUCCEEDED:
        await end_run_ladder(session, tenant, run, now)
    elif run.status == FAILED and has_subflows(definition_of(run)):
        # Only a definition with subflows can have children: any other run pays no query here.
        await cancel_children(session, tenant, run, now, f"cancelled because its parent run {run.id} failed", hold=True)
    woken = await wake_parent(session, tenant, run, now)
    if woken is None:
        return []
    return [StepMessage(tenant.tenant_id, woken.partner_id, woken.run_id, woken.step_key, woken.attempt)]


def default_next(step: Step) -> list[str]:
    if isinstance(step, ParallelStep):
        return list(step.branches)
    return [step.next] if step.next else []


async def advance(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    step: Step,
    output: Any,
    chosen: list[str] | None,
    now: datetime,
) -> list[StepMessage]:
    """After ``step`` passed (under the run's lock): its output joins the context, the steps that
    follow are queued, pure ones run at once in this transaction (and what follows them, in turn),
    and the run ends when nothing is left. The messages to send after commit."""
    compiled = definition_of(run)
    steps = StepRunRepository(session, tenant)
    passed: list[tuple[Step, Any, list[str] | None]] = [(step, output, chosen)]
    queued: list[str] = []
    inline = 0
    while passed:
        step, output, chosen = passed.pop(0)
        context = dict(run.context)
        context["steps"] = {**context.get("steps", {}), step.key: output}
        run.context = context
        ready: list[tuple[str, str]] = []
        for key in default_next(step) if chosen is None else chosen:
            following = compiled.step(key)
            if isinstance(following, JoinStep):
                done = {s.step_key: s.status for s in await steps.of_run(run.id)}
                if not all(done.get(k) in STEP_PASSED for k in following.after):
                    continue  # the last branch to arrive queues the join
            ready.append((key, kind_of(following)))
        waiting: list[tuple[str, str]] = []
        for index, (key, kind) in enumerate(ready):
            following = compiled.step(key)
            if not isinstance(following, PURE) or inline >= INLINE_LIMIT:
                waiting.append((key, kind))
                continue
            # Queued, claimed, worked and completed at once: one row written with its outcome.
            outcome = pure_outcome(following, step_context(run))
            if not await steps.settled(run.id, _partner(tenant), key, kind, now, **_settled_values(outcome)):
                continue  # the run has it already (a join reached by its second branch)
            inline += 1
            if outcome.status == "failed":
                run.status, run.finished_at = "failed", now
                run.error = f"{following.key}: {outcome.error}"
                # The other steps that follow are queued as usual: they meet the failed run and are
                # held, to run if the run is retried.
                queued += await steps.queue(run.id, _partner(tenant), waiting + ready[index + 1 :], now)
                return _messages(tenant, run, queued) + await run_ended(session, tenant, run, now)
            passed.append((following, outcome.output, outcome.next))
        queued += await steps.queue(run.id, _partner(tenant), waiting, now)
    if not queued and await steps.remaining(run.id) == (0, 0):
        run.status, run.finished_at = "succeeded", now
        return await run_ended(session, tenant, run, now)
    return _messages(tenant, run, queued)


def _settled_values(outcome: Outcome) -> dict[str, Any]:
    if outcome.status == "succeeded":
        return {"status": SUCCEEDED, "output": outcome.output, "error": None, "error_kind": None}
    return {"status": FAILED, "output": None, "error": outcome.error, "error_kind": outcome.error_kind}


def _messages(tenant: TenantContext, run: WorkflowRun, keys: list[str]) -> list[StepMessage]:
    return [StepMessage(tenant.tenant_id, _partner(tenant), run.id, key, 1) for key in keys]


def kind_of(step: Step) -> str:
    return str(type(step).__struct_config__.tag)


def _partner(tenant: TenantContext) -> uuid.UUID:
    assert tenant.partner_id is not None
    return tenant.partner_id
