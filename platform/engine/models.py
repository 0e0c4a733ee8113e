"""The engine's durable state: workflows a tenant runs, their runs, each step's run, the side effects
steps performed, the timers that wake them and the tasks people do."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType, UTCDateTime

# Step statuses. A step is created queued; a worker claims it (running); it ends succeeded, failed,
# skipped or cancelled, or waits: scheduled (for a retry timer), waiting (for a timer, an event or a
# person). A timer, an event or a person puts a waiting step back in the queue.
QUEUED, RUNNING, SCHEDULED, WAITING = "queued", "running", "scheduled", "waiting"
SUCCEEDED, FAILED, SKIPPED, CANCELLED = "succeeded", "failed", "skipped", "cancelled"
STEP_DONE = frozenset({SUCCEEDED, SKIPPED, CANCELLED, FAILED})
# The error kind of a step cancelled because its run failed: it runs again if the run is retried.
HELD = "held"
STEP_PASSED = frozenset({SUCCEEDED, SKIPPED})
RUN_ACTIVE = frozenset({"running"})
# Timers of the run rather than of a step: a ladder's next page and an SLA's due time.
ESCALATION_TIMER = "escalation"
SLA_TIMERS = {"acknowledge": "sla_acknowledge", "resolve": "sla_resolve", "coordinate": "sla_coordinate"}
# A page's delivery, (re)tried: its ``ref_id`` is the page, its ``attempt`` the delivery attempt.
PAGE_TIMER = "page_delivery"
RUN_TIMERS = frozenset({ESCALATION_TIMER, PAGE_TIMER, *SLA_TIMERS.values()})
# Escalation statuses: paging, stopped by an acknowledgement, every level paged, or its run cancelled.
ACTIVE, ACKNOWLEDGED, EXHAUSTED = "active", "acknowledged", "exhausted"


class Workflow(TenantOwnedMixin, Base):
    """A workflow a tenant runs: its definition (one version), parameters and trigger."""

    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", "version"),
        Index("ix_workflows_tenant_trigger", "tenant_id", "trigger_type", "enabled"),
    )

    key: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The event type that starts a run, and a CEL filter over ``event`` and ``alert`` (None: every one).
    trigger_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    trigger_filter: Mapped[str | None] = mapped_column(Text, nullable=True)
    # More event types that start it (a template with several triggers), as ",type,type," so the
    # trigger lookup is one indexed column and one LIKE on both databases.
    more_trigger_types: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    @property
    def also_triggered_by(self) -> list[str]:
        return [t for t in (self.more_trigger_types or "").split(",") if t]


class WorkflowRun(TenantOwnedMixin, Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        # One run per workflow per triggering event, however often the event is processed.
        UniqueConstraint("tenant_id", "workflow_id", "trigger_event_id"),
        Index("ix_workflow_runs_tenant_status", "tenant_id", "status", "started_at"),
        # The usage collector reads every tenant's new runs in this order.
        Index("ix_workflow_runs_created_id", "created_at", "id"),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    workflow_key: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # The definition the run started with: a later version never changes a run under way.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    # running, succeeded, failed, cancelled
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    # What steps see: event, alert, params, run, and steps.<key> (each finished step's output).
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    trigger_event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who started it by hand (a user's id), or None for a run an event started.
    started_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Someone owns the run's problem: its ladders stop and its acknowledge SLA is met.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class StepRun(TenantOwnedMixin, Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "step_key"),
        Index("ix_step_runs_status_lease", "status", "lease_until"),
        Index("ix_step_runs_tenant_wait", "tenant_id", "wait_type", "status"),
        # The usage collector reads every tenant's finished steps in this order.
        Index("ix_step_runs_finished_id", "finished_at", "id"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workflow_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Carried for the messages that execute the step (a worker enters the tenant with both).
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    step_key: Mapped[str] = mapped_column(String(63), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=QUEUED)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Why a waiting step was queued again: retry, timer, timeout, event, task.
    wake: Mapped[str | None] = mapped_column(String(20), nullable=True)
    inputs: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(30), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A claimed step belongs to its worker until then; past it, the sweeper queues it again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # wait_for_event: the event type and correlation value the step waits for.
    wait_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    correlation: Mapped[str | None] = mapped_column(String(500), nullable=True)
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Effect(TenantOwnedMixin, Base):
    """A side effect a step performs, recorded before the call and completed after it: a crash in
    between retries with the same idempotency key, which the remote system deduplicates."""

    __tablename__ = "effects"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    step_key: Mapped[str] = mapped_column(String(63), nullable=False)
    capability: Mapped[str] = mapped_column(String(100), nullable=False)
    # started, completed
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    calls: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    request: Mapped[Any] = mapped_column(JSONType, nullable=True)
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Timer(TenantOwnedMixin, Base):
    """A moment a step waits for (its retry, its timer, its timeout), an SLA falls due or an
    escalation ladder pages its next level. Fired once, by one scheduler."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "fired_at", "fire_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    step_key: Mapped[str] = mapped_column(String(63), nullable=False)
    # retry, timer, timeout, remind; escalation and sla_* wake no step (see RUN_TIMERS).
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # The step attempt it wakes (a retry's timer wakes that attempt, and only it); for an escalation,
    # the number of the page it sends (1, 2, ...), so a stale timer cannot page twice.
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The escalation an ``escalation`` timer pages for.
    ref_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class HumanTask(TenantOwnedMixin, Base):
    """Work a person does for a run: a task step, or the fallback when a step's retries ran out."""

    __tablename__ = "human_tasks"
    __table_args__ = (Index("ix_human_tasks_tenant_status", "tenant_id", "status", "due_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    step_key: Mapped[str] = mapped_column(String(63), nullable=False)
    # task, fallback
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    instructions: Mapped[str] = mapped_column(Text, nullable=False, default="")
    role: Mapped[str] = mapped_column(String(100), nullable=False)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # open, done, cancelled
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[Any] = mapped_column(JSONType, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Approvals: how many must approve, what a signature means, who asked (and so may not approve).
    required_approvals: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    meaning: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requester: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reminders: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The one person (a user of the customer) who does it; None: anyone holding ``role``. Who gave it
    # to them and when, and the assignee who handed it on to them (a delegation), if one did.
    assignee: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    assigned_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delegated_from: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class ApprovalDecision(TenantOwnedMixin, Base):
    """One electronic signature on an approval: who, when, what it means, why, how they proved it
    was them, and what they were shown (kept, with its digest, as the evidence)."""

    __tablename__ = "approval_decisions"
    __table_args__ = (UniqueConstraint("task_id", "user_id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("human_tasks.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    signer: Mapped[str] = mapped_column(String(200), nullable=False)
    # approve, reject
    decision: Mapped[str] = mapped_column(String(10), nullable=False)
    meaning: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    # password, recent_sign_in
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    shown: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    shown_digest: Mapped[str] = mapped_column(String(64), nullable=False)


class Escalation(TenantOwnedMixin, Base):
    """One escalation ladder of a run: started with the run (key ``@run``) or by an ``escalate``
    step (its key). ``pages`` counts the pages sent; the next page's timer carries ``pages + 1``, and
    sending it is a compare-and-set on ``status`` and ``pages``, so an acknowledgement that commits
    first stops it even when the scheduler already claimed that timer."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("run_id", "key"), Index("ix_escalations_tenant_status", "tenant_id", "status"))

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workflow_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(63), nullable=False)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # The ladder as the definition gave it: [{"after", "targets", "repeat", "repeat_every"}].
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=ACTIVE)
    pages: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_page_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EscalationPage(TenantOwnedMixin, Base):
    """One level (or one repeat of it) paging its people: who they were at that moment, and how the
    page reached them through the ladder's notify channels (``engine/page_delivery.py``)."""

    __tablename__ = "escalation_pages"
    __table_args__ = (UniqueConstraint("escalation_id", "number"),)

    escalation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("escalations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    # The page's number in the ladder (1, 2, ...), its level (0-based) and repeat (0: the first page).
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    repeat: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    # [{"user_id", "email", "name", "via"}]: the people the targets named when the level fired.
    paged: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    paged_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # pending (being delivered or retried), sent, partial (some channels failed), failed, none (the
    # ladder names no channel: recorded only)
    delivery: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    # Per channel: {"ops_mail.notify": {"status", "attempts", "error", "at"}}.
    delivery_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    delivery_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # A worker delivering it holds it until then; past it, another may take it over.
    delivery_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The incident timeline entry that says who was paged, which the delivery's outcome completes.
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class SlaBreach(TenantOwnedMixin, Base):
    """A due time of a run's SLA policy that passed without the run being acknowledged, resolved or
    coordinated: when it was due, and when the scheduler found it breached."""

    __tablename__ = "sla_breaches"
    __table_args__ = (
        UniqueConstraint("run_id", "policy", "kind"),
        Index("ix_sla_breaches_tenant_breached", "tenant_id", "breached_at"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workflow_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    policy: Mapped[str] = mapped_column(String(63), nullable=False)
    # acknowledge, resolve, coordinate
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    breached_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The alert raised for it (on the run's incident, when it has one).
    alert_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
