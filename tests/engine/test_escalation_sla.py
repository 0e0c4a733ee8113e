"""SLA policies on a fake clock: the first policy whose ``when`` matches the event sets the due times;
a due time that passes unmet is recorded once as a breach (when it was due, when it was found) with an
alert; met in time, nothing is recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.alerts.models import Alert
from andon.platform.alerts.repository import AlertRepository
from andon.platform.engine.repository import SlaBreachRepository
from tests.engine.test_escalation import FakeClock, base, in_tenant, scheduler, start, workflow
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
POLICIES = [
    {"name": "critical", "when": "event.severity == 'critical'", "acknowledge_within": 300, "coordinate_within": 900},
    {"name": "routine", "acknowledge_within": 3600},
]


async def test_an_unacknowledged_run_breaches_with_its_due_and_breach_times(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    made = await workflow(api, c, sla=POLICIES)
    started = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    clock = FakeClock(started)
    run_id = await start(sessionmaker, c, made, started)
    timers = scheduler(sessionmaker, clock)
    clock.advance(299)
    await timers.fire_due()
    assert (await api.get(f"{base(c)}/sla-breaches/", headers=auth(c.key))).json()["total"] == 0
    clock.advance(7)  # the scheduler finds it six seconds late
    await timers.fire_due()
    clock.advance(3600)
    await timers.fire_due()
    await timers.fire_due()

    seen = (await api.get(f"{base(c)}/runs/{run_id}/escalations", headers=auth(c.key))).json()
    assert {(d["policy"], d["kind"], d["state"]) for d in seen["sla"]} == {
        ("critical", "acknowledge", "judged"),
        ("critical", "coordinate", "judged"),
    }
    async with in_tenant(sessionmaker, c) as (session, ctx):
        breaches = {b.kind: b for b in await SlaBreachRepository(session, ctx).list()}
        assert set(breaches) == {"acknowledge", "coordinate"}
        ack = breaches["acknowledge"]
        assert ack.run_id == run_id and ack.policy == "critical"
        assert ack.due_at == datetime(2026, 11, 26, 8, 5, tzinfo=UTC)
        assert ack.breached_at == datetime(2026, 11, 26, 8, 5, 6, tzinfo=UTC)
        alert = await AlertRepository(session, ctx).get(ack.alert_id) if ack.alert_id else None
        assert isinstance(alert, Alert) and "SLA 'critical' breached: not acknowledged" in alert.title
        assert alert.site_id == c.site_id


async def test_acknowledging_in_time_records_no_breach(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    made = await workflow(api, c, sla=POLICIES)
    clock = FakeClock(datetime.now(UTC))
    critical = await start(sessionmaker, c, made, clock())
    routine = await start(sessionmaker, c, made, clock(), event={"severity": "low", "subject": "Label printer"})
    for run_id in (critical, routine):
        r = await api.post(f"{base(c)}/runs/{run_id}/acknowledge", headers=auth(c.key))
        assert r.status_code == 200, r.text
    timers = scheduler(sessionmaker, clock)
    clock.advance(4000)
    await timers.fire_due()

    routine_view = (await api.get(f"{base(c)}/runs/{routine}/escalations", headers=auth(c.key))).json()
    assert [(d["policy"], d["kind"], d["state"]) for d in routine_view["sla"]] == [
        ("routine", "acknowledge", "cancelled")
    ]
    async with in_tenant(sessionmaker, c) as (session, ctx):
        breaches = [(b.run_id, b.kind) for b in await SlaBreachRepository(session, ctx).list()]
    # The critical run was acknowledged in time but never coordinated: only that breach.
    assert breaches == [(critical, "coordinate")]


async def test_sla_policies_are_checked_when_the_workflow_is_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    r = await api.post(
        f"{base(c)}/workflows/check",
        headers=auth(c.key),
        json={
            "definition": {
                "steps": [{"key": "a", "kind": "set", "values": {"x": "1"}}],
                "sla": [
                    {"name": "x", "when": "event.severity ==", "acknowledge_within": 60},
                    {"name": "x"},
                    {"name": "y", "acknowledge_within": -1},
                ],
            }
        },
    )
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert errors == {"sla[2].acknowledge_within": "Expected `float` > 0.0"}
    r = await api.post(
        f"{base(c)}/workflows/check",
        headers=auth(c.key),
        json={
            "definition": {
                "steps": [{"key": "a", "kind": "set", "values": {"x": "1"}}],
                "sla": [{"name": "x", "when": "event.severity ==", "acknowledge_within": 60}, {"name": "x"}],
            }
        },
    )
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["sla[0].when", "sla[1].name", "sla[1]"]
