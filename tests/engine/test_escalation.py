"""Escalation ladders on a fake clock: levels page whoever the site's shift calendar has on duty when
they fire, an acknowledgement stops the ladder (even against a timer the scheduler already claimed),
repeats page again, partner support is reachable, and one tenant sees nothing of another's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.alerts.models import Alert, Incident
from andon.platform.alerts.raised import raise_step_alert
from andon.platform.alerts.repository import IncidentRepository
from andon.platform.alerts.service import AlertService
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.ids import new_id
from andon.platform.db.scope import apply_principal_scope
from andon.platform.engine.executor import StepMessage
from andon.platform.engine.models import Escalation, EscalationPage, WorkflowRun
from andon.platform.engine.repository import (
    EscalationPageRepository,
    EscalationRepository,
    RunRepository,
    SchedulerRepository,
    SlaBreachRepository,
    TimerRepository,
    WorkflowRepository,
)
from andon.platform.engine.run_timers import DeliverPages, RunTimers, SentPage
from andon.platform.engine.runs import start_run
from andon.platform.engine.scheduler import Scheduler
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.on_duty import duty_people
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
BERLIN = ZoneInfo("Europe/Berlin")
PASSWORD = "correct horse battery staple"
SUPERVISOR = {"role": "supervisor", "on_shift": True}


def base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def _no_send(messages: Sequence[StepMessage]) -> None:
    return None


def scheduler(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock, deliver: DeliverPages | None = None
) -> Scheduler:
    return Scheduler(sessionmaker, _no_send, clock=clock, run_timers=RunTimers(duty_people, deliver))


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2026, Berlin time (26 November is a Thursday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


async def member(api: httpx.AsyncClient, tenant: Tenant, name: str, role: str = "plant_supervisor") -> str:
    email = f"{name}-{uuid.uuid4().hex[:6]}@plant.example"
    r = await api.post(
        f"{base(tenant)}/users",
        headers=auth(tenant.key),
        json={"email": email, "display_name": name.title(), "password": PASSWORD, "grants": [{"role": role}]},
    )
    assert r.status_code == 201, r.text
    return email


async def roster(api: httpx.AsyncClient, tenant: Tenant, shifts: list[dict[str, Any]]) -> httpx.Response:
    return await api.patch(
        f"{base(tenant)}/shift-calendars/{tenant.shift_calendar_id}", headers=auth(tenant.key), json={"shifts": shifts}
    )


@dataclass
class Crew:
    early: str
    late: str
    night: str
    manager: str


async def crew(api: httpx.AsyncClient, tenant: Tenant) -> Crew:
    """Three supervisors on the site's Early, Late and Night shifts (every day) and a plant manager."""
    people = Crew(
        early=await member(api, tenant, "ana"),
        late=await member(api, tenant, "lee"),
        night=await member(api, tenant, "nia"),
        manager=await member(api, tenant, "max", role="customer_admin"),
    )
    r = await roster(
        api,
        tenant,
        [
            {"name": "Early", "start": "06:00", "end": "14:00", "roster": {"supervisor": [people.early]}},
            {"name": "Late", "start": "14:00", "end": "22:00", "roster": {"supervisor": [people.late]}},
            {"name": "Night", "start": "22:00", "end": "06:00", "roster": {"supervisor": [people.night]}},
        ],
    )
    assert r.status_code == 200, r.text
    return people


async def workflow(api: httpx.AsyncClient, tenant: Tenant, **definition: Any) -> dict[str, Any]:
    body = {"steps": [{"key": "note", "kind": "set", "values": {"noted": "true"}}], **definition}
    r = await api.post(
        f"{base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": f"esc-{uuid.uuid4().hex[:6]}", "name": "Escalation", "definition": body},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


