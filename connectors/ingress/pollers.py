"""The poll scheduler: fetches from the systems that cannot push (a REST endpoint with a cursor,
``poll_rest.py``; a drop folder, ``poll_folder.py``) on each connection's own schedule, resuming from
the stored cursor after a restart.

Claims. Every ``polling.tick_seconds`` it reads which polled connections are due (enabled, their
``next_poll_at`` passed), across customers, and claims each inside its own tenant: a short
transaction locks the row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite write transactions
exclude each other), checks that it is still due and moves ``next_poll_at`` to the end of a lease
(``polling.lease_seconds``). So two processes never poll one connection at once, and the connections
of a process that died are taken up by another once their leases run out. Each stored page or file
renews the lease, and every write names the lease it holds: a run that lost its connection writes
nothing (``poll_run.py``).

After a run the connection is due again ``interval_seconds`` later (at once when pages or files were
left for the next run). After a failure ``last_error`` says why and the wait doubles from the
interval up to ``polling.max_backoff_seconds``; a success clears it. The count of failures in a row
is kept by the process, so a restart starts the doubling afresh. Nothing is lost meanwhile: the
cursor stays where the last committed page left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.ingress.poll_folder import FolderPoller
from andon.connectors.ingress.poll_rest import RestPoller
from andon.connectors.ingress.poll_run import (
    Charge,
    LeaseLost,
    PollError,
    PollLimits,
    PollRun,
    PollStore,
    Throttled,
)
from andon.connectors.sources.intake import ConnectionIntake
from andon.connectors.sources.kinds import DropFolderConfig, RestPollConfig, parse_config
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError
from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.pollers")
# The interval assumed when a stored config no longer reads (the error says why).
FALLBACK_INTERVAL = 60
RELEASE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one run of a connection did."""

    connection_id: uuid.UUID
    kind: str
    deliveries: int
    new: int
    duplicates: int
    refused: int
    error: str | None
    # When the connection is due again; None when the run lost its claim and left it to another.
    next_poll_at: datetime | None


