"""Retention: raw payloads are kept for their period (to fix a mapping, or settle a dispute with a
vendor), then cleared while the normalised event stays; delivery-log lines go after theirs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.types import utcnow
from andon.platform.events.repository import RawPayloadSweep

log = structlog.get_logger("andon.retention")
# Small transactions: a sweep never holds many row locks against ingress.
BATCH = 2000

# One batch of a sweep: given a session, a cutoff and a limit, how many rows it cleared.
Expire = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def sweep(sessionmaker: async_sessionmaker[AsyncSession], expire: Expire, days: int, what: str) -> int:
    """Runs ``expire`` in batches until nothing older than ``days`` is left; the number cleared."""
    cutoff = utcnow() - timedelta(days=days)
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            cleared = await expire(session, cutoff, BATCH)
        total += cleared
        if cleared < BATCH:
            break
    if total:
        log.info("retention_swept", what=what, count=total, days=days)
    return total


async def expire_raw_payloads(sessionmaker: async_sessionmaker[AsyncSession], retention_days: int) -> int:
    async def expire(session: AsyncSession, cutoff: datetime, limit: int) -> int:
        return await RawPayloadSweep(session).expire(cutoff, limit)

    return await sweep(sessionmaker, expire, retention_days, "raw payloads")
