"""Shared fixtures: a migrated database per test (SQLite by default, PostgreSQL when
``ANDON_DATABASE_URL`` points at one), the app, an HTTP client, and two isolated tenants."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.config.settings import (
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    WorkerSettings,
)
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.http.app import create_app
from tests.support import postgres
from tests.support.browser import browser_on
from tests.tenants.factories import World, build_world

DATABASE_URL = os.environ.get("ANDON_DATABASE_URL", "")
REDIS_URL = os.environ.get("ANDON_REDIS_URL", "")
ON_POSTGRES = DATABASE_URL.startswith("postgresql")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="needs ANDON_DATABASE_URL=postgresql+asyncpg://..."))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DatabaseSettings:
    """Migrated once per test process; each test then gets a clean copy (SQLite) or truncation (PG)."""
    if ON_POSTGRES:
        settings = postgres.create_worker_database(DATABASE_URL, worker_id)
        migrate.upgrade(settings)
        return settings
    path = tmp_path_factory.mktemp("template") / "template.db"
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{path}")
    migrate.upgrade(settings)
    return settings


@pytest.fixture
def db_settings(db_template: DatabaseSettings, tmp_path: Path) -> Iterator[DatabaseSettings]:
    if ON_POSTGRES:
        postgres.truncate_all(db_template)
        yield db_template
        return
    template = Path(db_template.url.split(":///", 1)[1])
    target = tmp_path / "andon.db"
    shutil.copyfile(template, target)
    yield DatabaseSettings(url=f"sqlite+aiosqlite:///{target}")


@pytest.fixture
def settings(db_settings: DatabaseSettings, tmp_path: Path, worker_id: str) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path,
        log_level="WARNING",
        dev_mailbox=True,
        database=db_settings,
        # Each xdist worker has its own queues, so no worker takes another's messages.
        redis=RedisSettings(url=REDIS_URL, namespace=f"andon-test-{worker_id}"),
        # Tests drive the outbox relay and the worker themselves (tests/support/workers.py).
        workers=WorkerSettings(in_process=False),
        # Suites send faster than any customer would; the limit's own tests set it (test_limits.py).
        limits=LimitSettings(events_per_second=0),
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """For arranging and inspecting data directly. Its own engine: the test client runs the app's
    engine on another event loop, and pooled asyncpg connections are tied to their loop."""
    engine = create_engine(settings.database)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def api(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The API over ASGI in the test's own event loop (see ``tests/support/browser.py``)."""
    async with browser_on(app, "andon.test") as client:
        yield client


@pytest.fixture
async def world(sessionmaker: async_sessionmaker[AsyncSession]) -> World:
    """Two partners, each with one customer that has a full plant; keys for every org."""
    return await build_world(sessionmaker)