class PollScheduler(BackgroundLoop):
    task_name = "poll-scheduler"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        settings: Settings,
        *,
        on_events: Callable[[], None] | None = None,
        charge: Charge | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings.polling
        self.limits = PollLimits.from_settings(settings)
        self.store = PollStore(sessionmaker)
        self.intake = ConnectionIntake(sessionmaker)
        self.rest = RestPoller(box, self.limits)
        self.folders = FolderPoller(self.limits)
        # Called after a run stored new events (the outbox relay's wake).
        self.on_events = on_events
        self.charge = charge
        self.clock = clock
        self.lease_for = timedelta(seconds=self.settings.lease_seconds)
        self.failures: dict[uuid.UUID, int] = {}
        self._polls: set[asyncio.Task[PollReport]] = set()

    async def claim_due(self, limit: int) -> list[PollRun]:
        """Claims up to ``limit`` due connections for this process."""
        now = self.clock()
        suspended_retry = timedelta(seconds=self.settings.max_backoff_seconds)
        runs: list[PollRun] = []
        for due in await self.store.due(now, limit * 2):
            if len(runs) == limit:
                break
            lease = now + self.lease_for
            try:
                claimed = await self.store.claim(due, now, lease, suspended_retry=suspended_retry)
            except Exception as exc:  # one connection's trouble does not hold up the others
                log.warning("poll_claim_failed", connection_id=str(due.id), error=f"{type(exc).__name__}: {exc}")
                continue
            if claimed is not None:
                found, cursor = claimed
                runs.append(
                    PollRun(
                        found=found,
                        cursor=cursor,
                        lease=lease,
                        store=self.store,
                        intake=self.intake,
                        limits=self.limits,
                        lease_for=self.lease_for,
                        clock=self.clock,
                        charge=self.charge,
                        on_events=self.on_events,
                    )
                )
        return runs

    async def run_once(self) -> list[PollReport]:
        """Claims what is due now and polls all of it (at most ``polling.concurrency`` connections)."""
        runs = await self.claim_due(self.settings.concurrency)
        return list(await asyncio.gather(*(self.poll(run) for run in runs)))

    async def poll(self, run: PollRun) -> PollReport:
        """One run of a claimed connection, and its next turn."""
        found = run.found
        interval, delay, error = FALLBACK_INTERVAL, 0.0, None
        try:
            config = parse_config(found.kind, found.config)
            if isinstance(config, RestPollConfig):
                interval = config.interval_seconds
                more = await self.rest.run(run, config)
            elif isinstance(config, DropFolderConfig):
                interval = config.interval_seconds
                more = await self.folders.run(run, config)
            else:
                raise PollError(f"a {found.kind} connection is not polled")
            delay = 0.0 if more else float(interval)
        except LeaseLost:
            log.warning("poll_lease_lost", connection_id=str(found.id), tenant_id=str(found.tenant_id))
            return self._report(run, None, None)
        except Throttled as exc:
            delay = exc.retry_after
            log.info("poll_throttled", connection_id=str(found.id), retry_after=exc.retry_after)
        except PollError as exc:
            error = str(exc)
        except AndonError as exc:  # the stored config no longer reads
            error = exc.detail
        except asyncio.CancelledError:
            await self._release(run)
            raise
        except Exception as exc:
            log.exception("poll_crashed", connection_id=str(found.id), tenant_id=str(found.tenant_id))
            error = f"the poll stopped on an internal error ({type(exc).__name__}); it is tried again"
        if error is None:
            self.failures.pop(found.id, None)
            if run.deliveries:
                log.info(
                    "polled",
                    connection_id=str(found.id),
                    tenant_id=str(found.tenant_id),
                    deliveries=run.deliveries,
                    new=run.new,
                    duplicates=run.duplicates,
                    refused=run.refused,
                )
        else:
            failures = self.failures[found.id] = self.failures.get(found.id, 0) + 1
            delay = float(min(interval * 2 ** min(failures, 20), self.settings.max_backoff_seconds))
            log.info("poll_failed", connection_id=str(found.id), failures=failures, error=error, retry_in=delay)
        next_at = self.clock() + timedelta(seconds=delay)
        last_error = error[:500] if error else None
        try:
            kept = await self.store.save(found, run.lease, next_poll_at=next_at, last_error=last_error)
        except Exception as exc:  # the database is away: the lease runs out and the connection is polled again
            log.warning("poll_state_not_saved", connection_id=str(found.id), error=f"{type(exc).__name__}: {exc}")
            kept = False
        return self._report(run, error, next_at if kept else None)

    async def _release(self, run: PollRun) -> None:
        """A run cut short by shutdown: the connection is due again at once (for the next process)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.store.save(run.found, run.lease, next_poll_at=self.clock()), RELEASE_TIMEOUT)

    @staticmethod
    def _report(run: PollRun, error: str | None, next_at: datetime | None) -> PollReport:
        return PollReport(
            connection_id=run.found.id,
            kind=run.found.kind,
            deliveries=run.deliveries,
            new=run.new,
            duplicates=run.duplicates,
            refused=run.refused,
            error=error,
            next_poll_at=next_at,
        )

    async def run(self) -> None:
        """Claims due connections every tick while this process has room for them; each is polled in a
        task of its own, so a slow vendor holds up only its own connection."""
        while True:
            try:
                room = self.settings.concurrency - len(self._polls)
                if room > 0:
                    for run in await self.claim_due(room):
                        task = asyncio.get_running_loop().create_task(self.poll(run), name=f"poll-{run.found.id}")
                        self._polls.add(task)
                        task.add_done_callback(self._polled)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next tick
                log.warning("poll_schedule_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.settings.tick_seconds)

    def _polled(self, task: asyncio.Task[PollReport]) -> None:
        self._polls.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("poll_task_failed", error=repr(task.exception()))

    async def stop(self) -> None:
        await super().stop()
        polls = list(self._polls)
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
