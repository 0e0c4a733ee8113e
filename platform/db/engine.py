"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from andon.platform.config.settings import DatabaseSettings


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions start (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later writes can
        # deadlock against another writer instead of waiting for it.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_LOOPBACK = frozenset({None, "", "localhost", "127.0.0.1", "::1"})


def postgres_connect_args(url: str | URL) -> dict[str, Any]:
    """asyncpg's default (``prefer``) opens every connection with a TLS request and a second round
    trip. To a loopback address (or a Unix socket) that protects nothing, and a connect cancelled
    during that negotiation leaves a future whose error asyncpg never collects. So, unless the URL
    chooses ``ssl``/``sslmode`` itself, a local server is reached without TLS; any other host keeps
    asyncpg's default."""
    parsed = make_url(url) if isinstance(url, str) else url
    if "ssl" in parsed.query or "sslmode" in parsed.query:
        return {}
    return {"ssl": False} if parsed.host in _LOOPBACK else {}


def create_engine(
    settings: DatabaseSettings, *, url: str | None = None, pool_size: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """``pool_size``: at least this many pooled connections (a worker asks for one per thread, or
    connections beyond the pool are opened and closed again for every transaction). ``pre_ping``
    off saves a round trip per checkout; the first statement on a dropped connection then fails, and
    the engine discards the whole pool on that disconnect, so callers must be able to retry."""
    target = url or settings.url
    if target.startswith("sqlite"):
        engine = create_async_engine(target, echo=settings.echo)
        _configure_sqlite(engine)
        return engine
    size = max(settings.pool_size, pool_size or 0)
    return create_async_engine(
        target,
        echo=settings.echo,
        pool_size=size,
        max_overflow=size,
        pool_pre_ping=pre_ping,
        connect_args=postgres_connect_args(target),
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
