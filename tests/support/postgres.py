"""PostgreSQL test databases: one per xdist worker, migrated as the owner, used as a non-owner role."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from andon.platform.config.settings import DatabaseSettings

APP_ROLE = "andon_app"
APP_PASSWORD = "andon_app"  # trust auth on loopback; the password only matters elsewhere


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def create_worker_database(admin_url: str, worker_id: str) -> DatabaseSettings:
    base = make_url(admin_url)
    name = f"{base.database or 'andon'}_{worker_id}".replace("-", "_")
    with psycopg.connect(_dsn(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Another worker may have made the role first.
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(APP_PASSWORD)
                )
            )
    owner = base.set(database=name).render_as_string(hide_password=False)
    app = base.set(database=name, username=APP_ROLE, password=APP_PASSWORD).render_as_string(hide_password=False)
    return DatabaseSettings(url=app, admin_url=owner, app_role=APP_ROLE, pool_size=5)


def truncate_all(settings: DatabaseSettings) -> None:
    with psycopg.connect(_dsn(settings.owner_url)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
