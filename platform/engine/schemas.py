"""API shapes of workflows, runs, steps and human tasks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,99}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Expression = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=2000)]


class WorkflowCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new workflow, or the next version of one (same key: the version counts up)."""

    key: Key
    name: Name
    definition: dict[str, Any]
    trigger_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    # CEL over ``event``, ``alert`` and ``params``; a run starts only when it is true.
    trigger_filter: Expression | None = None
    # More event types that start it; the filter sees ``event.type`` to tell them apart.
    also_triggered_by: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=255)]], msgspec.Meta(max_length=9)
    ] = []
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True


class WorkflowUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A version's definition never changes (runs keep it); these may."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    trigger_filter: Expression | msgspec.UnsetType | None = msgspec.UNSET
    params: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class DefinitionCheck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    definition: dict[str, Any]


class DefinitionVerdict(msgspec.Struct, kw_only=True):
    ok: bool
    errors: list[dict[str, str]]
    steps: int = 0


class WorkflowRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    version: int
    name: str
    trigger_type: str | None
    trigger_filter: str | None
    also_triggered_by: list[str]
    definition: dict[str, Any]
    params: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RunStart(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A run started by hand: what its steps see as ``event`` (and any other context), and the site
    it is for (whose shift calendar its escalation ladders page)."""

    event: dict[str, Any] = msgspec.field(default_factory=dict)
    site_id: uuid.UUID | None = None


class RunRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_key: str
    version: int
    status: str
    trigger_event_id: uuid.UUID | None
    alert_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    site_id: uuid.UUID | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


class StepRead(msgspec.Struct, kw_only=True):
    step_key: str
    kind: str
    status: str
    attempt: int
    wake: str | None
    inputs: Any
    output: Any
    error: str | None
    error_kind: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    correlation: str | None
    skip_reason: str | None


class TaskRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    run_id: uuid.UUID
    step_key: str
    kind: str
    title: str
    instructions: str
    role: str
    site_id: uuid.UUID | None
    status: str
    due_at: datetime | None
    outcome: Any
    note: str | None
    completed_by: str | None
    completed_at: datetime | None
    created_at: datetime
    required_approvals: int
    meaning: str | None
    requester: str | None
    reminders: int
    last_reminded_at: datetime | None
    # The one person who does it (a user id; None: anyone holding ``role``), who gave it to them and
    # when, and the assignee who handed it on to them.
    assignee: uuid.UUID | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    delegated_from: uuid.UUID | None = None


class RunDetail(msgspec.Struct, kw_only=True):
    run: RunRead
    context: dict[str, Any]
    definition: dict[str, Any]
    steps: list[StepRead]
    tasks: list[TaskRead]


class StepSkip(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Reason


class TaskComplete(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: dict[str, Any] = msgspec.field(default_factory=dict)
    note: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


Person = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]


class TaskAssign(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The task to one person (their e-mail or user id), who must hold its role; ``null``: back to the
    role (anyone holding it)."""

    assignee: Person | None


class TaskDelegate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The assignee hands the task on to another person holding its role, saying why."""

    to: Person
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class Decide(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An electronic signature: the decision, its reason, and the signer's password (people who sign
    in with their organisation's provider sign within five minutes of signing in instead)."""

    decision: Literal["approve", "reject"]
    reason: Reason
    password: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class DecisionRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    signer: str
    decision: str
    meaning: str
    reason: str
    method: str
    signed_at: datetime
    shown: dict[str, Any]
    shown_digest: str


class TaskDetail(msgspec.Struct, kw_only=True):
    task: TaskRead
    decisions: list[DecisionRead]


class RunAcknowledge(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class EscalationPageRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    number: int
    level: int
    repeat: int
    targets: list[dict[str, Any]]
    # Who was paged: [{"user_id", "email", "name", "via"}], as the targets resolved at ``paged_at``.
    paged: list[dict[str, Any]]
    paged_at: datetime
    # pending, sent, partial, failed, none (no channel); per channel: {"status", "attempts", "error", "at"}
    delivery: str
    delivery_detail: dict[str, Any] | None = None


class EscalationRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    run_id: uuid.UUID
    key: str
    status: str
    levels: list[dict[str, Any]]
    pages: int
    started_at: datetime
    next_page_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    finished_at: datetime | None
    sent: list[EscalationPageRead] = msgspec.field(default_factory=list)


class SlaDueRead(msgspec.Struct, kw_only=True):
    policy: str
    kind: str
    due_at: datetime
    # pending (not yet due), judged (the scheduler looked: see breaches), cancelled
    state: str


class SlaBreachRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    run_id: uuid.UUID
    incident_id: uuid.UUID | None
    site_id: uuid.UUID | None
    policy: str
    kind: str
    due_at: datetime
    breached_at: datetime
    alert_id: uuid.UUID | None


class RunEscalations(msgspec.Struct, kw_only=True):
    """A run's SLA due times and breaches, and its escalation ladders with every page sent."""

    run: RunRead
    sla: list[SlaDueRead]
    breaches: list[SlaBreachRead]
    escalations: list[EscalationRead]
