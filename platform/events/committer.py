"""Group commit: events of concurrent requests, accepted in shared transactions.

A request hands its validated events to the committer and waits. While a transaction is being
committed, the requests that arrive queue up; the next transaction takes all of them, for any
number of tenants: for each (caller, tenant) it sets the row-level-security scope of that caller,
opens the tenant through the one door (``open_tenant``) and accepts that group's events with
``EventIngress.accept`` (events and outbox rows together), then commits once. Each waiter is
answered only after that commit, so a 2xx still means "committed".

If the shared transaction fails, nothing of it was stored, and each request is retried in a
transaction of its own: every waiter gets its own outcome (its events, or its own error), so one bad
request never sinks the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.scope import apply_principal_scope
from andon.platform.events.envelope import CloudEvent
from andon.platform.events.ingress import Accepted, EventIngress, ResolvePlant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

log = structlog.get_logger("andon.events.committer")

# The tenants domain opens a tenant for a caller (its reach checked, the transaction bound to it).
OpenTenant = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[TenantContext]]


@dataclass(slots=True)
class _Request:
    principal: Principal
    tenant_id: uuid.UUID
    events: Sequence[CloudEvent]
    raw: list[bytes]
    channel: str
    connection_id: uuid.UUID | None
    answer: asyncio.Future[list[Accepted]] = field(repr=False)

    @property
    def group(self) -> tuple[Principal, uuid.UUID, str, uuid.UUID | None]:
        return self.principal, self.tenant_id, self.channel, self.connection_id


class GroupCommitter:
    """One per app. ``flushers`` transactions may be in flight at once, each of at most ``max_batch``
    requests; with nothing in flight a request is committed at once, alone (no added wait)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        open_tenant: OpenTenant,
        resolve_plant: ResolvePlant,
        *,
        flushers: int = 2,
        max_batch: int = 200,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.open_tenant = open_tenant
        self.resolve_plant = resolve_plant
        self.flushers = flushers
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._running: set[asyncio.Task[None]] = set()
        # What the last transactions held (for tests and tuning): requests per shared commit.
        self.batches = 0
        self.retried = 0

    async def accept(
        self,
        principal: Principal,
        tenant_id: uuid.UUID,
        events: Sequence[CloudEvent],
        *,
        channel: str,
        raw: Sequence[bytes] | None = None,
        connection_id: uuid.UUID | None = None,
    ) -> list[Accepted]:
        """``EventIngress.accept`` for ``principal`` inside ``tenant_id``, committed when this returns.

        Raises what opening the tenant or accepting raised for this request alone."""
        answer: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        kept = list(raw) if raw else [msgspec.json.encode(e) for e in events]
        self._queue.append(_Request(principal, tenant_id, events, kept, channel, connection_id, answer))
        self._start_flusher()
        return await answer

    def _start_flusher(self) -> None:
        if self._queue and len(self._running) < self.flushers:
            task = asyncio.get_running_loop().create_task(self._flush(), name="event-group-commit")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                await self._commit(batch)
            except BaseException as exc:  # cancelled at shutdown: no waiter may hang
                for request in batch:
                    _fail(request, RuntimeError(f"event intake stopped: {type(exc).__name__}"))
                raise

    async def _commit(self, batch: list[_Request]) -> None:
        self.batches += 1
        try:
            answers = await self._store(batch)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            # Nothing of the shared transaction was stored: each request again, on its own.
            self.retried += 1
            log.info("group_commit_retry", requests=len(batch), error=type(exc).__name__)
            for request in batch:
                try:
                    answer = (await self._store([request]))[0]
                except Exception as own:
                    _fail(request, own)
                else:
                    _answer(request, answer)
            return
        for request, answer in zip(batch, answers, strict=True):
            _answer(request, answer)

    async def _store(self, batch: list[_Request]) -> list[list[Accepted]]:
        groups: dict[tuple[Principal, uuid.UUID, str, uuid.UUID | None], list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.group, []).append(request)
        answers: dict[int, list[Accepted]] = {}
        async with self.sessionmaker() as session, session.begin():
            for (principal, tenant_id, channel, connection_id), requests in groups.items():
                # Each group in its caller's scope: the settings of the previous group are replaced.
                await apply_principal_scope(session, principal)
                tenant = await self.open_tenant(session, principal, tenant_id)
                accepted = await EventIngress(session, tenant, self.resolve_plant).accept(
                    [e for r in requests for e in r.events],
                    channel=channel,
                    raw=[b for r in requests for b in r.raw],
                    connection_id=connection_id,
                )
                start = 0
                for request in requests:
                    answers[id(request)] = accepted[start : start + len(request.events)]
                    start += len(request.events)
        return [answers[id(request)] for request in batch]


def _answer(request: _Request, accepted: list[Accepted]) -> None:
    if not request.answer.done():  # the caller may have gone (a dropped connection)
        request.answer.set_result(accepted)


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.answer.done():
        request.answer.set_exception(exc)
