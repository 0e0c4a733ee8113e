"""Subflows: a step that runs another workflow of the same tenant as a child run.

No column links the two runs. The child carries the link in its context (``parent``: the parent
run, its step, the nesting depth and whether the parent waits); a waiting parent step waits with
``wait_type`` "subflow" and the child's run id as its correlation. Wherever a child run ends
(succeeded, failed, cancelled), ``wake_parent`` queues that step again in the same transaction, by
compare-and-set, as an arriving event wakes a ``wait_for_event``; the caller sends its message after
the commit.

A parent's lifecycle bounds its children's (``cancel_children``, recursively, each child with the
reason on its ``error``; a child that already ended stays as it is):

- a parent that fails or is cancelled cancels every child still running, waited for or not; a
  failed parent's step that still waited for its child is held, so the run resumed (a failed step
  retried or skipped) starts a new child;
- a waiting step with ``timeout_seconds`` gives up on its child by the same timer a
  ``wait_for_event``'s timeout uses, and cancels the child (``stop_waiting``) unless
  ``cancel_child_on_timeout: false`` (which keeps it running only along ``on_timeout``: without
  one the step fails its run, which cancels it as above); a child that ended in the meantime still
  counts;
- a parent that succeeds leaves its ``wait: false`` children running: they were started to go on
  on their own.

Locks go parent first, then child (every path above, and ``RunControl.cancel``); a child ending
only compare-and-sets its parent's step, without the parent's lock.

Cycles: saving a workflow whose subflows lead back to it is refused (``subflow_problems``); a chain
that slipped past (runs keep the definitions they started with) stops at ``MAX_DEPTH``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.engine.definition import Definition, SubflowStep
from andon.platform.engine.models import (
    CANCELLED,
    HELD,
    QUEUED,
    STEP_DONE,
    WAITING,
    StepRun,
    Workflow,
    WorkflowRun,
)
from andon.platform.engine.repository import (
    EscalationRepository,
    RunRepository,
    StepRunRepository,
    TaskRepository,
    TimerRepository,
    WorkflowRepository,
)
from andon.platform.tenancy.context import TenantContext

SUBFLOW = "subflow"
# Child runs nest at most this deep (a run an event or a person started is at depth 0).
MAX_DEPTH = 5
RUN_ENDED = frozenset({"succeeded", "failed", "cancelled"})


def parent_link(run: WorkflowRun) -> dict[str, Any] | None:
    link = run.context.get("parent")
    return link if isinstance(link, dict) and "run_id" in link else None


def depth_of(run: WorkflowRun) -> int:
    link = parent_link(run)
    return int(link.get("depth", 1)) if link else 0


def child_context(run: WorkflowRun, step: SubflowStep, inputs: Any) -> dict[str, Any]:
    """What the child sees: the parent's event and alert, the rendered ``inputs``, and the link."""
    return {
        "event": run.context.get("event"),
        "alert": run.context.get("alert"),
        "inputs": inputs,
        "parent": {
            "run_id": str(run.id),
            "workflow": run.workflow_key,
            "step_key": step.key,
            "depth": depth_of(run) + 1,
            "wait": step.wait,
        },
    }


def outcome_of(child: WorkflowRun) -> dict[str, Any]:
    """What the waiting parent step receives: the child's status, error and step outputs."""
    return {
        "run_id": str(child.id),
        "workflow": child.workflow_key,
        "status": child.status,
        "error": child.error,
        "steps": child.context.get("steps", {}),
    }


async def latest_workflow(session: AsyncSession, tenant: TenantContext, key: str) -> Workflow | None:
    """The newest version of the tenant's workflow ``key`` (another tenant's is never found)."""
    versions = await WorkflowRepository(session, tenant).list(Workflow.key == key, limit=1000)
    return max(versions, key=lambda w: w.version, default=None)


async def wake_parent(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, now: datetime) -> StepRun | None:
    """The parent step waiting for ``run`` (which just ended), queued again with the child's outcome;
    None when nothing waits for it (no parent, a parent that did not wait, or one that moved on)."""
    link = parent_link(run)
    if link is None or not link.get("wait") or run.status not in RUN_ENDED:
        return None
    steps = StepRunRepository(session, tenant)
    waiting = await steps.by_key(uuid.UUID(str(link["run_id"])), str(link.get("step_key")))
    if (
        waiting is None
        or waiting.status != WAITING
        or waiting.wait_type != SUBFLOW
        or waiting.correlation != str(run.id)
    ):
        return None
    moved = await steps.move(
        waiting.id, WAITING, waiting.attempt, status=QUEUED, wake=SUBFLOW, output=outcome_of(run), queued_at=now
    )
    return waiting if moved else None


async def running_children(
    session: AsyncSession, tenant: TenantContext, run: WorkflowRun
) -> list[tuple[StepRun, uuid.UUID]]:
    """The child runs this run's subflow steps started that still run, each with the step that
    started it."""
    candidates: dict[str, StepRun] = {}
    for step_run in await StepRunRepository(session, tenant).of_run(run.id):
        if step_run.kind != SUBFLOW:
            continue
        if step_run.wait_type == SUBFLOW and step_run.correlation:
            candidates.setdefault(step_run.correlation, step_run)
        if isinstance(step_run.output, dict) and step_run.output.get("run_id"):
            candidates.setdefault(str(step_run.output["run_id"]), step_run)
    runs = RunRepository(session, tenant)
    found: list[tuple[StepRun, uuid.UUID]] = []
    for candidate, step_run in candidates.items():
        try:
            child_id = uuid.UUID(candidate)
        except ValueError:
            continue
        child = await runs.get(child_id)
        link = parent_link(child) if child is not None else None
        if child is not None and child.status == "running" and link and link["run_id"] == str(run.id):
            found.append((step_run, child.id))
    return found


