"""Escalation ladders: ordered levels that page people until someone acknowledges.

A ladder is one ``escalations`` row and one timer at a time: the timer of page ``n`` (its
``attempt``) fires, page ``n`` is taken by compare-and-set on the ladder (still active, ``n - 1``
pages sent), the level's targets are resolved as they are at that moment (the shift on duty now),
the page is recorded and the timer of page ``n + 1`` is set. An acknowledgement flips the ladder to
acknowledged in its own transaction; whichever commits first wins, so no page follows an
acknowledgement even when the scheduler had already claimed the timer. Acknowledging the run's alert
or incident stops its ladders in that same transaction (``acknowledged_elsewhere``).

A page goes out through the channels its level names (``notify``): a worker delivers it once the
page committed (``page_delivery``), never inside the scheduler's transaction; a page of a level
without channels is recorded with delivery ``none``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.models import IncidentEntry
from andon.platform.alerts.repository import AlertRepository, IncidentEntryRepository, IncidentRepository
from andon.platform.db.ids import new_id
from andon.platform.engine.definition import EscalationLevel
from andon.platform.engine.duty import OnDuty, resolve_targets
from andon.platform.engine.models import (
    ACKNOWLEDGED,
    ACTIVE,
    CANCELLED,
    ESCALATION_TIMER,
    EXHAUSTED,
    PAGE_TIMER,
    SLA_TIMERS,
    Escalation,
    EscalationPage,
    Timer,
    WorkflowRun,
)
from andon.platform.engine.repository import (
    EscalationPageRepository,
    EscalationRepository,
    RunRepository,
    TimerRepository,
)
from andon.platform.tenancy.context import TenantContext

# The key of the ladder a definition starts with its run (step keys cannot start with "@").
RUN_LADDER = "@run"
# A page's delivery: being delivered (or retried), or nothing to deliver (no channel named).
PENDING, NONE = "pending", "none"
# How long after a page its scheduler timer looks whether a worker delivered it.
DELIVERY_GRACE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Slot:
    """One page of a ladder: its level, which repeat of the level, and the wait before it."""

    level: int
    repeat: int
    delay: float


def schedule(levels: Sequence[EscalationLevel]) -> list[Slot]:
    slots: list[Slot] = []
    for index, level in enumerate(levels):
        slots.append(Slot(index, 0, level.after))
        slots += [Slot(index, r, level.repeat_every or 0.0) for r in range(1, level.repeat + 1)]
    return slots


def levels_of(escalation: Escalation) -> list[EscalationLevel]:
    return msgspec.convert(escalation.levels, list[EscalationLevel])


async def ladder_notify(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, key: str) -> list[str]:
    """The channels the definition gives ladder ``key`` of the run (its ``escalation`` or the
    ``escalate`` step of that key), from the definition the run started with."""
    definition = run.__dict__.get("definition")
    if definition is None:  # a run read without it (``RunRepository.locked``)
        definition = await RunRepository(session, tenant).definition(run.id) or {}
    if key == RUN_LADDER:
        policy = definition.get("escalation") or {}
        return list(policy.get("notify") or [])
    for step in definition.get("steps") or []:
        if step.get("key") == key:
            return list(step.get("notify") or [])
    return []


async def start_ladder(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    key: str,
    levels: Sequence[EscalationLevel],
    now: datetime,
    *,
    escalation_id: uuid.UUID | None = None,
    notify: Sequence[str] | None = None,
) -> Escalation:
    """The ladder started; each level keeps the channels it pages through (its own ``notify``, or
    the ladder's: ``notify``, by default as the run's definition gives it)."""
    first = now + timedelta(seconds=schedule(levels)[0].delay)
    channels = list(notify) if notify is not None else await ladder_notify(session, tenant, run, key)
    stored = []
    for level in levels:
        built = msgspec.to_builtins(level)
        built["notify"] = list(level.notify) if level.notify is not None else channels
        stored.append(built)
    escalation = await EscalationRepository(session, tenant).add(
        Escalation(
            id=escalation_id or new_id(),
            run_id=run.id,
            key=key,
            site_id=run.site_id,
            incident_id=run.incident_id,
            alert_id=run.alert_id,
            levels=stored,
            pages=0,
            started_at=now,
            next_page_at=first,
        )
    )
    await _arm(session, tenant, escalation, 1, first)
    return escalation


async def _arm(session: AsyncSession, tenant: TenantContext, escalation: Escalation, number: int, at: datetime) -> None:
    assert tenant.partner_id is not None
    await TimerRepository(session, tenant).add(
        Timer(
            run_id=escalation.run_id,
            partner_id=tenant.partner_id,
            step_key=escalation.key[:63],
            kind=ESCALATION_TIMER,
            attempt=number,
            fire_at=at,
            ref_id=escalation.id,
        )
    )


async def acknowledge_run(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    by: str,
    now: datetime,
    *,
    started_by: datetime | None = None,
) -> list[uuid.UUID]:
    """Someone owns the run's problem (at ``now``): its acknowledge SLA is met and its active ladders
    stop (only those started by ``started_by``, when given), their pending pages with them. The
    ladders stopped."""
    if run.acknowledged_at is None:
        run.acknowledged_at, run.acknowledged_by = now, by
    stopped = await EscalationRepository(session, tenant).stop(run.id, ACKNOWLEDGED, now, by=by, started_by=started_by)
    timers = TimerRepository(session, tenant)
    if stopped:
        await timers.cancel_run_timers(run.id, [ESCALATION_TIMER], now, refs=stopped)
    # Only the ones not yet due: one already due judges a late acknowledgement as a breach.
    await timers.cancel_run_timers(run.id, [SLA_TIMERS["acknowledge"]], now, due_after=now)
    return stopped


async def end_run_ladder(session: AsyncSession, tenant: TenantContext, run: WorkflowRun, now: datetime) -> None:
    """The run succeeded: the problem its definition's ladder pages about is over (the asset runs
    again, the handover was acknowledged), so that ladder stops without paging again. A ladder an
    ``escalate`` step started goes on until someone acknowledges it, as that step promises."""
    stopped = await EscalationRepository(session, tenant).stop(run.id, CANCELLED, now, by=None, key=RUN_LADDER)
    if stopped:
        await TimerRepository(session, tenant).cancel_run_timers(run.id, [ESCALATION_TIMER], now, refs=stopped)


async def acknowledged_elsewhere(
    session: AsyncSession,
    tenant: TenantContext,
    by: str,
    now: datetime,
    *,
    alert_id: uuid.UUID | None = None,
    incident_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """The alert (or the incident) was acknowledged (at ``now``, in the caller's transaction): the
    ladders of the runs it started stop at once, as acknowledging those runs would stop them. The
    ladders stopped."""
    where = []
    if alert_id is not None:
        where.append(Escalation.alert_id == alert_id)
    if incident_id is not None:
        where.append(Escalation.incident_id == incident_id)
    if not where:
        return []
    active = await EscalationRepository(session, tenant).list(or_(*where), Escalation.status == ACTIVE, limit=1000)
    runs = RunRepository(session, tenant)
    stopped: list[uuid.UUID] = []
    for run_id in sorted({ladder.run_id for ladder in active}):
        if not await runs.lock(run_id):
            continue
        run = await runs.for_update(run_id)
        if run is not None:
            stopped += await acknowledge_run(session, tenant, run, by, now, started_by=now)
    return stopped


async def incident_acknowledged(
    session: AsyncSession, tenant: TenantContext, run: WorkflowRun
) -> tuple[datetime, str] | None:
    """When the run's alert or incident was first acknowledged (the alerts' own path), and by whom."""
    found: list[tuple[datetime, str]] = []
    if run.alert_id is not None:
        alert = await AlertRepository(session, tenant).get(run.alert_id)
        if alert is not None and alert.acknowledged_at is not None:
            found.append((alert.acknowledged_at, f"alert acknowledged by {alert.acknowledged_by or 'someone'}"))
    if run.incident_id is not None:
        incident = await IncidentRepository(session, tenant).get(run.incident_id)
        if incident is not None and incident.acknowledged_at is not None:
            found.append((incident.acknowledged_at, "incident acknowledged"))
    return min(found, key=lambda item: item[0]) if found else None


async def acknowledged_at(session: AsyncSession, tenant: TenantContext, run: WorkflowRun) -> datetime | None:
    """The run's first acknowledgement: of the run itself, or of its alert or incident."""
    found = [run.acknowledged_at] if run.acknowledged_at is not None else []
    elsewhere = await incident_acknowledged(session, tenant, run)
    if elsewhere is not None:
        found.append(elsewhere[0])
    return min(found) if found else None


