"""All SQL of identity: users and grants (scoped to an org node), sessions, flows, tokens, outbox.

Lookups that happen before anyone is known (a session cookie, an e-mail at login, a callback's
``state``) go through ``IdentityLookup``, the identity twin of the API key lookup.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.scope import allow_auth_lookup, lookup_window
from andon.platform.identity.models import (
    IdentityProvider,
    LoginFlow,
    LoginSession,
    OneTimeToken,
    OutboundEmail,
    RoleGrant,
    User,
)
from andon.platform.tenancy.principal import Principal


class IdentityLookup:
    """Unscoped reads for authentication only (see ``db/scope.allow_auth_lookup``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enable(self) -> None:
        await allow_auth_lookup(self.session)

    async def user_by_email(self, email: str) -> User | None:
        stmt = select(User).where(func.lower(User.email) == email.lower())  # andon: unscoped-ok (login)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def user(self, user_id: uuid.UUID) -> User | None:
        return (await self.session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()

    async def user_by_subject(self, idp_id: uuid.UUID, subject: str) -> User | None:
        stmt = select(User).where(User.idp_id == idp_id, User.idp_subject == subject)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def grants(self, user_id: uuid.UUID) -> Sequence[RoleGrant]:
        return (await self.session.execute(select(RoleGrant).where(RoleGrant.user_id == user_id))).scalars().all()

    async def session_by_hash(self, token_hash: str) -> LoginSession | None:
        stmt = select(LoginSession).where(LoginSession.token_hash == token_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def touch_session(self, session_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(update(LoginSession).where(LoginSession.id == session_id).values(last_seen_at=at))

    async def idp(self, idp_id: uuid.UUID) -> IdentityProvider | None:
        stmt = select(IdentityProvider).where(IdentityProvider.id == idp_id, IdentityProvider.enabled.is_(True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def idp_for_machines(self, issuer: str, audiences: Sequence[str]) -> IdentityProvider | None:
        """The one provider with this issuer whose API audience the token names (the pair is unique)."""
        if not audiences:
            return None
        stmt = select(IdentityProvider).where(
            IdentityProvider.issuer == issuer,
            IdentityProvider.enabled.is_(True),
            IdentityProvider.api_audience.in_(list(audiences)),
        )
        return (await self.session.execute(stmt.limit(1))).scalar_one_or_none()

    async def claims_elsewhere(
        self,
        idp_id: uuid.UUID | None,
        *,
        domains: Sequence[str],
        hosts: Sequence[str],
        issuer: str,
        api_audience: str | None,
    ) -> list[str]:
        """What another organisation's provider already claims of these: domains, hosts, machine target."""
        clashes: list[str] = []
        async with lookup_window(self.session):
            others = await self.idps(include_disabled=True)
        for other in others:
            if other.id == idp_id:
                continue
            clashes += [f"e-mail domain {d}" for d in domains if d in other.email_domains]
            clashes += [f"host {h}" for h in hosts if h in other.hosts]
            if api_audience and other.issuer == issuer and other.api_audience == api_audience:
                clashes.append(f"machine audience {api_audience} of issuer {issuer}")
        return clashes

    async def idps(self, *, include_disabled: bool = False) -> Sequence[IdentityProvider]:
        stmt = select(IdentityProvider)
        if not include_disabled:
            stmt = stmt.where(IdentityProvider.enabled.is_(True))
        return (await self.session.execute(stmt)).scalars().all()

    async def flow_by_state(self, state: str) -> LoginFlow | None:
        stmt = select(LoginFlow).where(LoginFlow.state == state).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def token(self, purpose: str, token_hash: str) -> OneTimeToken | None:
        stmt = select(OneTimeToken).where(OneTimeToken.purpose == purpose, OneTimeToken.token_hash == token_hash)
        return (await self.session.execute(stmt.with_for_update())).scalar_one_or_none()

    async def end_provider_access(self, idp_id: uuid.UUID, at: datetime) -> None:
        """A provider switched off or removed: its sessions end and the roles it granted go."""
        await self.session.execute(
            update(LoginSession)
            .where(LoginSession.idp_id == idp_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        users = select(User.id).where(User.idp_id == idp_id)
        await self.session.execute(delete(RoleGrant).where(RoleGrant.source == "idp", RoleGrant.user_id.in_(users)))

    async def add(self, obj: object) -> None:
        self.session.add(obj)
        await self.session.flush()


class UserRepository:
    """Users and grants of one org node."""

    def __init__(self, session: AsyncSession, owner: ColumnElement[bool]) -> None:
        self.session = session
        self.owner = owner

    async def get(self, user_id: uuid.UUID) -> User | None:
        stmt = select(User).where(self.owner, User.id == user_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, *, limit: int, offset: int, q: str | None) -> tuple[Sequence[User], int]:
        where = [self.owner]
        if q:
            where.append(User.email.ilike(f"%{q}%") | User.display_name.ilike(f"%{q}%"))
        rows = await self.session.execute(select(User).where(*where).order_by(User.email).limit(limit).offset(offset))
        total = await self.session.execute(select(func.count()).select_from(User).where(*where))
        return rows.scalars().all(), int(total.scalar_one())

    async def email_taken(self, email: str) -> bool:
        # E-mail addresses are global (they route logins), so the probe looks everywhere, through the
        # row-level-security policies too (a partner creating a customer cannot otherwise see its users).
        stmt = select(User.id).where(func.lower(User.email) == email.lower())  # andon: unscoped-ok (uniqueness)
        async with lookup_window(self.session):
            return (await self.session.execute(stmt)).first() is not None

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()

    async def grants(self, user_id: uuid.UUID) -> Sequence[RoleGrant]:
        stmt = (
            select(RoleGrant).join(User, User.id == RoleGrant.user_id).where(self.owner, RoleGrant.user_id == user_id)
        )
        return (await self.session.execute(stmt.order_by(RoleGrant.role))).scalars().all()

    async def replace_grants(self, user_id: uuid.UUID, grants: Sequence[RoleGrant], *, source: str) -> None:
        await self.session.execute(delete(RoleGrant).where(RoleGrant.user_id == user_id, RoleGrant.source == source))
        self.session.add_all(grants)
        await self.session.flush()


class SessionRepository:
    """A user's own sessions."""

    def __init__(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        self.session = session
        self.user_id = user_id

    async def active(self, now: datetime) -> Sequence[LoginSession]:
        stmt = (
            select(LoginSession)
            .where(
                LoginSession.user_id == self.user_id, LoginSession.revoked_at.is_(None), LoginSession.expires_at > now
            )
            .order_by(LoginSession.last_seen_at.desc())
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def get(self, session_id: uuid.UUID) -> LoginSession | None:
        stmt = select(LoginSession).where(LoginSession.user_id == self.user_id, LoginSession.id == session_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def revoke(self, now: datetime, *, only: uuid.UUID | None = None, keep: uuid.UUID | None = None) -> int:
        stmt = update(LoginSession).where(LoginSession.user_id == self.user_id, LoginSession.revoked_at.is_(None))
        if only is not None:
            stmt = stmt.where(LoginSession.id == only)
        if keep is not None:
            stmt = stmt.where(LoginSession.id != keep)
        result = await self.session.execute(stmt.values(revoked_at=now))
        return int(getattr(result, "rowcount", 0) or 0)


class IdentityProviderRepository:
    def __init__(self, session: AsyncSession, owner: ColumnElement[bool]) -> None:
        self.session = session
        self.owner = owner

    async def get(self, idp_id: uuid.UUID) -> IdentityProvider | None:
        stmt = select(IdentityProvider).where(self.owner, IdentityProvider.id == idp_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self) -> Sequence[IdentityProvider]:
        stmt = select(IdentityProvider).where(self.owner).order_by(IdentityProvider.name)
        return (await self.session.execute(stmt)).scalars().all()

    async def add(self, idp: IdentityProvider) -> IdentityProvider:
        self.session.add(idp)
        await self.session.flush()
        return idp

    async def delete(self, idp: IdentityProvider) -> None:
        await self.session.delete(idp)
        await self.session.flush()


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, email: OutboundEmail) -> None:
        self.session.add(email)
        await self.session.flush()

    async def recent(self, limit: int = 50) -> Sequence[OutboundEmail]:
        stmt = select(OutboundEmail).order_by(OutboundEmail.created_at.desc()).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()


async def count_all_users(session: AsyncSession, principal: Principal) -> int:
    """Accounts in every organisation, for the operator's platform health page.

    The operator never reads a customer's people, but how many accounts exist names nobody; the count
    runs in a lookup window (rolled back with its savepoint), so the request's own scope stays narrow.
    """
    if not principal.is_operator:
        raise PermissionError("only the platform operator counts accounts across organisations")
    async with lookup_window(session):
        stmt = select(func.count()).select_from(User)  # andon: unscoped-ok (operator's platform-wide count)
        return int((await session.execute(stmt)).scalar_one())