@asynccontextmanager
async def in_tenant(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> AsyncIterator[tuple[AsyncSession, TenantContext]]:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        yield session, ctx


async def start(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    made: dict[str, Any],
    now: datetime,
    *,
    event: dict[str, Any] | None = None,
    alert: Alert | None = None,
) -> uuid.UUID:
    """A run started at the fake clock's ``now``, at the tenant's site."""
    async with in_tenant(sessionmaker, tenant) as (session, ctx):
        flow = await WorkflowRepository(session, ctx).get(uuid.UUID(made["id"]))
        assert flow is not None
        run, _ = await start_run(
            session,
            ctx,
            flow,
            {"event": event or {"severity": "critical", "subject": "Press 1 jammed"}, "alert": None},
            now,
            alert=alert,
            site_id=tenant.site_id,
        )
        return run.id


@dataclass
class Ladder:
    run: WorkflowRun
    escalations: list[Escalation]
    pages: list[EscalationPage]

    def paged(self) -> list[list[str]]:
        return [sorted(p["email"] for p in page.paged) for page in self.pages]


async def ladder(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, run_id: uuid.UUID) -> Ladder:
    async with in_tenant(sessionmaker, tenant) as (session, ctx):
        run = await RunRepository(session, ctx).get(run_id)
        assert run is not None
        escalations = list(await EscalationRepository(session, ctx).of_run(run_id))
        pages = list(await EscalationPageRepository(session, ctx).of_run(run_id))
        return Ladder(run, escalations, pages)


THREE_LEVELS = {
    "levels": [
        {"after": 300, "targets": [SUPERVISOR]},
        {"after": 1200, "targets": [SUPERVISOR]},
        {"after": 900, "targets": [{"partner_support": True}]},
    ]
}


async def test_acknowledging_at_level_two_stops_level_three_and_levels_follow_the_shift_change(
    app: Litestar, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    made = await workflow(api, c, escalation=THREE_LEVELS)
    # The app's scheduler pages through the plant's shift calendars.
    assert app.state.scheduler.run_timers.on_duty is duty_people
    clock = FakeClock(berlin(26, 13, 40))
    run_id = await start(sessionmaker, c, made, clock())
    timers = scheduler(sessionmaker, clock)

    clock.set(berlin(26, 13, 44))
    await timers.fire_due()
    assert (await ladder(sessionmaker, c, run_id)).pages == [], "level 1 is not due before 13:45"
    clock.set(berlin(26, 13, 45))
    await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert state.paged() == [[people.early]], "13:45 is the Early shift's"
    assert state.pages[0].level == 0 and state.pages[0].paged_at == berlin(26, 13, 45)

    clock.set(berlin(26, 14, 4))
    await timers.fire_due()
    assert len((await ladder(sessionmaker, c, run_id)).pages) == 1, "level 2 is due 20 minutes after level 1"
    clock.set(berlin(26, 14, 5))
    await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert state.paged() == [[people.early], [people.late]], "after 14:00 the Late supervisor is on duty"
    assert state.pages[1].paged[0]["via"] == "role supervisor, shift Late"

    r = await api.post(f"{base(c)}/runs/{run_id}/acknowledge", headers=auth(c.key), json={"note": "on my way"})
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_at"] is not None

    for minute in (20, 30, 59):
        clock.set(berlin(26, 14, minute))
        await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert [p.level for p in state.pages] == [0, 1], "level 3 never pages after the acknowledgement"
    [escalation] = state.escalations
    assert escalation.status == "acknowledged" and escalation.pages == 2 and escalation.acknowledged_by

    seen = (await api.get(f"{base(c)}/runs/{run_id}/escalations", headers=auth(c.key))).json()
    [read] = seen["escalations"]
    assert [[p["email"] for p in page["paged"]] for page in read["sent"]] == [[people.early], [people.late]]
    assert read["status"] == "acknowledged" and seen["breaches"] == []


async def test_an_acknowledgement_wins_over_a_timer_the_scheduler_already_claimed(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    await crew(api, c)
    made = await workflow(api, c, escalation=THREE_LEVELS)
    clock = FakeClock(berlin(26, 10, 0))
    run_id = await start(sessionmaker, c, made, clock())
    clock.set(berlin(26, 10, 5))

    claimed: list[Any] = []

    async def claim_only(session: AsyncSession, rows: Sequence[Any], now: datetime) -> None:
        claimed.extend(rows)

    # The scheduler claims the due timer (marks it fired) and is held up before it pages ...
    async with sessionmaker() as session, session.begin():
        repo = SchedulerRepository(session)
        await repo.enter()
        fired, _ = await repo.fire_due(clock(), 100, run_timers=claim_only)
    assert fired == 1 and [row.kind for row in claimed] == ["escalation"]
    # ... someone acknowledges meanwhile ...
    r = await api.post(f"{base(c)}/runs/{run_id}/acknowledge", headers=auth(c.key))
    assert r.status_code == 200, r.text
    # ... and the page it goes on to send finds the ladder stopped.
    async with sessionmaker() as session, session.begin():
        await SchedulerRepository(session).enter()
        await RunTimers(duty_people)(session, claimed, clock())
    state = await ladder(sessionmaker, c, run_id)
    assert state.pages == [] and state.escalations[0].status == "acknowledged"


async def test_acknowledging_the_incident_stops_the_ladder(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    made = await workflow(
        api,
        c,
        escalation={"levels": [{"after": 60, "targets": [{"user": people.manager}]}, *THREE_LEVELS["levels"]]},
    )
    clock = FakeClock(datetime.now(UTC))
    async with in_tenant(sessionmaker, c) as (session, ctx):
        incident = await IncidentRepository(session, ctx).add(
            Incident(title="Press 1 jammed", opened_at=clock(), site_id=c.site_id)
        )
        alert = await raise_step_alert(
            session,
            ctx,
            run_id=new_id(),
            step_key="jam",
            title="Press 1 jammed",
            site_id=c.site_id,
            incident_id=incident.id,
            now=clock(),
        )
    run_id = await start(sessionmaker, c, made, clock(), alert=alert)
    timers = scheduler(sessionmaker, clock)
    clock.advance(61)
    await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert state.paged() == [[people.manager]]
    assert state.pages[0].paged[0]["via"] == "user"

    async with in_tenant(sessionmaker, c) as (session, ctx):
        await AlertService(session, ctx).acknowledge(alert.id)  # the alerts' own path
    # Stopped by the acknowledgement itself, not when the next page's timer fires: the escalations
    # list shows it at once, and no timer is left to page.
    state = await ladder(sessionmaker, c, run_id)
    assert state.escalations[0].status == "acknowledged" and state.escalations[0].next_page_at is None
    async with in_tenant(sessionmaker, c) as (session, ctx):
        left = await TimerRepository(session, ctx).of_run(run_id, ["escalation"])
    assert [t.attempt for t in left if t.fired_at is None] == []
    seen = (await api.get(f"{base(c)}/runs/{run_id}/escalations", headers=auth(c.key))).json()
    assert [e["status"] for e in seen["escalations"]] == ["acknowledged"]
    clock.advance(3600)
    await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert len(state.pages) == 1, "no page after the incident was acknowledged"
    assert state.escalations[0].status == "acknowledged"
    assert state.run.acknowledged_at is not None and "alert acknowledged" in (state.run.acknowledged_by or "")


async def test_a_level_repeats_before_the_next_and_partner_support_is_paged_last(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    r = await api.post(
        f"/api/v1/partners/{world.a.partner_id}/users",
        headers=auth(world.a.key),
        json={
            "email": "help@alpha-msp.example",
            "display_name": "Alpha Help",
            "password": PASSWORD,
            "grants": [{"role": "partner_support"}],
        },
    )
    assert r.status_code == 201, r.text
    made = await workflow(
        api,
        c,
        escalation={
            "levels": [
                {"after": 0, "targets": [{"role": "supervisor", "on_shift": False}], "repeat": 2, "repeat_every": 120},
                {"after": 300, "targets": [{"partner_support": True}]},
            ]
        },
    )
    clock = FakeClock(berlin(27, 23, 0))
    run_id = await start(sessionmaker, c, made, clock())
    delivered: list[SentPage] = []

    async def deliver(pages: Sequence[SentPage]) -> None:
        delivered.extend(pages)

    timers = scheduler(sessionmaker, clock, deliver)
    for _ in range(8):
        await timers.fire_due()
        clock.advance(60)
    state = await ladder(sessionmaker, c, run_id)
    everyone = sorted([people.early, people.late, people.night])
    assert [(p.level, p.repeat) for p in state.pages] == [(0, 0), (0, 1), (0, 2)]
    assert state.paged() == [everyone] * 3, "on_shift: false pages the role on every shift"
    clock.advance(300)
    await timers.fire_due()
    state = await ladder(sessionmaker, c, run_id)
    assert state.paged()[3] == ["help@alpha-msp.example"] and state.pages[3].paged[0]["via"] == "partner support"
    assert state.escalations[0].status == "exhausted" and state.escalations[0].next_page_at is None
    # The ladder names no channel: its pages are recorded with nothing waiting to send them, and
    # the delivery hook is not handed them.
    assert [p.delivery for p in state.pages] == ["none"] * 4 and delivered == []


async def test_an_escalate_step_starts_a_ladder_from_inside_the_run(
    app: Litestar, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    definition = {
        "steps": [
            {
                "key": "raise_it",
                "kind": "escalate",
                "levels": [{"after": 30, "targets": [{"user": people.manager}]}],
                "next": "done",
            },
            {"key": "done", "kind": "set", "values": {"done": "true"}},
        ]
    }
    r = await api.post(
        f"{base(c)}/workflows/",
        headers=auth(c.key),
        json={"key": "raise-it", "name": "Raise it", "definition": definition},
    )
    assert r.status_code == 201, r.text
    started = await api.post(
        f"{base(c)}/workflows/{r.json()['id']}/runs",
        headers=auth(c.key),
        json={"event": {"subject": "Scrap rate over limit"}, "site_id": str(c.site_id)},
    )
    assert started.status_code == 201, started.text
    run_id = uuid.UUID(started.json()["id"])
    with running_worker(app):
        drain(app)
    state = await ladder(sessionmaker, c, run_id)
    assert state.run.status == "succeeded", "the step starts the ladder and the run goes on"
    [escalation] = state.escalations
    assert escalation.key == "raise_it" and escalation.status == "active" and state.pages == []
    clock = FakeClock(escalation.started_at + timedelta(seconds=31))
    await scheduler(sessionmaker, clock).fire_due()
    assert (await ladder(sessionmaker, c, run_id)).paged() == [[people.manager]]


async def test_another_tenant_sees_nothing_of_the_ladders_and_breaches(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer
    await crew(api, a)
    made = await workflow(api, a, escalation=THREE_LEVELS, sla=[{"name": "all", "acknowledge_within": 60}])
    clock = FakeClock(berlin(26, 9, 0))
    run_id = await start(sessionmaker, a, made, clock())
    clock.advance(400)
    await scheduler(sessionmaker, clock).fire_due()
    mine = (await api.get(f"{base(a)}/sla-breaches/", headers=auth(a.key))).json()
    assert mine["total"] == 1 and len((await ladder(sessionmaker, a, run_id)).pages) == 1

    assert (await api.get(f"{base(b)}/runs/{run_id}/escalations", headers=auth(b.key))).status_code == 404
    assert (await api.post(f"{base(b)}/runs/{run_id}/acknowledge", headers=auth(b.key))).status_code == 404
    assert (await api.get(f"{base(a)}/runs/{run_id}/escalations", headers=auth(b.key))).status_code == 404
    theirs = (await api.get(f"{base(b)}/sla-breaches/", headers=auth(b.key))).json()
    assert theirs["total"] == 0 and theirs["items"] == []
    async with in_tenant(sessionmaker, b) as (session, ctx):
        assert list(await EscalationRepository(session, ctx).list()) == []
        assert list(await EscalationPageRepository(session, ctx).list()) == []
        assert list(await SlaBreachRepository(session, ctx).list()) == []
    assert (await ladder(sessionmaker, a, run_id)).escalations[0].status == "active"


def _errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    ("ladder_def", "field", "says"),
    [
        ({"levels": []}, "escalation.levels", "length >= 1"),
        ({"levels": [{"after": -5, "targets": [SUPERVISOR]}]}, "escalation.levels[0].after", ">= 0"),
        ({"levels": [{"after": 5, "targets": [{"team": "x"}]}]}, "escalation.levels[0].targets[0]", "team"),
        (
            {"levels": [{"after": 5, "targets": [{"role": "supervisor", "user": "x@y.z"}]}]},
            "escalation.levels[0].targets[0]",
            "exactly one of role",
        ),
        ({"levels": [{"after": 5, "targets": [{}]}]}, "escalation.levels[0].targets[0]", "exactly one"),
        (
            {"levels": [{"after": 5, "targets": [SUPERVISOR], "repeat": 2}]},
            "escalation.levels[0].repeat_every",
            "needs repeat_every",
        ),
        (
            {"levels": [{"after": 5, "targets": [{"user": "nobody@plant.example"}]}]},
            "escalation.levels[0].targets[0].user",
            "no user 'nobody@plant.example'",
        ),
    ],
)
async def test_bad_ladders_are_refused_with_the_field_at_fault(
    api: httpx.AsyncClient, world: World, ladder_def: dict[str, Any], field: str, says: str
) -> None:
    c = world.a.customer
    r = await api.post(
        f"{base(c)}/workflows/",
        headers=auth(c.key),
        json={
            "key": "bad",
            "name": "Bad",
            "definition": {"steps": [{"key": "a", "kind": "set", "values": {"x": "1"}}], "escalation": ladder_def},
        },
    )
    errors = _errors(r)
    assert field in errors and says in errors[field], errors
    assert (await api.get(f"{base(c)}/workflows/", headers=auth(c.key))).json()["total"] == 0


async def test_an_escalate_step_with_a_bad_ladder_is_refused(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    r = await api.post(
        f"{base(c)}/workflows/check",
        headers=auth(c.key),
        json={"definition": {"steps": [{"key": "up", "kind": "escalate", "levels": [{"after": 1, "targets": []}]}]}},
    )
    assert r.status_code == 200 and r.json()["ok"] is False
    assert r.json()["errors"][0]["field"] == "steps[0].levels[0].targets"


async def test_rosters_name_only_people_of_the_customer(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    outsider = await member(api, b, "olga")
    r = await roster(
        api, a, [{"name": "Early", "start": "06:00", "end": "14:00", "roster": {"supervisor": [outsider]}}]
    )
    assert _errors(r) == {"shifts[0].roster.supervisor[0]": f"no user '{outsider}' in this customer"}
    mine = await member(api, a, "ana")
    r = await roster(
        api, a, [{"name": "Early", "start": "06:00", "end": "14:00", "roster": {"supervisor": [mine.upper()]}}]
    )
    assert r.status_code == 200, r.text
    assert r.json()["shifts"][0]["roster"] == {"supervisor": [mine.upper()]}
    r = await roster(api, a, [{"name": "Early", "start": "06:00", "end": "14:00", "roster": {"Bad Role": [mine]}}])
    assert _errors(r) == {"shifts[0].roster": "Expected `str` matching regex '^[a-z][a-z0-9_-]{0,62}$'"}
