"""Migrations run down and up again on this test's database, and the models do not drift from them."""

from __future__ import annotations

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from andon.platform.config.settings import DatabaseSettings
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine
from andon.platform.db.models_registry import load_all_models

pytestmark = pytest.mark.anyio


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, load_all_models()))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def _sync(settings: DatabaseSettings, fn):  # type: ignore[no-untyped-def]
    engine = create_engine(settings, url=settings.owner_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


async def test_down_and_up_again(db_settings: DatabaseSettings) -> None:
    expected = {t.name for t in load_all_models().sorted_tables}
    assert await _sync(db_settings, _tables) == expected
    # Alembic runs its own event loop, so it goes to a worker thread.
    await anyio.to_thread.run_sync(migrate.downgrade, db_settings, "base")
    assert await _sync(db_settings, _tables) == set()
    assert "no revision" in await anyio.to_thread.run_sync(migrate.current, db_settings)
    await anyio.to_thread.run_sync(migrate.upgrade, db_settings)
    assert await _sync(db_settings, _tables) == expected
    assert (await anyio.to_thread.run_sync(migrate.current, db_settings)).endswith("(head)")


async def test_models_match_migrations(db_settings: DatabaseSettings) -> None:
    assert await _sync(db_settings, _diff) == []
