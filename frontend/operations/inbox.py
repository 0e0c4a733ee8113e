"""The operations inbox: the signed-in person's open tasks and approvals (asked of a role they hold,
of a kind their permissions let them act on), oldest first. A task is completed with its outcome; an
approval is signed, approve or reject, with a reason and the person's password (an electronic
signature, as the API requires: people who sign in through their organisation's provider sign within
five minutes of signing in instead). ``TaskService`` checks, records and audits each.

With JavaScript on, the count of open items refreshes itself (htmx polls a small fragment) and offers
to reload the list when it changed; the list itself is never swapped under someone typing a reason."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from andon.frontend.customer.console import PAGE_SIZE, first_row, form_page, pager, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.operations.console import OperationsConsoleController
from andon.frontend.operations.runs import pretty
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.engine.assignment import Assignments, Standing, may_complete, standing
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.models import HumanTask, WorkflowRun
from andon.platform.engine.queries import InboxQueries, RunQueries
from andon.platform.engine.schemas import Decide
from andon.platform.engine.service import RunService, TaskService
from andon.platform.http.errors import (
    AndonError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

INBOX_PATH = "/operations/inbox"
INBOX_PAGE = "operations/inbox.html"
# How often the count refreshes itself (htmx), in seconds.
POLL_SECONDS = 10
# What a person records as a task's outcome (the step's output: ``{"result": ...}``, with the note).
RESULTS = (
    ("done", "Done"),
    ("done_with_findings", "Done, with findings (say which in the note)"),
    ("not_possible", "Could not be done (say why in the note)"),
)
NOTE_LENGTH = 4000
# The API's limit on a hand-over note (``TaskDelegate``).
HANDOVER_LENGTH = 2000
# The API's limits on a signature (``Decide``): the reason's length, the password's.
REASON_LENGTH = 2000
PASSWORD_LENGTH = 500


def _every(raw: str | None) -> bool:
    return raw == "all"


def _may_do(caller: Standing, task: HumanTask) -> bool:
    """Whether the inbox offers the task's form to this person (the service decides all the same)."""
    if task.kind == "approval":
        return task.assignee is None or task.assignee == caller.user_id
    try:
        may_complete(caller, task)
    except PermissionDeniedError:
        return False
    return True


def _reason(exc: AndonError) -> str:
    """What the service said, for a person: a field's message, else the error's detail."""
    errors = exc.extra.get("errors") if isinstance(exc.extra, dict) else None
    if errors:
        return str(errors[0].get("message", exc.detail))
    return str(exc.detail)


def _tasks(db_session: DbSession, tenant: TenantContext, state: State) -> TaskService:
    return TaskService(db_session, tenant, broker_sender(state.broker))


async def inbox_page(
    db_session: DbSession,
    principal: Principal,
    tenant: TenantContext,
    state: State,
    *,
    offset: int = 0,
    every: bool = False,
    values: dict[str, str] | None = None,
    status: int = 200,
    **context: Any,
) -> Template:
    """The inbox; ``values`` and ``context`` carry a refused form back to the task it was for."""
    queries = InboxQueries(db_session, tenant)
    inbox = await queries.open(limit=PAGE_SIZE, offset=offset, every_role=every)
    runs_service = RunService(db_session, tenant, broker_sender(state.broker))
    runs: dict[uuid.UUID, WorkflowRun] = {}
    for task in inbox.tasks:
        if task.run_id not in runs:
            with contextlib.suppress(NotFoundError):  # a run outside the caller's sites: the task shows alone
                runs[task.run_id] = await runs_service.get(task.run_id)
    names = {w.key: w.name for w in await RunQueries(db_session, tenant).workflows()}
    me = principal.subject_id
    caller = await standing(db_session, tenant)
    assignments = Assignments(db_session, tenant)
    mine = [t for t in inbox.tasks if me is not None and t.assignee == me]
    return form_page(
        INBOX_PAGE,
        principal,
        status=status,
        tasks=inbox.tasks,
        my_id=me,
        assigned_to_me=len(mine),
        # Who may take a task (assign it to themselves): someone holding its role, or an administrator.
        can_take=frozenset(t.id for t in inbox.tasks if t.assignee != me and caller.user_id and caller.holds(t)),
        may_do=frozenset(t.id for t in inbox.tasks if _may_do(caller, t)),
        holders=await assignments.holders(mine),
        people=await assignments.names(inbox.tasks),
        total=inbox.total,
        signed=inbox.signed,
        runs=runs,
        names=names,
        roles=await queries.role_names(),
        every=every,
        results=RESULTS,
        pretty=pretty,
        poll_seconds=POLL_SECONDS,
        values=values or {},
        **pager(offset, view="all" if every else None),
        **context,
    )


