"""Who does a human task. Unassigned, it is anyone's who holds its role; assigned, it is one person's:
only they complete it (or sign it, for an approval). Someone holding the role (or an administrator)
assigns it, takes it or gives it back to the role; the assignee may hand it on to another holder of
the role (a delegation, which keeps who handed it on). A task step may name its assignee; a person
the customer does not have (or who does not hold the role) leaves the task to the role, with a note
on the step instead of a failed run.

Each change takes the run's lock and reads the task again, as completing and signing do, so a task
reassigned while someone completes it is either done by the old assignee or refused to them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.rbac import ROLES, P
from andon.platform.engine.definition import ApprovalStep, Step, TaskStep
from andon.platform.engine.expressions import ExpressionError, render
from andon.platform.engine.models import HumanTask
from andon.platform.engine.queries import task_roles
from andon.platform.engine.repository import PeopleRepository, RunRepository, TaskRepository
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError, field_error
from andon.platform.identity.models import RoleGrant, User
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import SubjectKind

# What a task assigned by its definition records as ``assigned_by``.
BY_DEFINITION = "workflow definition"


def answers(task: HumanTask, grants: Sequence[RoleGrant]) -> bool:
    """Whether a person with these grants may do the task: one grant's role answers to the task's
    role (``supervisor`` to ``plant_supervisor``), allows the task's kind (``tasks:write``, or
    ``approvals:sign`` for an approval) and covers the task's site."""
    needed = P.APPROVALS_SIGN if task.kind == "approval" else P.TASKS_WRITE
    for grant in grants:
        role = ROLES.get(grant.role)
        if role is None or needed not in role.permissions or task.role not in task_roles([grant.role]):
            continue
        if grant.scope_kind == "site" and task.site_id is not None and grant.scope_id != task.site_id:
            continue
        return True
    return False


@dataclass(frozen=True, slots=True)
class Standing:
    """The caller, as assignment sees them: a person of the customer (with their grants) or not (an
    API key, a partner's person), and whether they administer the customer's people."""

    user_id: uuid.UUID | None
    grants: tuple[RoleGrant, ...]
    admin: bool
    person: bool

    def holds(self, task: HumanTask) -> bool:
        return answers(task, self.grants)


async def standing(session: AsyncSession, tenant: TenantContext) -> Standing:
    principal = tenant.principal
    person = principal.subject_kind is SubjectKind.USER and principal.subject_id is not None
    admin = P.USERS_WRITE in principal.permissions
    if not person or principal.subject_id is None:
        return Standing(None, (), admin, person)
    found = await PeopleRepository(session, tenant).with_grants([principal.subject_id])
    if not found:  # a partner's person acting inside the customer: holds none of its roles
        return Standing(None, (), admin, person)
    user, grants = found[0]
    return Standing(user.id, tuple(grants), admin, person)


def may_complete(caller: Standing, task: HumanTask) -> None:
    """Only the assignee completes an assigned task; an unassigned one, a holder of its role, an
    administrator, or an integration's API key (which records what was done elsewhere)."""
    if task.assignee is not None:
        if caller.user_id != task.assignee:
            raise PermissionDeniedError("this task is assigned to someone else: only they complete it")
        return
    if caller.admin or not caller.person or caller.holds(task):
        return
    raise PermissionDeniedError(f"this task is for the {task.role} role, which you do not hold")


def _may_assign(caller: Standing, task: HumanTask) -> None:
    if caller.admin or caller.holds(task):
        return
    raise PermissionDeniedError(f"only someone holding the {task.role} role, or an administrator, assigns this task")


def _unfit(task: HumanTask, user: User, grants: Sequence[RoleGrant]) -> str | None:
    """Why this person cannot be the task's assignee, if they cannot."""
    if not answers(task, grants):
        return f"{user.email} does not hold the {task.role} role (or may not do this kind of task there)"
    if task.kind == "approval":
        if task.required_approvals > 1:
            return f"it needs {task.required_approvals} signatures: it stays with the role"
        if task.requester and task.requester == str(user.id):
            return f"separation of duties: {user.email} asked for this approval and cannot sign it"
    return None


