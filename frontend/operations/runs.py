"""Workflow runs as the people on shift follow them: a list found by status, workflow and words; a
run's page with its step graph, its timeline (status, attempts, times, inputs, output, error, skip
reason), its tasks with the signatures given on its approvals; and the acts of ``runs:write``
(cancel the run, retry a failed step, skip a step with a reason) done by ``RunService``, which audits
each through ``RunControl``.

While a run is under way its page asks every few seconds (htmx) whether anything changed, and fetches
its live part again when something did; without JavaScript it is a plain page, reloaded by hand."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Response, Template

from andon.frontend.customer.console import PAGE_SIZE, first_row, form_page, pager, refused, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.operations.console import OperationsConsoleController, chosen, options
from andon.frontend.operations.run_graph import render_svg
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.engine.assignment import Assignments
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.models import ApprovalDecision, HumanTask, StepRun, WorkflowRun
from andon.platform.engine.queries import RunQueries
from andon.platform.engine.schemas import StepSkip
from andon.platform.engine.service import RunService
from andon.platform.http.errors import AndonError, ConflictError, NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

RUNS_PATH = "/operations/runs"
RUN_STATES = ("running", "succeeded", "failed", "cancelled")
RUN_PAGE = "operations/run.html"
# Steps a person may skip (a failed one, or one waiting for a timer, an event or a person), and retry.
SKIPPABLE = frozenset({"failed", "waiting", "scheduled"})
RETRYABLE = frozenset({"failed"})
# How often a run under way refreshes its page (htmx), in seconds.
POLL_SECONDS = 3
WAKES = {
    "retry": "after a retry delay",
    "timer": "when its timer fired",
    "timeout": "when its wait timed out",
    "event": "when the awaited event arrived",
    "task": "when a person finished",
    "subflow": "when its child run ended",
}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def fingerprint(
    run: WorkflowRun, steps: Sequence[StepRun], tasks: Sequence[HumanTask], decisions: Sequence[ApprovalDecision]
) -> str:
    """What the run's live part shows, in a few characters: it changes whenever that part would."""
    seen = [run.status, *(f"{s.step_key}:{s.status}:{s.attempt}" for s in steps)]
    seen += [f"{t.id}:{t.status}:{t.assignee}" for t in tasks] + [str(d.id) for d in decisions]
    return hashlib.sha256("|".join(seen).encode()).hexdigest()[:16]


def service(db_session: DbSession, tenant: TenantContext, state: State) -> RunService:
    return RunService(db_session, tenant, broker_sender(state.broker))


def _step_titles(run: WorkflowRun, tasks: Sequence[HumanTask]) -> dict[str, str]:
    """Each step's title as people read it: a task's own (rendered for this run), else the definition's
    when it is plain words (a template is not shown unrendered)."""
    steps = run.definition.get("steps") if isinstance(run.definition, dict) else None
    titles: dict[str, str] = {}
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("key"), str):
            title = str(step.get("title") or "")
            if title and "{{" not in title and "{%" not in title:
                titles[step["key"]] = title
    for task in sorted(tasks, key=lambda t: t.created_at):
        titles[task.step_key] = task.title
    return titles


def _decisions_by_task(decisions: Sequence[ApprovalDecision]) -> dict[uuid.UUID, list[ApprovalDecision]]:
    by_task: dict[uuid.UUID, list[ApprovalDecision]] = {}
    for d in decisions:
        by_task.setdefault(d.task_id, []).append(d)
    return by_task