@dataclass(slots=True)
class _Act:
    """One act on a task from the inbox: its service, the task (another customer's is a 404 before
    any form problem), where to go back to, and the inbox again with a refusal on the task's form."""

    db_session: DbSession
    principal: Principal
    tenant: TenantContext
    state: State
    tasks: TaskService
    task: HumanTask
    every: bool
    values: dict[str, str] = field(default_factory=dict)

    @property
    def back(self) -> str:
        return f"{INBOX_PATH}?view=all" if self.every else INBOX_PATH

    def nothing_changed(self, exc: ConflictError) -> Redirect:
        return redirect_with_notice(self.state.settings, self.back, f"Nothing changed: {exc.detail}.")

    async def refuse(self, status: int, errors: dict[str, str], error: str) -> Template:
        return await inbox_page(
            self.db_session,
            self.principal,
            self.tenant,
            self.state,
            every=self.every,
            values=self.values,
            status=status,
            errors=errors,
            error=error,
        )


async def _act(
    db_session: DbSession, principal: Principal, tenant: TenantContext, state: State, task_id: uuid.UUID, data: Any
) -> _Act:
    tasks = _tasks(db_session, tenant, state)
    task, _ = await tasks.detail(task_id)
    act = _Act(db_session, principal, tenant, state, tasks, task, _every(str(data.get("view", ""))))
    act.values["task"] = str(task_id)
    return act