async def assign_from_definition(
    session: AsyncSession, tenant: TenantContext, task: HumanTask, step: Step, context: dict[str, Any], now: datetime
) -> str | None:
    """The new task's assignee, as its step names it; a note when that names nobody who can do it (the
    task then stays with its role)."""
    ref_source = step.assignee if isinstance(step, TaskStep | ApprovalStep) else None
    if not ref_source or task.kind == "fallback":
        return None
    later = f"the task is open to the {task.role} role"
    try:
        ref = str(render(ref_source, context)).strip()
    except ExpressionError as exc:
        return f"no assignee ({exc}): {later}"
    if not ref:
        return f"the assignee named nobody: {later}"
    people = PeopleRepository(session, tenant)
    found = await people.members([ref])
    if not found:
        return f"no user '{ref[:200]}' in this customer: {later}"
    user, grants = (await people.with_grants([found[0].id]) or [(found[0], [])])[0]
    why = _unfit(task, user, grants)
    if why is not None:
        return f"not assigned: {why}; {later}"
    task.assignee, task.assigned_by, task.assigned_at = user.id, BY_DEFINITION, now
    return None


@dataclass(frozen=True, slots=True)
class Change:
    """An assignment made: the task as it is now, who had it before, and who has it now."""

    task: HumanTask
    before: uuid.UUID | None
    to: User | None


class Assignments:
    """Assigning, taking back to the role and handing on open tasks, each under the run's lock."""

    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.tasks = TaskRepository(session, tenant)
        self.people = PeopleRepository(session, tenant)

    async def _open(self, task_id: uuid.UUID) -> HumanTask:
        task = await self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        await RunRepository(self.session, self.tenant).lock(task.run_id)
        await self.session.refresh(task)  # as it stands now that the run's lock is held
        if task.status != "open":
            raise ConflictError(f"the task is {task.status}; only an open task changes hands")
        return task

    async def _person(self, task: HumanTask, ref: str, field: str) -> User:
        found = await self.people.members([ref.strip()])
        if not found:
            raise field_error(field, f"no user '{ref.strip()[:200]}' in this customer")
        user, grants = (await self.people.with_grants([found[0].id]) or [(found[0], [])])[0]
        why = _unfit(task, user, grants)
        if why is not None:
            raise field_error(field, why)
        return user

    async def assign(self, task_id: uuid.UUID, ref: str | None, now: datetime) -> Change:
        """The task to the person ``ref`` names (e-mail or id), or back to its role (``None``)."""
        task = await self._open(task_id)
        _may_assign(await standing(self.session, self.tenant), task)
        user = await self._person(task, ref, "assignee") if ref is not None else None
        before = task.assignee
        task.assignee = user.id if user else None
        task.assigned_by, task.assigned_at, task.delegated_from = self.tenant.principal.label, now, None
        await self.session.flush()
        return Change(task, before, user)

    async def delegate(self, task_id: uuid.UUID, ref: str, now: datetime) -> Change:
        """The assignee hands the task on to another person who holds its role."""
        task = await self._open(task_id)
        caller = await standing(self.session, self.tenant)
        if task.assignee is None:
            raise ConflictError("the task is not assigned to anyone: take it, or assign it, instead")
        if caller.user_id != task.assignee:
            raise PermissionDeniedError("only the task's assignee hands it on")
        user = await self._person(task, ref, "to")
        if user.id == task.assignee:
            raise field_error("to", "the task is yours already: hand it on to someone else")
        task.delegated_from, task.assignee = task.assignee, user.id
        task.assigned_by, task.assigned_at = self.tenant.principal.label, now
        await self.session.flush()
        return Change(task, task.delegated_from, user)

    async def holders(self, tasks: Sequence[HumanTask]) -> dict[uuid.UUID, list[User]]:
        """For each task, the people who may be given it (an inbox's "hand on to" choices)."""
        if not tasks:
            return {}
        people = await self.people.with_grants()
        return {t.id: [user for user, grants in people if _unfit(t, user, grants) is None] for t in tasks}

    async def names(self, tasks: Sequence[HumanTask]) -> dict[uuid.UUID, User]:
        """The people the tasks are assigned to (or were handed on by), by id."""
        ids = {i for t in tasks for i in (t.assignee, t.delegated_from) if i is not None}
        return {u.id: u for u in await self.people.members([str(i) for i in sorted(ids)])} if ids else {}