async def run_page(
    db_session: DbSession,
    principal: Principal,
    tenant: TenantContext,
    state: State,
    run_id: uuid.UUID,
    values: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """The run's page; ``values`` and ``context`` carry a refused skip form back to it."""
    run, steps, tasks = await service(db_session, tenant, state).detail(run_id)
    decisions = await RunQueries(db_session, tenant).decisions(run.id)
    statuses = {s.step_key: s.status for s in steps}
    workflow_name = next(
        (w.name for w in await RunQueries(db_session, tenant).workflows() if w.key == run.workflow_key),
        run.workflow_key,
    )
    return form_page(
        RUN_PAGE,
        principal,
        run=run,
        steps=steps,
        tasks=tasks,
        people=await Assignments(db_session, tenant).names(tasks),
        decisions=_decisions_by_task(decisions),
        workflow_name=workflow_name,
        titles=_step_titles(run, tasks),
        graph=render_svg(
            run.definition,
            statuses,
            label=f"Steps of {workflow_name}: {', '.join(f'{k} {v}' for k, v in statuses.items()) or 'none started'}",
        ),
        pretty=pretty,
        wakes=WAKES,
        skippable=SKIPPABLE,
        retryable=RETRYABLE,
        live=run.status == "running",
        poll_seconds=POLL_SECONDS,
        fingerprint=fingerprint(run, steps, tasks, decisions),
        values=values or {},
        **context,
    )


async def _act(state: State, run_id: uuid.UUID, act: Callable[[], Awaitable[WorkflowRun]], done: str) -> Redirect:
    """One act of the run service, then back to the run's page; a run someone else changed in the
    meantime (already cancelled, the step moved on) says so instead of failing."""
    back = f"{RUNS_PATH}/{run_id}"
    try:
        await act()
    except ConflictError as exc:
        return redirect_with_notice(state.settings, back, f"Nothing changed: {exc.detail}.")
    return redirect_with_notice(state.settings, back, done)


class RunsPageController(OperationsConsoleController):
    path = RUNS_PATH

    @get("/", opt={"permission": P.RUNS_READ})
    async def runs(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        status: FromQuery[str | None] = None,
        workflow: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        queries = RunQueries(db_session, tenant)
        workflows = await queries.workflows()
        state = chosen(status, RUN_STATES)
        key = chosen(workflow, [w.key for w in workflows])
        words = (q or "").strip()[:200] or None
        rows, total = await queries.search(limit=PAGE_SIZE, offset=offset, status=state, workflow_key=key, q=words)
        return page(
            "operations/runs.html",
            principal=principal,
            runs=rows,
            total=total,
            status_options=options(RUN_STATES),
            workflow_options=[(w.key, w.name) for w in workflows],
            names={w.key: w.name for w in workflows},
            filters={"status": state or "", "workflow": key or "", "q": words or ""},
            filtered=any((state, key, words)),
            **pager(offset, status=state, workflow=key, q=words),
        )

    @get("/{run_id:uuid}", opt={"permission": P.RUNS_READ})
    async def run(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, run_id: PathId
    ) -> Template:
        return await run_page(db_session, principal, tenant, state, run_id)

    @get("/{run_id:uuid}/changes", opt={"permission": P.RUNS_READ})
    async def changes(
        self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId, since: FromQuery[str] = ""
    ) -> Response[None]:
        """For htmx, polling while the run is under way: nothing (204) while the run's page would show
        the same; otherwise the ``run-changed`` event, on which the page fetches its live part again.
        So a person reading a step's output is not interrupted every few seconds."""
        run, steps, tasks = await service(db_session, tenant, state).detail(run_id)
        decisions = await RunQueries(db_session, tenant).decisions(run.id)
        if fingerprint(run, steps, tasks, decisions) == since:
            return Response(None, status_code=204)
        return Response(None, status_code=200, headers={"HX-Trigger": "run-changed"})

    @post("/{run_id:uuid}/cancel", opt={"permission": P.RUNS_WRITE})
    async def cancel(self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId) -> Redirect:
        runs = service(db_session, tenant, state)
        return await _act(
            state, run_id, lambda: runs.cancel(run_id), "Cancelled the run: its open tasks were withdrawn."
        )

    @post("/{run_id:uuid}/steps/{step_key:str}/retry", opt={"permission": P.RUNS_WRITE})
    async def retry(
        self, db_session: DbSession, tenant: Tenant, state: State, run_id: PathId, step_key: FromPath[str]
    ) -> Redirect:
        runs = service(db_session, tenant, state)
        await runs.get(run_id)  # another customer's run is a 404, whatever the step
        return await _act(
            state, run_id, lambda: runs.retry(run_id, step_key), f"Retrying step {step_key}: the run resumes from it."
        )

    @post("/{run_id:uuid}/steps/{step_key:str}/skip", opt={"permission": P.RUNS_WRITE})
    async def skip(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        run_id: PathId,
        step_key: FromPath[str],
        data: Form,
    ) -> Template | Redirect:
        runs = service(db_session, tenant, state)
        await runs.get(run_id)  # another customer's run is a 404 before any form problem
        values = {"skip_step": step_key, "reason": str(data.get("reason", "")).strip()}
        try:
            reason = msgspec.convert({"reason": values["reason"]}, StepSkip).reason
        except msgspec.ValidationError:
            return await run_page(
                db_session,
                principal,
                tenant,
                state,
                run_id,
                values,
                **refused({"reason": "say why, in at least 3 characters"}),
            )
        try:
            await runs.skip(run_id, step_key, reason)
        except ConflictError as exc:
            return redirect_with_notice(state.settings, f"{RUNS_PATH}/{run_id}", f"Nothing changed: {exc.detail}.")
        except NotFoundError:
            raise
        except AndonError as exc:
            problems = await service_refused(db_session, principal, exc)
            return await run_page(db_session, principal, tenant, state, run_id, values, **problems)
        return redirect_with_notice(
            state.settings, f"{RUNS_PATH}/{run_id}", f"Skipped step {step_key}: the run goes on without it."
        )
