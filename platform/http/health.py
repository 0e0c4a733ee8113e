"""Liveness (the process answers) and readiness (the database and the broker answer); the same checks,
and the migration state, feed the operator's platform health page."""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache
from typing import Any

import dramatiq
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from andon.platform.config.settings import DatabaseSettings
from andon.platform.db.engine import create_engine
from andon.platform.db.migrate import alembic_config
from andon.platform.workers.broker import broker_ready


async def check_database(engine: AsyncEngine) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
    except Exception as exc:  # readiness reports any failure instead of raising
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def check_broker(broker: dramatiq.Broker) -> dict[str, Any]:
    ok, detail = await asyncio.to_thread(broker_ready, broker)
    return {"ok": ok, "kind": detail}


@lru_cache(maxsize=1)
def head_revisions() -> tuple[str, ...]:
    """The newest revisions this build ships; they cannot change while the process runs."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config("")).get_heads()))


def _applied(conn: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


async def _applied_with(engine: AsyncEngine) -> tuple[str, ...]:
    async with engine.connect() as conn:
        return await asyncio.wait_for(conn.run_sync(_applied), timeout=2)


async def check_migrations(database: DatabaseSettings, engine: AsyncEngine) -> dict[str, Any]:
    """The revision the database is at against the one the code expects.

    On PostgreSQL the application's role may not read ``alembic_version`` (migrations belong to the
    schema owner), so when an owner URL is configured the version is read through it, briefly.
    """
    head = list(head_revisions())
    try:
        current = await _applied_with(engine)
    except DBAPIError as exc:
        if not database.admin_url or database.admin_url == database.url:
            return {"ok": False, "head": head, "current": None, "error": type(exc.orig).__name__}
        owner = create_engine(database, url=database.owner_url)
        try:
            current = await _applied_with(owner)
        except Exception as owner_exc:  # reported on the page, not raised
            return {"ok": False, "head": head, "current": None, "error": type(owner_exc).__name__}
        finally:
            await owner.dispose()
    except Exception as exc:  # a dead database is reported by the database check too
        return {"ok": False, "head": head, "current": None, "error": type(exc).__name__}
    return {"ok": list(current) == head, "head": head, "current": list(current)}


class HealthController(Controller):
    path = "/health"
    tags = ["Health"]
    include_in_schema = False

    @get("/live", opt={"public": True}, sync_to_thread=False)
    def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"public": True})
    async def ready(self, state: State) -> Response[dict[str, Any]]:
        checks = {"database": await check_database(state.engine), "broker": await check_broker(state.broker)}
        ok = all(c["ok"] for c in checks.values())
        return Response({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
