"""Read-only questions the portal asks of the engine that its services do not answer: runs found by
status, workflow and words; the open tasks and approvals a person may do; the signatures of a run.

Everything here reads through the engine's tenant-scoped repositories (which also narrow to a
site-level grant's sites) and the identity domain's user repository, owned by the tenant: no SQL of
its own. Lists page over the repositories' id order; ids are UUIDv7, so that is the order rows were
made in, and "newest first" counts back from the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.rbac import P
from andon.platform.engine.models import ApprovalDecision, HumanTask, WorkflowRun
from andon.platform.engine.repository import DecisionRepository, RunRepository, TaskRepository, WorkflowRepository
from andon.platform.identity.models import User
from andon.platform.identity.repository import UserRepository
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import SubjectKind

# A workflow chooser lists at most this many workflow versions.
WORKFLOW_CHOOSER_LIMIT = 1000
# A run has at most this many signatures shown (an approval asks for at most 20, a definition has at
# most 200 steps; this is a bound for the page, not a rule).
DECISIONS_SHOWN = 500


@dataclass(frozen=True, slots=True)
class WorkflowChoice:
    key: str
    name: str


def task_roles(role_names: Iterable[str]) -> frozenset[str]:
    """The task roles a person's roles answer to. A step names a role in the words of its template
    (``supervisor``, ``technician``, ``quality``), the customer's roles are named in full
    (``plant_supervisor``, ``quality_engineer``): a role answers to its own name and to each word of it."""
    names: set[str] = set()
    for role in role_names:
        names.add(role)
        names.update(part for part in role.split("_") if part)
    return frozenset(names)


def task_kinds(permissions: frozenset[str]) -> frozenset[str]:
    """The kinds of task a person may act on: tasks and fallbacks with ``tasks:write``, approvals
    with ``approvals:sign``."""
    kinds: set[str] = set()
    if P.TASKS_WRITE in permissions:
        kinds |= {"task", "fallback"}
    if P.APPROVALS_SIGN in permissions:
        kinds.add("approval")
    return frozenset(kinds)


async def _newest_first(
    repo: RunRepository, where: Sequence[ColumnElement[bool]], limit: int, offset: int
) -> tuple[list[WorkflowRun], int]:
    total = await repo.count(*where)
    end = total - offset
    if end <= 0:
        return [], total
    start = max(0, end - limit)
    rows = await repo.list(*where, limit=end - start, offset=start)
    return list(reversed(rows)), total


class RunQueries:
    """What the runs pages list and show besides ``RunService.detail``."""

    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.runs = RunRepository(session, tenant)

    async def search(
        self,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        workflow_key: str | None = None,
        q: str | None = None,
    ) -> tuple[list[WorkflowRun], int]:
        """Runs newest first; ``q`` finds words in the workflow's key or name or the run's error, or a run id."""
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(WorkflowRun.status == status)
        if workflow_key:
            where.append(WorkflowRun.workflow_key == workflow_key)
        if q:
            text = q.strip()
            words = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            found: list[ColumnElement[bool]] = [
                WorkflowRun.workflow_key.ilike(words, escape="\\"),
                WorkflowRun.error.ilike(words, escape="\\"),
            ]
            named = [w.key for w in await self.workflows() if text.lower() in w.name.lower()]
            if named:
                found.append(WorkflowRun.workflow_key.in_(named))
            with contextlib.suppress(ValueError):  # words, not a run id
                found.append(WorkflowRun.id == uuid.UUID(text))
            where.append(or_(*found))
        return await _newest_first(self.runs, where, limit, offset)

    async def workflows(self) -> list[WorkflowChoice]:
        """Each workflow key once, with the name of its latest version, for a chooser."""
        versions, _ = await WorkflowRepository(self.session, self.tenant).page(limit=WORKFLOW_CHOOSER_LIMIT, offset=0)
        chosen: dict[str, WorkflowChoice] = {}
        for workflow in versions:  # latest version first within a key
            chosen.setdefault(workflow.key, WorkflowChoice(workflow.key, workflow.name))
        return sorted(chosen.values(), key=lambda w: w.name.lower())

    async def decisions(self, run_id: uuid.UUID) -> list[ApprovalDecision]:
        """Every signature on the run's approvals, in the order they were signed."""
        rows = await DecisionRepository(self.session, self.tenant).list(
            ApprovalDecision.run_id == run_id, limit=DECISIONS_SHOWN
        )
        return sorted(rows, key=lambda d: (d.signed_at, d.id))


@dataclass(frozen=True, slots=True)
class Inbox:
    tasks: list[HumanTask]
    total: int
    # The approvals in ``tasks`` this person has signed already (k of n: it waits for others).
    signed: frozenset[uuid.UUID]


class InboxQueries:
    """The open tasks and approvals of the signed-in person, of a kind their permissions let them act
    on: those assigned to them first, then those of a role they hold that nobody was assigned, each
    part oldest first (they have waited longest)."""

    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.tasks = TaskRepository(session, tenant)

    async def role_names(self) -> list[str]:
        principal = self.tenant.principal
        if principal.subject_kind is not SubjectKind.USER or principal.subject_id is None:
            return []
        owner = (User.org_kind == "customer") & (User.tenant_id == self.tenant.tenant_id)
        grants = await UserRepository(self.session, owner).grants(principal.subject_id)
        return sorted({g.role for g in grants})

    async def _where(self, every_role: bool) -> list[ColumnElement[bool]] | None:
        """Open tasks of the kinds the person may act on: assigned to them, or unassigned and asked of
        a role they hold; ``every_role``: every one (assigned to others too)."""
        kinds = task_kinds(self.tenant.principal.permissions)
        if not kinds:
            return None
        where = [HumanTask.status == "open", HumanTask.kind.in_(sorted(kinds))]
        if every_role:
            return where
        mine: list[ColumnElement[bool]] = []
        if self._me() is not None:
            mine.append(HumanTask.assignee == self._me())
        roles = task_roles(await self.role_names())
        if roles:
            mine.append(and_(HumanTask.assignee.is_(None), HumanTask.role.in_(sorted(roles))))
        if not mine:
            return None
        where.append(or_(*mine))
        return where

    def _me(self) -> uuid.UUID | None:
        principal = self.tenant.principal
        return principal.subject_id if principal.subject_kind is SubjectKind.USER else None

    async def count(self, *, every_role: bool = False) -> int:
        where = await self._where(every_role)
        return 0 if where is None else await self.tasks.count(*where)

    async def open(self, *, limit: int, offset: int, every_role: bool = False) -> Inbox:
        """The person's open tasks, those assigned to them first, then the rest, each part oldest first;
        ``every_role``: also those asked of roles they do not hold (someone covering a shift), still only
        of the kinds they may act on."""
        where = await self._where(every_role)
        if where is None:
            return Inbox([], 0, frozenset())
        me = self._me()
        first = HumanTask.assignee == me if me is not None else false()
        rows = list(await self.tasks.inbox(where, first, limit=limit, offset=offset))
        total = await self.tasks.count(*where)
        approvals = [t.id for t in rows if t.kind == "approval"]
        signed: frozenset[uuid.UUID] = frozenset()
        user_id = self.tenant.principal.subject_id
        if approvals and user_id is not None:
            mine = await DecisionRepository(self.session, self.tenant).list(
                ApprovalDecision.user_id == user_id, ApprovalDecision.task_id.in_(approvals), limit=len(approvals)
            )
            signed = frozenset(d.task_id for d in mine)
        return Inbox(rows, total, signed)
