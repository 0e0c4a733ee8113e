"""The raw ceiling: a bare Litestar app whose one endpoint does one INSERT of a row like an event.

No authentication, no tenant scope, no outbox: it parses the same body with msgspec, inserts one row
with ``ON CONFLICT DO NOTHING RETURNING id`` through an asyncpg pool (its own implicit transaction)
and answers 201. ``POST /noop`` answers 201 without touching the database: the client's ceiling.

Served by ``run.py`` as ``uvicorn benchmarks.ingress.baseline:app`` with ``BENCH_BASELINE_DSN`` set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec
from litestar import Litestar, Request, Response, post

TABLE = """
CREATE TABLE IF NOT EXISTS bench_events (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    source varchar(500) NOT NULL,
    event_id varchar(255) NOT NULL,
    type varchar(255) NOT NULL,
    severity varchar(10),
    data jsonb,
    raw bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, source, event_id)
)
"""
INSERT = (
    "INSERT INTO bench_events (id, tenant_id, source, event_id, type, severity, data, raw) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id"
)
TENANT = uuid.UUID("00000000-0000-0000-0000-00000000b007")


class Event(msgspec.Struct):
    id: str
    source: str
    type: str
    severity: str | None = None
    data: Any = None


class Accepted(msgspec.Struct):
    id: uuid.UUID
    event_id: str
    duplicate: bool


_decode = msgspec.json.Decoder(Event)


@asynccontextmanager
async def _pool(app: Litestar) -> AsyncIterator[None]:
    # The table is made by run.py before the server starts (several worker processes share it).
    pool = await asyncpg.create_pool(os.environ["BENCH_BASELINE_DSN"], min_size=4, max_size=20)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


@post("/events", status_code=201)
async def insert_event(request: Request[Any, Any, Any]) -> Response[Accepted]:
    body = await request.body()
    event = _decode.decode(body)
    row_id = await request.app.state.pool.fetchval(
        INSERT,
        uuid.uuid4(),
        TENANT,
        event.source,
        event.id,
        event.type,
        event.severity,
        msgspec.json.encode(event.data).decode(),
        body,
    )
    return Response(Accepted(row_id or uuid.UUID(int=0), event.id, row_id is None), status_code=201)


@post("/noop", status_code=201)
async def noop(request: Request[Any, Any, Any]) -> Response[Accepted]:
    await request.body()
    return Response(Accepted(uuid.UUID(int=0), "noop", False), status_code=201)


app = Litestar(route_handlers=[insert_event, noop], lifespan=[_pool], debug=False)
