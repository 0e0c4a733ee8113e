"""The scheduler: fires due timers (a retry's delay, a timer step, a wait's timeout, a ladder's next
page, an SLA's due time) and sends again the steps whose message was lost or whose worker died.

Several schedulers may run at once: each claims due timers with ``FOR UPDATE SKIP LOCKED`` in a
short transaction that marks them fired and queues the steps they wake, so a timer fires once.
Messages are sent after the commit; one lost there leaves its step queued, and the sweep sends it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.types import utcnow
from andon.platform.engine.executor import Send, StepMessage
from andon.platform.engine.repository import SchedulerRepository
from andon.platform.engine.run_timers import RunTimers
from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.scheduler")
BATCH = 500


class Scheduler(BackgroundLoop):
    task_name = "scheduler"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        send: Send,
        *,
        tick: float = 0.2,
        sweep_every: float = 5.0,
        stalled_after: float = 30.0,
        run_timers: RunTimers | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.send = send
        # Pages escalation ladders and judges SLAs; its ``on_duty`` comes from the tenants domain.
        self.run_timers = run_timers or RunTimers()
        # Tests step a fake clock through shift changes and due times.
        self.clock = clock
        self.tick = tick
        self.sweep_every = sweep_every
        self.stalled_after = timedelta(seconds=stalled_after)
        self.fired = 0
        self.requeued = 0

    async def fire_due(self) -> int:
        """Fires one batch of due timers; how many fired."""
        now = self.clock()
        self.run_timers.begin_batch()
        async with self.sessionmaker() as session, session.begin():
            repo = SchedulerRepository(session)
            await repo.enter()
            fired, woken = await repo.fire_due(now, BATCH, run_timers=self.run_timers)
        await self.run_timers.after_commit()
        await self.send([StepMessage(s.tenant_id, s.partner_id, s.run_id, s.step_key, s.attempt) for s in woken])
        self.fired += fired
        return fired

    async def sweep(self) -> int:
        """Queues again the steps stuck queued (message lost) or running past their lease (worker died)."""
        now = self.clock()
        messages: list[StepMessage] = []
        async with self.sessionmaker() as session, session.begin():
            repo = SchedulerRepository(session)
            await repo.enter()
            for step in await repo.stalled(now, now - self.stalled_after, BATCH):
                if await repo.requeue(step, now):
                    messages.append(
                        StepMessage(step.tenant_id, step.partner_id, step.run_id, step.step_key, step.attempt)
                    )
        await self.send(messages)
        self.requeued += len(messages)
        if messages:
            log.info("steps_requeued", count=len(messages))
        return len(messages)

    async def run(self) -> None:
        last_sweep = time.monotonic()
        while True:
            try:
                while await self.fire_due() == BATCH:
                    pass
                if time.monotonic() - last_sweep >= self.sweep_every:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next tick
                log.warning("scheduler_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.tick)
