"""Running Alembic from code (``andon db ...``, ``andon dev``, tests) without an alembic.ini."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

import andon
from andon.platform.config.settings import DatabaseSettings
from andon.platform.db.engine import create_engine

MIGRATIONS_DIR = Path(andon.__file__).resolve().parent / "migrations"
FILE_TEMPLATE = "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"


def alembic_config(url: str, output: io.StringIO | None = None) -> Config:
    cfg = Config(stdout=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", FILE_TEMPLATE)
    cfg.attributes["url"] = url
    return cfg


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(settings: DatabaseSettings, revision: str = "head") -> None:
    url = settings.owner_url
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)
    if settings.is_postgres and settings.app_role:
        asyncio.run(grant_app_role(settings))


def downgrade(settings: DatabaseSettings, revision: str) -> None:
    command.downgrade(alembic_config(settings.owner_url), revision)


def current(settings: DatabaseSettings) -> str:
    out = io.StringIO()
    command.current(alembic_config(settings.owner_url, out))
    return out.getvalue().strip() or "(no revision: run 'andon db upgrade')"


# The audit trail, usage and issued invoices are append-only for the application: it may read and
# add, never change or remove.
APPEND_ONLY_TABLES = ("audit_entries", "usage_records", "invoices", "invoice_lines")


async def grant_app_role(settings: DatabaseSettings) -> None:
    """Give the non-owner application role exactly the privileges it needs (PostgreSQL)."""
    role = settings.app_role
    if not role.replace("_", "").isalnum():
        raise ValueError(f"app role name {role!r} must be letters, digits and underscores")
    engine = create_engine(settings, url=settings.owner_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
            await conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
            await conn.execute(text(f'REVOKE ALL ON alembic_version FROM "{role}"'))
            for table in APPEND_ONLY_TABLES:
                await conn.execute(text(f'REVOKE UPDATE, DELETE ON {table} FROM "{role}"'))
            await conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    finally:
        await engine.dispose()
