"""A job that runs every so often beside the web app (or a worker process), and never takes it down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.periodic")


class Periodic(BackgroundLoop):
    def __init__(self, name: str, every: float, job: Callable[[], Awaitable[object]]) -> None:
        self.name = self.task_name = name
        self.every = every
        self.job = job
        self.runs = 0

    async def run(self) -> None:
        while True:
            try:
                await self.job()
                self.runs += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next turn
                log.warning("periodic_job_failed", job=self.name, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.every)
