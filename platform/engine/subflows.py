"""Subflows: a step that runs another workflow of the same tenant as a child run.

No column links the two runs. The child carries the link in its context (``parent``: the parent
run, its step, the nesting depth and whether the parent waits); a waiting parent step waits with
``wait_type`` "subflow" and the child's run id as its correlation. Wherever a child run ends
(succeeded, failed, cancelled), ``wake_parent`` queues that step again in the same transaction, by
compare-and-set, as an arriving event wakes a ``wait_for_event``; the caller sends its message after
the commit. Cancelling a parent cancels its running children (``running_children``).

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
from andon.platform.engine.models import QUEUED, WAITING, StepRun, Workflow, WorkflowRun
from andon.platform.engine.repository import RunRepository, StepRunRepository, WorkflowRepository
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


async def running_children(session: AsyncSession, tenant: TenantContext, run: WorkflowRun) -> list[uuid.UUID]:
    """The child runs this run's subflow steps started that still run."""
    candidates: list[str] = []
    for step_run in await StepRunRepository(session, tenant).of_run(run.id):
        if step_run.kind != SUBFLOW:
            continue
        if step_run.wait_type == SUBFLOW and step_run.correlation:
            candidates.append(step_run.correlation)
        if isinstance(step_run.output, dict) and step_run.output.get("run_id"):
            candidates.append(str(step_run.output["run_id"]))
    runs = RunRepository(session, tenant)
    found: list[uuid.UUID] = []
    for candidate in dict.fromkeys(candidates):
        try:
            child_id = uuid.UUID(candidate)
        except ValueError:
            continue
        child = await runs.get(child_id)
        link = parent_link(child) if child is not None else None
        if child is not None and child.status == "running" and link and link["run_id"] == str(run.id):
            found.append(child.id)
    return found


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
