"""Request-scoped dependencies: the unit of work and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.after_commit import run_after_commit
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.errors import AuthenticationError
from andon.platform.tenancy.principal import Principal


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession], principal: Principal | None
) -> AsyncIterator[AsyncSession]:
    """One transaction in the caller's scope: committed once when the block succeeds, rolled back
    otherwise; actions registered with ``after_commit`` run after the commit."""
    async with sessionmaker() as session:
        if principal is not None:
            await apply_principal_scope(session, principal)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
            run_after_commit(session)


async def provide_db_session(request: Request[Any, Any, Any], state: State) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request (a handler that asks for ``db_session``)."""
    principal = request.scope.get("user")
    async with unit_of_work(state.sessionmaker, principal if isinstance(principal, Principal) else None) as session:
        yield session


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise AuthenticationError("authentication required")
    return principal


DEPENDENCIES = {
    "db_session": Provide(provide_db_session),
    "principal": Provide(provide_principal, sync_to_thread=False),
}
