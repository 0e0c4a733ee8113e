"""Server-side login sessions: a random cookie token, its hash stored; idle and absolute timeouts."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.keys import hash_key
from andon.platform.config.settings import SessionSettings
from andon.platform.db.types import utcnow
from andon.platform.identity.models import LoginSession, User
from andon.platform.identity.repository import IdentityLookup


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


async def open_session(
    session: AsyncSession,
    settings: SessionSettings,
    user: User,
    *,
    method: str,
    client: ClientInfo,
    stage: str = "active",
    idp_id: uuid.UUID | None = None,
    id_token: str | None = None,
    lifetime: timedelta | None = None,
) -> tuple[str, LoginSession]:
    """Returns the cookie token (shown to the browser once) and the stored session."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = LoginSession(
        token_hash=hash_key(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        method=method,
        stage=stage,
        idp_id=idp_id,
        id_token=id_token,
        ip=client.ip,
        user_agent=(client.user_agent or "")[:400] or None,
        last_seen_at=now,
        expires_at=now + (lifetime or timedelta(hours=settings.absolute_hours)),
    )
    await IdentityLookup(session).add(row)
    return token, row


async def resolve_session(
    session: AsyncSession, settings: SessionSettings, token: str, *, stage: str = "active"
) -> tuple[User, LoginSession] | None:
    """The live session behind a cookie token, or None (unknown, revoked, idle, expired, disabled)."""
    lookup = IdentityLookup(session)
    await lookup.enable()
    row = await lookup.session_by_hash(hash_key(token))
    now = utcnow()
    if (
        row is None
        or row.revoked_at is not None
        or row.stage != stage
        or row.expires_at <= now
        or row.last_seen_at + timedelta(minutes=settings.idle_minutes) <= now
    ):
        return None
    user = await lookup.user(row.user_id)
    if user is None or user.status != "active":
        return None
    if now - row.last_seen_at >= timedelta(seconds=settings.touch_seconds):
        await lookup.touch_session(row.id, now)
    return user, row
