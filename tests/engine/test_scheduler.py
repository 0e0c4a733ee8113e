"""Two scheduler processes fire 1,000 timers: each fires exactly once (one step message per timer
reaches the broker) and none is late by more than two seconds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import Settings
from andon.platform.db.ids import new_id
from andon.platform.db.scope import apply_principal_scope, enter_scheduler_mode
from andon.platform.engine.definition import compile_definition
from andon.platform.engine.executor import STEP_QUEUE
from andon.platform.engine.models import StepRun, Timer, Workflow, WorkflowRun
from andon.platform.engine.repository import RunRepository, StepRunRepository, TimerRepository, WorkflowRepository
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.engine.test_crash import _env, _spawn, stop
from tests.support.redis_server import purge_namespace
from tests.tenants.factories import World

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.postgres]
TIMERS = 1000


async def _arrange(sessionmaker: async_sessionmaker[AsyncSession], world: World, first: datetime) -> None:
    """1,000 runs, each waiting on a timer step; the timers fall due over five seconds."""
    system = system_principal(ALL_PERMISSIONS, "test")
    compiled = compile_definition({"steps": [{"key": "pause", "kind": "timer", "seconds": 5}]})
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        tenant = await CustomerService(session, system).open_tenant(world.a.customer.customer_id)
        assert tenant.partner_id is not None
        workflow = await WorkflowRepository(session, tenant).add(
            Workflow(key="timers", version=1, name="Timers", definition=compiled.to_builtins(), params={}, enabled=True)
        )
        runs = [
            WorkflowRun(
                id=new_id(),
                workflow_id=workflow.id,
                workflow_key="timers",
                version=1,
                definition=compiled.to_builtins(),
                status="running",
                context={"steps": {}},
                started_at=first,
            )
            for _ in range(TIMERS)
        ]
        await RunRepository(session, tenant).add_many(runs)
        await StepRunRepository(session, tenant).add_many(
            [
                StepRun(
                    id=new_id(),
                    run_id=run.id,
                    partner_id=tenant.partner_id,
                    step_key="pause",
                    kind="timer",
                    status="waiting",
                    attempt=1,
                    queued_at=first,
                )
                for run in runs
            ]
        )
        await TimerRepository(session, tenant).add_many(
            [
                Timer(
                    id=new_id(),
                    run_id=run.id,
                    partner_id=tenant.partner_id,
                    step_key="pause",
                    kind="timer",
                    attempt=1,
                    fire_at=first + timedelta(seconds=5 * n / TIMERS),
                )
                for n, run in enumerate(runs)
            ]
        )


async def test_two_schedulers_fire_each_timer_once_and_on_time(
    world: World, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    if not settings.redis.url:
        pytest.skip("needs ANDON_REDIS_URL: the schedulers send step messages to the broker")
    queue = f"{settings.redis.namespace}:{STEP_QUEUE}"
    client = redis.Redis.from_url(settings.redis.url)
    purge_namespace(settings.redis.url, settings.redis.namespace)
    log = tmp_path / "schedulers.log"
    schedulers = [_spawn("scheduler", _env(settings), log) for _ in range(2)]
    try:
        # Both processes are up, and the 3,000 rows committed, well before the first timer falls due.
        first = datetime.now(UTC) + timedelta(seconds=8)
        await _arrange(sessionmaker, world, first)
        assert datetime.now(UTC) < first, "arranging took longer than the head start"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            async with sessionmaker() as session, session.begin():
                await enter_scheduler_mode(session)
                pending = await session.scalar(select(func.count()).select_from(Timer).where(Timer.fired_at.is_(None)))
            if pending == 0:
                break
        assert all(s.poll() is None for s in schedulers), log.read_text()[-2000:]
    finally:
        stop(*schedulers)
        messages = client.hlen(f"{queue}.msgs")
        # The step messages have no worker here: gone, so the next test's drain does not wait on them.
        purge_namespace(settings.redis.url, settings.redis.namespace)

    async with sessionmaker() as session, session.begin():
        await enter_scheduler_mode(session)
        rows = (await session.execute(select(Timer.fire_at, Timer.fired_at))).all()
        woken = await session.scalar(select(func.count()).select_from(StepRun).where(StepRun.status == "queued"))
    late = sorted((fired - due).total_seconds() for due, fired in rows if fired is not None)
    print(f"\nscheduler test: {len(late)} fired, lateness p50 {late[len(late) // 2]:.3f} s, max {late[-1]:.3f} s")
    assert len(late) == TIMERS and woken == TIMERS
    assert messages == TIMERS, f"{messages} step messages for {TIMERS} timers"
    assert late[0] >= 0 and late[-1] <= 2.0
