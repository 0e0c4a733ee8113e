"""Work that must wait until a request's transaction has committed (forgetting a cached view of the
data, say): done earlier, another request could re-read and keep the old rows."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "andon.after_commit"


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    session.info.setdefault(_KEY, []).append(action)


def run_after_commit(session: AsyncSession) -> None:
    for action in session.info.pop(_KEY, []):
        action()
