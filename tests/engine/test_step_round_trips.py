"""The hot path's cost, pinned: the statements one action step sends to the database (claim, then
complete and queue the next step), on SQLite and on PostgreSQL, where the engine runs its own
statements on the transaction's asyncpg connection. A repeated message claims nothing, calls
nothing and writes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.config.settings import Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.engine.capabilities import Call, Capabilities
from andon.platform.engine.definition import compile_definition
from andon.platform.engine.executor import ENGINE, Executor, StepMessage, tenant_context
from andon.platform.engine.models import Effect, StepRun, Workflow
from andon.platform.engine.repository import EffectRepository, StepRunRepository, WorkflowRepository
from andon.platform.engine.runs import start_run
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio

# Claim: BEGIN, set_config, the claiming UPDATE ... FROM ... RETURNING (step and run), the effect's
# upsert, COMMIT. Complete: BEGIN, set_config, SELECT ... FOR UPDATE of the run, the step's
# compare-and-set, the effect's completion, the next step's insert, the run's context append, COMMIT.
POSTGRES_STATEMENTS = 13
# SQLite (no row-level security, COMMIT is not a statement here): the claim reads the run with a
# second statement; the rest as above.
SQLITE_STATEMENTS = 10


@pytest.fixture
async def worker_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on an engine made as a worker makes its own: no ping before each transaction."""
    engine = create_engine(settings.database, pre_ping=False)
    yield create_sessionmaker(engine)
    await engine.dispose()


@contextmanager
def counting(sessionmaker: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    """Every statement sent on the sessionmaker's engine: through SQLAlchemy's cursors, and (on
    PostgreSQL) straight on its asyncpg connections, BEGIN and COMMIT included."""
    engine = sessionmaker.kw["bind"].sync_engine
    statements: list[str] = []
    logged: set[int] = set()

    def cursor(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if hasattr(driver, "add_query_logger") and id(driver) not in logged:
            logged.add(id(driver))
            driver.add_query_logger(lambda query: statements.append(query.query))

    event.listen(engine, "before_cursor_execute", cursor)
    event.listen(engine, "checkout", checkout)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", cursor)
        event.remove(engine, "checkout", checkout)


async def test_an_action_step_takes_a_fixed_number_of_statements_and_a_repeat_none(
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_sessions: async_sessionmaker[AsyncSession],
    world: World,
    settings: Settings,
) -> None:
    tenant = tenant_context(world.a.customer.customer_id, world.a.partner_id)
    definition = {
        "steps": [
            {"key": "first", "kind": "action", "capability": "test.echo", "inputs": {"n": 1}, "next": "second"},
            {"key": "second", "kind": "action", "capability": "test.echo", "inputs": {"n": 2}},
        ]
    }
    messages: list[StepMessage] = []
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        workflow = await WorkflowRepository(session, tenant).add(
            Workflow(key="pinned", name="Pinned", version=1, definition=compile_definition(definition).to_builtins())
        )
        for _ in range(2):
            messages += (await start_run(session, tenant, workflow, {"event": {}}, utcnow()))[1]
    calls: list[Call] = []

    async def echo(call: Call) -> Any:
        calls.append(call)
        return {"ok": True}

    capabilities = Capabilities()
    capabilities.register("test.echo", echo)
    sent: list[StepMessage] = []

    async def send(batch: Any) -> None:
        sent.extend(batch)

    executor = Executor(worker_sessions, capabilities, send)
    await executor.run_step(messages[0])  # this process compiles the definition once, here
    with counting(worker_sessions) as statements:
        await executor.run_step(messages[1])
        await executor.run_step(messages[1])  # delivered twice
        await asyncio.sleep(0.01)  # asyncpg reports the statements it sent a moment later
    expected = POSTGRES_STATEMENTS if settings.database.is_postgres else SQLITE_STATEMENTS
    claimed_again = 4 if settings.database.is_postgres else 2  # BEGIN, set_config, the claim, COMMIT
    assert len(statements) == expected + claimed_again, "\n".join(statements)
    assert [c.idempotency_key for c in calls] == [f"andon:{m.run_id}:first" for m in messages]
    assert [(m.run_id, m.step_key, m.attempt) for m in sent] == [(m.run_id, "second", 1) for m in messages]
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        steps = StepRunRepository(session, tenant)
        first = await steps.by_key(messages[1].run_id, "first")
        second = await steps.by_key(messages[1].run_id, "second")
        effect = await EffectRepository(session, tenant).find(
            Effect.idempotency_key == f"andon:{messages[1].run_id}:first"
        )
    assert isinstance(first, StepRun) and isinstance(second, StepRun) and effect is not None
    assert (first.status, first.output, first.lease_until) == ("succeeded", {"ok": True}, None)
    assert (second.status, second.attempt) == ("queued", 1)
    assert (effect.status, effect.calls, effect.response) == ("completed", 1, {"ok": True})
    assert uuid.UUID(str(first.run_id)) == messages[1].run_id
