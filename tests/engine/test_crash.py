"""Crash test: 200 runs of a six-step workflow on real worker processes (PostgreSQL + Redis), each
step calling a remote that deduplicates by idempotency key. A loop kills a worker with SIGKILL at
random moments and starts a new one. At the end every run is complete and the remote applied every
effect exactly once: none missing, none twice (repeats it absorbed are counted, not applied)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.config.settings import Settings
from andon.platform.db.scope import enter_scheduler_mode
from andon.platform.engine.models import StepRun, WorkflowRun
from tests.support.effects_fake import effects_fake
from tests.support.redis_server import purge_namespace
from tests.tenants.factories import World, auth

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.postgres]
RUNS, STEPS = 200, 6


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ANDON_ENVIRONMENT": "test",
        "ANDON_DATABASE_URL": settings.database.url,
        "ANDON_REDIS_URL": settings.redis.url,
        "ANDON_REDIS_NAMESPACE": settings.redis.namespace,
        "ANDON_LOG_LEVEL": "WARNING",
        "ANDON_WORKERS_THREADS": "8",
        # Short leases and sweeps, so a killed worker's steps are taken over in seconds.
        "ANDON_ENGINE_LEASE_SECONDS": "3",
        "ANDON_ENGINE_STALLED_AFTER_SECONDS": "10",
    }


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "andon.platform.cli.main", command], env=env, stdout=out, stderr=out)


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator would; whatever has not stopped in 15 s is killed."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _state(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessionmaker() as session, session.begin():
        await enter_scheduler_mode(session)  # step runs of every tenant, to count them
        steps = await session.execute(select(StepRun.status, func.count()).group_by(StepRun.status))
        return dict((str(status), int(n)) for status, n in steps.all())


async def test_killed_workers_lose_no_step_and_repeat_no_effect(
    api: httpx.AsyncClient,
    world: World,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    if not settings.redis.url:
        pytest.skip("needs ANDON_REDIS_URL: worker processes share the broker")
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    with effects_fake() as fake:
        steps = [
            {
                "key": f"s{n}",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{fake.url}/effect", "json": {"step": n, "run": "{{ run.id }}"}},
                "retry": {"initial_seconds": 0.2, "max_attempts": 10},
                # A short call keeps the lease short, so a killed worker's step is taken over soon.
                "timeout_seconds": 2,
                **({"next": f"s{n + 1}"} if n < STEPS else {}),
            }
            for n in range(1, STEPS + 1)
        ]
        r = await api.post(
            f"{base}/workflows/",
            headers=auth(c.key),
            json={"key": "crash", "name": "Crash", "definition": {"steps": steps}},
        )
        assert r.status_code == 201, r.text
        workflow_id = r.json()["id"]

        env = _env(settings)
        log = tmp_path / "processes.log"
        workers = [_spawn("worker", env, log) for _ in range(2)]
        scheduler = _spawn("scheduler", env, log)
        kills = 0
        try:
            for _ in range(RUNS):
                started = await api.post(f"{base}/workflows/{workflow_id}/runs", headers=auth(c.key), json={})
                assert started.status_code == 201, started.text
            deadline = time.monotonic() + 240
            rng = random.Random(7)
            began = time.monotonic()
            while time.monotonic() < deadline:
                # A worker takes about two seconds to boot: kill less often than that and the
                # workers would spend the test booting rather than being killed mid-step.
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                state = await _state(sessionmaker)
                if state.get("succeeded", 0) == RUNS * STEPS:
                    break
                if kills < 15:
                    victim = rng.randrange(len(workers))
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait()
                    kills += 1
                    workers[victim] = _spawn("worker", env, log)
            state = await _state(sessionmaker)
        finally:
            stop(*workers, scheduler)
            purge_namespace(settings.redis.url, settings.redis.namespace)

        async with sessionmaker() as session, session.begin():
            await enter_scheduler_mode(session)
            unfinished = await session.scalar(
                select(func.count()).select_from(WorkflowRun).where(WorkflowRun.status != "succeeded")
            )
        stats = fake.stats()
        elapsed = time.monotonic() - began
        print(f"\ncrash test: {kills} kills in {elapsed:.0f} s, steps {state}, remote {stats}")
        assert kills >= 5, "the loop must actually kill workers while runs are under way"
        assert state == {"succeeded": RUNS * STEPS}, (state, log.read_text()[-3000:])
        assert stats["applied"] == RUNS * STEPS, stats
        assert len(fake.applied) == RUNS * STEPS and all(n >= 1 for n in fake.attempts.values())
        assert unfinished == 0