class InboxPageController(OperationsConsoleController):
    path = INBOX_PATH

    @get("/", opt={"permission": P.TASKS_WRITE})
    async def inbox(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        offset: FromQuery[int] = 0,
        view: FromQuery[str | None] = None,
    ) -> Template:
        return await inbox_page(db_session, principal, tenant, state, offset=first_row(offset), every=_every(view))

    @get("/count", opt={"permission": P.TASKS_WRITE})
    async def count(
        self,
        db_session: DbSession,
        tenant: Tenant,
        view: FromQuery[str | None] = None,
        shown: FromQuery[int | None] = None,
    ) -> Template:
        """The count of open items alone, for htmx to refresh in place; ``shown``: the count the page
        was drawn with, so a change can offer to reload the list."""
        every = _every(view)
        total = await InboxQueries(db_session, tenant).count(every_role=every)
        return page(
            "operations/inbox_count.html",
            total=total,
            shown=total if shown is None else shown,
            every=every,
            poll_seconds=POLL_SECONDS,
        )

    @post("/{task_id:uuid}/complete", opt={"permission": P.TASKS_WRITE})
    async def complete(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, task_id: PathId, data: Form
    ) -> Template | Redirect:
        act = await _act(db_session, principal, tenant, state, task_id, data)
        values = act.values
        values["result"] = str(data.get("result", "")).strip()
        values["note"] = str(data.get("note", "")).strip()
        errors: dict[str, str] = {}
        if values["result"] not in dict(RESULTS):
            errors["result"] = "choose how it went"
        if len(values["note"]) > NOTE_LENGTH:
            errors["note"] = f"at most {NOTE_LENGTH} characters"
        if values["result"] in ("done_with_findings", "not_possible") and not values["note"]:
            errors["note"] = "say what you found, or why it could not be done"
        if errors:
            return await act.refuse(422, errors, "Some fields need your attention.")
        try:
            await act.tasks.complete(task_id, {"result": values["result"]}, values["note"] or None)
        except ConflictError as exc:
            return act.nothing_changed(exc)
        except PermissionDeniedError as exc:
            # Assigned to someone else (meanwhile, perhaps), or of a role this person does not hold.
            await service_refused(db_session, principal, exc)
            return await act.refuse(403, {}, f"Not done: {exc.detail}.")
        return redirect_with_notice(state.settings, act.back, f"Done: {act.task.title}. The run goes on from it.")

    @post("/{task_id:uuid}/take", opt={"permission": P.TASKS_WRITE})
    async def take(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, task_id: PathId, data: Form
    ) -> Template | Redirect:
        """The task to the signed-in person, from its role or from whoever had it."""
        act = await _act(db_session, principal, tenant, state, task_id, data)
        if principal.subject_id is None:
            raise PermissionDeniedError("a task is taken by a person: sign in to take it")
        try:
            await act.tasks.assign(task_id, str(principal.subject_id))
        except ConflictError as exc:
            return act.nothing_changed(exc)
        except (PermissionDeniedError, ValidationFailedError) as exc:
            await service_refused(db_session, principal, exc)
            code = 403 if isinstance(exc, PermissionDeniedError) else 422
            return await act.refuse(code, {}, f"Not taken: {_reason(exc)}.")
        return redirect_with_notice(state.settings, INBOX_PATH, f"Yours now: {act.task.title}.")

    @post("/{task_id:uuid}/delegate", opt={"permission": P.TASKS_WRITE})
    async def delegate(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, task_id: PathId, data: Form
    ) -> Template | Redirect:
        """The assignee hands the task on to another person who holds its role, saying why."""
        act = await _act(db_session, principal, tenant, state, task_id, data)
        values = act.values
        values["to"] = str(data.get("to", "")).strip()
        values["handover"] = str(data.get("handover", "")).strip()
        errors: dict[str, str] = {}
        if not values["to"]:
            errors["to"] = "choose who takes it over"
        if len(values["handover"]) > HANDOVER_LENGTH:
            errors["handover"] = f"at most {HANDOVER_LENGTH} characters"
        if errors:
            return await act.refuse(422, errors, "Some fields need your attention.")
        try:
            await act.tasks.delegate(task_id, values["to"], values["handover"] or None)
        except ConflictError as exc:
            return act.nothing_changed(exc)
        except PermissionDeniedError as exc:
            await service_refused(db_session, principal, exc)
            return await act.refuse(403, {}, f"Not handed on: {exc.detail}.")
        except ValidationFailedError as exc:
            await service_refused(db_session, principal, exc)
            return await act.refuse(422, {"to": _reason(exc)}, "Not handed on: choose someone who holds the role.")
        return redirect_with_notice(state.settings, act.back, f"Handed on: {act.task.title}.")

    @post("/{task_id:uuid}/decide", opt={"permission": P.APPROVALS_SIGN})
    async def decide(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, task_id: PathId, data: Form
    ) -> Template | Redirect:
        act = await _act(db_session, principal, tenant, state, task_id, data)
        values = act.values
        values["reason"] = str(data.get("reason", "")).strip()
        password = str(data.get("password", "")) or None
        decision: Literal["approve", "reject"] | None = None
        raw = str(data.get("decision", ""))
        if raw in ("approve", "reject"):
            decision = "approve" if raw == "approve" else "reject"

        try:
            signed = msgspec.convert({"decision": decision, "reason": values["reason"], "password": password}, Decide)
        except msgspec.ValidationError:
            errors: dict[str, str] = {}
            if len(values["reason"]) < 3:
                errors["reason"] = "say why, in at least 3 characters"
            elif len(values["reason"]) > REASON_LENGTH:
                errors["reason"] = f"at most {REASON_LENGTH} characters"
            if password is not None and len(password) > PASSWORD_LENGTH:
                errors["password"] = "not your password: it is too long"  # noqa: S105 - a message
            if decision is None:
                errors["decision"] = "approve or reject"
            return await act.refuse(422, errors, "Some fields need your attention.")
        try:
            await act.tasks.decide(task_id, signed.decision, signed.reason, signed.password)
        except AuthenticationError as exc:
            # A wrong password: nothing is recorded, and the form says so by the password field.
            await service_refused(db_session, principal, exc)
            return await act.refuse(422, {"password": exc.detail}, "Not signed: you could not be identified.")
        except PermissionDeniedError as exc:
            # Separation of duties (the requester cannot approve), or not a person who can sign.
            await service_refused(db_session, principal, exc)
            return await act.refuse(403, {}, f"Not signed: {exc.detail}.")
        except ConflictError as exc:
            return act.nothing_changed(exc)
        except NotFoundError:
            raise
        except AndonError as exc:
            problems = await service_refused(db_session, principal, exc)
            return await act.refuse(422, problems["errors"], problems["error"])
        verb = "Approved" if signed.decision == "approve" else "Rejected"
        return redirect_with_notice(state.settings, act.back, f"{verb}: {act.task.title}. Your signature is recorded.")