async def halt(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, now: datetime) -> None:
    """What a cancelled run leaves undone stops: its unfinished steps are cancelled, its timers will
    not fire, its ladders stop paging and its open tasks close."""
    steps = StepRunRepository(session, tenant)
    for step_run in await steps.of_run(run.id):
        if step_run.status not in STEP_DONE:
            await steps.move(step_run.id, step_run.status, None, status=CANCELLED, finished_at=now, lease_until=None)
    await TimerRepository(session, tenant).cancel_for_run(run.id, now)
    await EscalationRepository(session, tenant).stop(run.id, CANCELLED, now, by=None)
    await TaskRepository(session, tenant).cancel_for_run(run.id, now)


async def cancel_children(
    session: AsyncSession, tenant: TenantContext, run: WorkflowRun, now: datetime, reason: str, *, hold: bool = False
) -> list[uuid.UUID]:
    """``run``'s running children cancelled with ``reason``, and their children in turn (the caller
    holds ``run``'s lock). With ``hold`` (``run`` failed) a step still waiting for its child is held,
    to start a new child if the run is retried. Every run cancelled."""
    cancelled: list[uuid.UUID] = []
    steps = StepRunRepository(session, tenant)
    for step_run, child_id in await running_children(session, tenant, run):
        cancelled += await cancel_child(session, tenant, child_id, now, reason)
        # A child that ended before its lock was ours woke the step instead: it is queued now.
        if (
            hold
            and step_run.status == WAITING
            and step_run.correlation == str(child_id)
            and await steps.move(
                step_run.id,
                WAITING,
                step_run.attempt,
                status=CANCELLED,
                error_kind=HELD,
                error="held: the run failed",
                lease_until=None,
            )
        ):
            # A retry waits again at this attempt: the old wait's timeout must not end the new one.
            await TimerRepository(session, tenant).cancel_for_step(run.id, step_run.step_key, now)
    return cancelled


async def cancel_child(
    session: AsyncSession, tenant: TenantContext, child_id: uuid.UUID, now: datetime, reason: str
) -> list[uuid.UUID]:
    """The child run cancelled (under its lock) with ``reason``, its own children first; it wakes
    no parent step (its parent stopped, or stopped waiting). Nothing when it already ended."""
    runs = RunRepository(session, tenant)
    await runs.lock(child_id)
    child = await runs.for_update(child_id)
    if child is None or child.status != "running":
        return []
    cancelled = await cancel_children(
        session, tenant, child, now, f"cancelled because its parent run {child.id} was cancelled"
    )
    child.status, child.finished_at, child.error = CANCELLED, now, reason
    await halt(session, tenant, child, now)
    # Written now: the engine's own statements that follow in this transaction bypass the ORM.
    await session.flush()
    return [child.id, *cancelled]


async def stop_waiting(
    session: AsyncSession,
    tenant: TenantContext,
    child_id: uuid.UUID,
    now: datetime,
    *,
    cancel: bool,
    reason: str,
) -> WorkflowRun | None:
    """A step timed out waiting for ``child_id``: the child, cancelled with ``reason`` (unless not
    ``cancel``) when it still runs; or the child when it ended meanwhile (its ending found the step
    already running and woke nothing, so its outcome is the step's after all). None: it still runs,
    or ran until cancelled here."""
    runs = RunRepository(session, tenant)
    await runs.lock(child_id)
    child = await runs.for_update(child_id)
    if child is None:
        return None
    if child.status in RUN_ENDED:
        return child
    if cancel:
        await cancel_child(session, tenant, child_id, now, reason)
    return None


def _subflow_steps(definition: Definition) -> Iterator[tuple[str, SubflowStep]]:
    for i, step in enumerate(definition.steps):
        if isinstance(step, SubflowStep):
            yield f"steps[{i}].workflow", step


async def subflow_problems(
    session: AsyncSession, tenant: TenantContext, key: str, definition: Definition
) -> list[tuple[str, str]]:
    """Every workflow the definition runs as a subflow is one of this tenant's, and none of them
    (through its own subflows, newest versions) leads back to ``key``."""
    problems: list[tuple[str, str]] = []
    for at, step in _subflow_steps(definition):
        if step.workflow == key:
            problems.append((at, "a workflow cannot run itself as a subflow"))
            continue
        if await latest_workflow(session, tenant, step.workflow) is None:
            problems.append((at, f"no workflow '{step.workflow}' in this customer"))
            continue
        path = await _path_back(session, tenant, step.workflow, key, [key], set())
        if path:
            problems.append((at, "runs " + " → ".join(path) + ": a subflow cannot lead back to its workflow"))
    return problems


async def _path_back(
    session: AsyncSession, tenant: TenantContext, at: str, target: str, trail: list[str], seen: set[str]
) -> list[str] | None:
    """The chain ``trail → at → … → target`` of subflows (newest versions), if there is one."""
    if at in seen:
        return None
    seen.add(at)
    workflow = await latest_workflow(session, tenant, at)
    if workflow is None:
        return None
    try:
        definition = msgspec.convert(workflow.definition, Definition)
    except msgspec.ValidationError:
        return None
    for _, step in _subflow_steps(definition):
        if step.workflow == target:
            return [*trail, at, target]
        found = await _path_back(session, tenant, step.workflow, target, [*trail, at], seen)
        if found:
            return found
    return None