async def send_page(
    session: AsyncSession,
    tenant: TenantContext,
    run: WorkflowRun,
    escalation_id: uuid.UUID,
    number: int,
    now: datetime,
    on_duty: OnDuty,
) -> EscalationPage | None:
    """Page ``number`` of the ladder, if it is still due: the page recorded, or None when the ladder
    was acknowledged (here or through the incident), cancelled, or this page already went."""
    ladders = EscalationRepository(session, tenant)
    escalation = await ladders.get(escalation_id)
    if escalation is None:
        return None
    # Acknowledging the run stops its ladders at once; acknowledging its alert or incident is seen
    # here, and stops the ladders that were running by then (a later ``escalate`` step starts a fresh
    # one on purpose).
    ack = await incident_acknowledged(session, tenant, run)
    if ack is not None and ack[0] >= escalation.started_at:
        await acknowledge_run(session, tenant, run, ack[1], ack[0], started_by=ack[0])
        return None
    levels = levels_of(escalation)
    slots = schedule(levels)
    if not 1 <= number <= len(slots):
        return None
    following = slots[number] if number < len(slots) else None
    next_at = now + timedelta(seconds=following.delay) if following else None
    ending: dict[str, Any] = {"next_page_at": next_at}
    if following is None:
        ending.update(status=EXHAUSTED, finished_at=now)
    if not await ladders.take_page(escalation.id, number, **ending):
        return None
    slot = slots[number - 1]
    people, targets = await resolve_targets(
        session, tenant, levels[slot.level].targets, site_id=escalation.site_id, at=now, on_duty=on_duty
    )
    page = await EscalationPageRepository(session, tenant).add(
        EscalationPage(
            escalation_id=escalation.id,
            run_id=run.id,
            number=number,
            level=slot.level,
            repeat=slot.repeat,
            targets=targets,
            paged=[p.to_json() for p in people],
            paged_at=now,
            # A worker delivers it once this commits (``page_delivery``); without channels it is the
            # record of who was paged, and nothing waits to send it.
            delivery=PENDING if levels[slot.level].notify else NONE,
        )
    )
    if next_at is not None:
        await _arm(session, tenant, escalation, number + 1, next_at)
    if levels[slot.level].notify:
        await arm_delivery(session, tenant, page, 1, now + DELIVERY_GRACE, now)
    if escalation.incident_id is not None:
        names = ", ".join(p.name for p in people) or "nobody (no one matched the level's targets)"
        entry = await IncidentEntryRepository(session, tenant).add(
            IncidentEntry(
                incident_id=escalation.incident_id,
                at=now,
                kind="escalation",
                text=f"Escalation level {slot.level + 1}"
                + (f" (repeat {slot.repeat})" if slot.repeat else "")
                + f" paged {names}"
                + ("" if levels[slot.level].notify else " (no notify channel: recorded only)"),
                actor="escalation ladder",
            )
        )
        page.entry_id = entry.id
    return page


async def arm_delivery(
    session: AsyncSession, tenant: TenantContext, page: EscalationPage, attempt: int, at: datetime, now: datetime
) -> None:
    """The page's delivery (attempt ``attempt``) is (re)tried at ``at`` by the scheduler, unless a
    worker delivered it by then: the worker's own message normally comes first; this timer is what
    is left when that message or its worker was lost, and what spaces out the retries."""
    assert tenant.partner_id is not None
    timers = TimerRepository(session, tenant)
    await timers.cancel_run_timers(page.run_id, [PAGE_TIMER], now, refs=[page.id])
    await timers.add(
        Timer(
            run_id=page.run_id,
            partner_id=tenant.partner_id,
            step_key=f"@page{page.number}",
            kind=PAGE_TIMER,
            attempt=attempt,
            fire_at=at,
            ref_id=page.id,
        )
    )
