"""SLA policies of a run: due times set when it starts, judged by the scheduler when they pass.

The first policy whose ``when`` holds for the trigger event applies. Each of its durations becomes a
timer (kind ``sla_<what>``, step key the policy's name, firing at the due time). When it fires, the
run is judged: acknowledged (the run, its alert or its incident), resolved (its incident or alert) or
coordinated (the run succeeded) by the due time, or a breach is recorded once, with an alert on the
run's incident.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.raised import raise_step_alert
from andon.platform.alerts.repository import AlertRepository, IncidentRepository
from andon.platform.engine.definition import Compiled, SlaPolicy
from andon.platform.engine.escalation import acknowledged_at
from andon.platform.engine.expressions import ExpressionError, evaluate
from andon.platform.engine.models import SLA_TIMERS, SlaBreach, Timer, WorkflowRun
from andon.platform.engine.repository import SlaBreachRepository, TimerRepository
from andon.platform.tenancy.context import TenantContext

_MISSED = {"acknowledge": "acknowledged", "resolve": "resolved", "coordinate": "coordinated"}


def policy_for(compiled: Compiled, context: dict[str, Any]) -> SlaPolicy | None:
    for policy in compiled.definition.sla:
        if policy.when is None:
            return policy
        try:
            if evaluate(policy.when, context):
                return policy
        except ExpressionError:
            continue  # a class that cannot read this event does not match it
    return None


async def start_clocks(
    session: AsyncSession, tenant: TenantContext, run: WorkflowRun, policy: SlaPolicy, now: datetime
) -> None:
    assert tenant.partner_id is not None
    timers = TimerRepository(session, tenant)
    for kind, seconds in policy.dues():
        await timers.add(
            Timer(
                run_id=run.id,
                partner_id=tenant.partner_id,
                step_key=policy.name,
                kind=SLA_TIMERS[kind],
                attempt=1,
                fire_at=now + timedelta(seconds=seconds),
            )
        )


async def met_at(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, kind: str) -> datetime | None:
    if kind == "acknowledge":
        return await acknowledged_at(session, tenant, run)
    if kind == "coordinate":
        return run.finished_at if run.status == "succeeded" else None
    found: list[datetime] = []
    if run.alert_id is not None:
        alert = await AlertRepository(session, tenant).get(run.alert_id)
        if alert is not None and alert.resolved_at is not None:
            found.append(alert.resolved_at)
    if run.incident_id is not None:
        incident = await IncidentRepository(session, tenant).get(run.incident_id)
        if incident is not None and incident.resolved_at is not None:
            found.append(incident.resolved_at)
    return min(found) if found else None


async def judge(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    *,
    policy: str,
    kind: str,
    due_at: datetime,
    now: datetime,
) -> SlaBreach | None:
    """The breach of ``kind`` due at ``due_at``, recorded now, or None when it was met in time (or a
    cancelled run owes nothing)."""
    if run.status == "cancelled":
        return None
    met = await met_at(session, tenant, run, kind)
    if met is not None and met <= due_at:
        return None
    breaches = SlaBreachRepository(session, tenant)
    breach = await breaches.record(
        {
            "run_id": run.id,
            "incident_id": run.incident_id,
            "site_id": run.site_id,
            "policy": policy,
            "kind": kind,
            "due_at": due_at,
            "breached_at": now,
        }
    )
    if breach is None:
        return None
    alert = await raise_step_alert(
        session,
        tenant,
        run_id=run.id,
        step_key=f"sla:{policy}:{kind}",
        title=f"{run.workflow_key}: SLA '{policy}' breached: not {_MISSED[kind]} by {due_at:%Y-%m-%d %H:%M} UTC",
        site_id=run.site_id,
        incident_id=run.incident_id,
        now=now,
    )
    breach.alert_id = alert.id
    await session.flush()
    return breach
