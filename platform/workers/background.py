"""Loops that run beside the web app or a worker process as one asyncio task each (the outbox relay,
the scheduler, pollers, MQTT subscriptions, periodic sweeps): started, and stopped by cancelling."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    task_name = "background"
    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
