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
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class WorkflowRun(TenantOwnedMixin, Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        # One run per workflow per triggering event, however often the event is processed.
        UniqueConstraint("tenant_id", "workflow_id", "trigger_event_id"),
        Index("ix_workflow_runs_tenant_status", "tenant_id", "status", "started_at"),
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


class StepRun(TenantOwnedMixin, Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "step_key"),
        Index("ix_step_runs_status_lease", "status", "lease_until"),
        Index("ix_step_runs_tenant_wait", "tenant_id", "wait_type", "status"),
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
    """A moment a step waits for: its retry, its timer, its timeout. Fired once, by one scheduler."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "fired_at", "fire_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    step_key: Mapped[str] = mapped_column(String(63), nullable=False)
    # retry, timer, timeout
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # The step attempt it wakes (a retry's timer wakes that attempt, and only it).
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


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
