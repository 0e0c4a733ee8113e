"""The usage collector: meters what the platform did from the rows it already writes.

Ingress, the engine and the connectors do not write usage on their hot paths. Every pass reads each
source (events, runs, finished steps, connector calls) past its mark, in (time, id) order, and
appends one record per fact with a key derived from the row (``event:<id>``): a pass repeated after
a crash appends nothing twice, and the mark moves in the same transaction as the records. A source
is read only up to ``lag`` ago, so a row whose transaction was still open when the pass began, with
an earlier time than rows already committed, is not passed over. Gauges (active assets, seats) are
counted once a day per customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.usage.repository import Mark, MeteringSweep
from andon.billing.usage.service import Usage, usage_row
from andon.platform.db.types import utcnow
from andon.platform.engine.models import FAILED, SUCCEEDED

log = structlog.get_logger("andon.metering")

BATCH = 2000
EXECUTED = frozenset({SUCCEEDED, FAILED})


def _site(site_id: uuid.UUID | None) -> dict[str, str]:
    return {"site": str(site_id)} if site_id else {}


def _from_event(row: tuple[Any, ...]) -> Iterable[Usage]:
    event_id, at, _tenant, _partner, site_id = row
    yield Usage("events.ingested", 1, f"event:{event_id}", at, _site(site_id))
    if site_id:
        # One record per site and day: the meter counts the distinct sites of the period.
        yield Usage("sites.active", 1, f"site:{site_id}:{at:%Y-%m-%d}", at, _site(site_id))


def _from_run(row: tuple[Any, ...]) -> Iterable[Usage]:
    run_id, at, _tenant, _partner, site_id, workflow_key = row
    yield Usage("runs.started", 1, f"run:{run_id}", at, {**_site(site_id), "template": workflow_key})


def _from_step(row: tuple[Any, ...]) -> Iterable[Usage]:
    step_id, at, _tenant, _partner, site_id, workflow_key, kind, status = row
    if status not in EXECUTED:
        return  # skipped or cancelled: nothing ran
    dimensions = {**_site(site_id), "template": workflow_key}
    # A step run again (its run retried) finishes again, later: each execution counts.
    finished = at.isoformat()
    yield Usage("steps.executed", 1, f"step:{step_id}:{finished}", at, dimensions)
    if kind == "action":
        yield Usage("actions.executed", 1, f"action:{step_id}:{finished}", at, dimensions)


def _from_call(row: tuple[Any, ...]) -> Iterable[Usage]:
    call_id, at, _tenant, _partner, capability, outcome = row
    yield Usage("connector.calls", 1, f"call:{call_id}", at, {"capability": capability})
    if capability == "notify" and outcome == "ok":
        yield Usage("notifications.sent", 1, f"notification:{call_id}", at, {})


Read = Callable[[MeteringSweep, Mark | None, datetime, int], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    read: Read
    meter: Callable[[tuple[Any, ...]], Iterable[Usage]]


SOURCES = (
    Source("events", MeteringSweep.events, _from_event),
    Source("runs", MeteringSweep.runs, _from_run),
    Source("steps", MeteringSweep.steps, _from_step),
    Source("calls", MeteringSweep.calls, _from_call),
)


async def _collect_batch(session: AsyncSession, source: Source, until: datetime, now: datetime) -> tuple[int, int]:
    """One batch of a source: (rows read, records appended)."""
    sweep = MeteringSweep(session)
    await sweep.enter()
    rows = await source.read(sweep, await sweep.mark(source.name), until, BATCH)
    if not rows:
        return 0, 0
    records: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for row in rows:
        for usage in source.meter(row):
            # Many events of a site on one day share its sites.active key: insert it once.
            records.setdefault((row[2], usage.idempotency_key), usage_row(usage, row[3], now) | {"tenant_id": row[2]})
    added = await sweep.append(list(records.values()))
    last = rows[-1]
    await sweep.save_mark(source.name, last[1], last[0])
    return len(rows), added


async def collect_gauges(session: AsyncSession, now: datetime) -> int:
    """Active assets and seats of every customer, once a day (the meters keep the period's last and
    largest value)."""
    sweep = MeteringSweep(session)
    await sweep.enter()
    day = f"{now:%Y-%m-%d}"
    records = []
    for tenant_id, partner_id, assets, seats in await sweep.gauges():
        for usage in (
            Usage("assets.active", assets, f"assets:{day}", now),
            Usage("seats", seats, f"seats:{day}", now),
        ):
            records.append(usage_row(usage, partner_id, now) | {"tenant_id": tenant_id})
    return await sweep.append(records)


async def collect_usage(
    sessionmaker: async_sessionmaker[AsyncSession], *, lag: timedelta, now: datetime | None = None
) -> int:
    """One pass over every source up to ``lag`` ago, batch by batch; the records appended."""
    now = now or utcnow()
    until = now - lag
    appended = 0
    for source in SOURCES:
        while True:
            async with sessionmaker() as session, session.begin():
                read, added = await _collect_batch(session, source, until, now)
            appended += added
            if read < BATCH:
                break
    async with sessionmaker() as session, session.begin():
        appended += await collect_gauges(session, now)
    if appended:
        log.info("usage_collected", records=appended)
    return appended
